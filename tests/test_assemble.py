"""Policies, the planner and assembly: constraints always met, freshness, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curator
import curator.assembly.writer
from curator.assembly.manifest import Manifest, manifest_json_schema
from curator.assembly.planner import Cell, Pool, ShortfallError, plan
from curator.assembly.policy import EXAMPLE_POLICY, Policy, PolicyError, policy_json_schema
from curator.engine.local import LocalEngine

ROOT = Path(__file__).resolve().parent.parent


# -- policies ---------------------------------------------------------------------------------


def test_schemas_are_generated_from_the_modules():
    assert json.loads((ROOT / "schemas" / "policy.schema.json").read_text()) == policy_json_schema()
    assert (
        json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
        == manifest_json_schema()
    )
    jsonschema.Draft202012Validator.check_schema(policy_json_schema())
    jsonschema.Draft202012Validator.check_schema(manifest_json_schema())


def test_the_example_policy_is_valid(tmp_path):
    (tmp_path / "p.toml").write_text(EXAMPLE_POLICY)
    policy = Policy.from_toml(tmp_path / "p.toml")
    assert (policy.name, policy.seed, policy.target.unit, policy.target.amount) == (
        "gen-2",
        7,
        "rows",
        800_000,
    )
    assert policy.constraints.min_fresh_real_fraction == 0.5
    assert policy.freshness.lineage == "main"
    assert policy.source_rule("web-2021").max_fraction == 0.7
    assert policy.source_rule("other").weight == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[target]\nrows = 10\nbogus = 1\n", "p.toml: unknown key `target.bogus`"),
        (
            "[target]\nrows = 10\nbytes = 5\n",
            "p.toml: `target` must give exactly one of `rows`, `bytes` or `tokens`",
        ),
        (
            "[target]\nrows = 10\n[constraints]\nmin_real_fraction = 1.5\n",
            "p.toml: `constraints.min_real_fraction`: 1.5 is greater than the maximum of 1",
        ),
        ("[constraints]\nmin_real_fraction = 0.5\n", "p.toml: `(top level)` is missing 'target'"),
        (
            '[target]\nrows = 10\n[output]\non_shortfall = "maybe"\n',
            "p.toml: `output.on_shortfall`: 'maybe' is not one of ['error', 'shrink']",
        ),
        ("target = [", None),
    ],
)
def test_policy_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(path)
    if message is None:
        assert caught.value.message.startswith(f"`{path}` is not valid TOML")
    else:
        assert caught.value.message == message.replace("p.toml", str(path))
    assert caught.value.hint


# -- the planner ------------------------------------------------------------------------------


def test_shortfall_message_names_the_binding_constraint_and_what_would_work():
    policy = Policy.from_dict(
        {
            "target": {"rows": 800_000},
            "constraints": {
                "min_fresh_real_fraction": 0.5,
                "min_real_fraction": 0.6,
                "max_synthetic_fraction": 0.4,
                "max_unknown_fraction": 0.0,
            },
        }
    )
    available = {
        Cell("fresh_real", "web"): Pool(312_004, 312_004),
        Cell("used_real", "web"): Pool(500_000, 500_000),
        Cell("synthetic", "gen", 1): Pool(900_000, 900_000),
    }
    with pytest.raises(ShortfallError) as caught:
        plan(policy, available)
    assert (
        caught.value.message
        == "`min_fresh_real_fraction` 0.5 of 800,000 rows needs 400,000 fresh real rows; 312,004 are available"
    )
    assert (
        caught.value.hint
        == 'lower the target to 624,008, add fresh real data, or set `on_shortfall = "shrink"`'
    )
    shrink = Policy.from_dict(
        {
            **{"target": {"rows": 800_000}},
            "constraints": {"min_fresh_real_fraction": 0.5},
            "output": {"on_shortfall": "shrink"},
        }
    )
    result = plan(shrink, available)
    assert (result.total, result.shrunk, result.category_amount("fresh_real")) == (
        624_008,
        True,
        312_004,
    )


def test_the_plan_follows_the_natural_mix_where_the_policy_allows():
    policy = Policy.from_dict(
        {
            "target": {"rows": 100},
            "constraints": {"max_synthetic_fraction": 0.2},
            "sources": [{"name": "b", "weight": 3.0}],
        }
    )
    available = {
        Cell("fresh_real", "a"): Pool(1000, 1000),
        Cell("fresh_real", "b"): Pool(1000, 1000),
        Cell("synthetic", "g", 1): Pool(2000, 2000),
    }
    result = plan(policy, available)
    # natural: a 1 : b 3 : g 2 → 16.7 / 50 / 33.3; synthetic capped at 20, the rest shared 1 : 3
    assert result.amounts == {
        Cell("fresh_real", "a"): 20,
        Cell("fresh_real", "b"): 60,
        Cell("synthetic", "g", 1): 20,
    }


# -- assembly end to end ------------------------------------------------------------------------


#: Extra characters per sample, by pattern (drawn from a generator seeded by the store's seed).
PADDING = {
    "even": lambda rng: 0,
    "mixed": lambda rng: rng.randint(0, 600),
    "bimodal": lambda rng: rng.choice([20, 2000]),
}


def make_store(
    root: Path,
    counts: dict[tuple[str, str], int],
    *,
    generation: int = 1,
    seed: int = 0,
    confidence: float = 1.0,
    sizes: str = "even",
    tokens: bool = False,
) -> curator.Store:
    """A store with `counts[(origin, source)]` text samples each (distinct content). `sizes`:
    a key of PADDING; `tokens`: each sample gets an `n_tokens` column (0 to 300)."""
    import random

    store = curator.init_store(root / "store")
    rng = random.Random(seed)
    for (origin, source), n in sorted(counts.items()):
        if n == 0:
            continue
        path = root / f"{source}-{origin}.jsonl"
        with open(path, "w") as handle:
            for i in range(n):
                record: dict[str, object] = {
                    "text": f"{origin} {source} sample {i} seed {seed} "
                    + "word " * (i % 7)
                    + "x" * PADDING[sizes](rng)
                }
                if tokens:
                    record["n_tokens"] = rng.choice([0, 1, 7, 40, 300])
                handle.write(json.dumps(record) + "\n")
        store.ingest(
            [path], source=source, origin=origin,
            generation=generation if origin == "synthetic" else None,
            confidence=confidence if origin != "real" else 1.0, jobs=1,
        )  # fmt: skip
    return store


POLICY = {
    "name": "gen-1",
    "seed": 7,
    "target": {"rows": 100},
    "constraints": {
        "min_fresh_real_fraction": 0.5,
        "min_real_fraction": 0.6,
        "max_synthetic_fraction": 0.3,
        "max_unknown_fraction": 0.1,
    },
    "output": {"shard_rows": 30},
}


def largest_sample(store: curator.Store, manifest: Manifest) -> int:
    """The largest chosen sample, in the policy's unit."""
    selection = pq.read_table(Path(store.root) / manifest.data["selection"], columns=["size"])
    return max(selection["size"].to_pylist(), default=0)


def per_shard_violations(manifest: Manifest, policy: Policy, tolerance: int = 1) -> list[str]:
    """Every fraction constraint a shard breaks by more than `tolerance` units, recomputed from
    the shard's composition."""
    from curator.assembly.planner import check

    problems = []
    for index, shard in enumerate(manifest.data["composition"]["shards"]):
        amounts = {k: v["units"] for k, v in shard["by_freshness"].items()}
        amounts["synthetic"] = shard["by_origin"].get("synthetic", {}).get("units", 0)
        amounts["unknown"] = shard["by_origin"].get("unknown", {}).get("units", 0)
        for source, v in shard["by_source"].items():
            amounts[f"source:{source}"] = v["units"]
        problems += [
            f"shard {index}: {p}" for p in check(policy, amounts, shard["units"], tolerance)
        ]
    return problems


def test_assemble_writes_shards_and_a_valid_manifest(tmp_path):
    store = make_store(
        tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80, ("unknown", "crawl"): 40}
    )
    policy = Policy.from_dict(POLICY)
    manifest = store.assemble(policy, tmp_path / "out", lineage="main")
    data = manifest.data
    jsonschema.validate(data, manifest_json_schema())
    assert (data["lineage"], data["sequence"], data["seed"], data["name"]) == (
        "main",
        1,
        7,
        "gen-1",
    )
    overall = data["composition"]["overall"]
    assert overall["rows"] == 100
    assert overall["by_freshness"]["fresh_real"]["rows"] >= 50
    assert (
        overall["by_origin"]["synthetic"]["rows"] <= 30
        and overall["by_origin"].get("unknown", {"rows": 0})["rows"] <= 10
    )
    assert all(item["held"] for item in data["constraints"])
    assert [o["rows"] for o in data["outputs"]] == [30, 30, 30, 10]
    assert per_shard_violations(manifest, policy) == []
    assert manifest.verify() == []
    assert [s["path"] for s in data["store"]["shards"]] == [s["path"] for s in store.live_shards()]
    # the files load as they are
    import duckdb
    import polars as pl

    paths = [str(p) for p in manifest.output_paths()]
    assert pq.ParquetDataset(paths).read().num_rows == 100
    assert pl.read_parquet(paths).height == 100
    assert duckdb.execute(f"SELECT count(*) FROM read_parquet({paths!r})").fetchall() == [(100,)]
    import datasets

    loaded = datasets.load_dataset(
        "parquet", data_files=paths, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.num_rows == 100
    # the catalog knows the manifest and what it used
    assert store.sql("SELECT lineage, sequence, rows FROM manifests").to_pylist() == [
        {"lineage": "main", "sequence": 1, "rows": 100}
    ]
    assert store.sql(
        "SELECT count(*) AS n, count(DISTINCT content_hash) AS d FROM usage"
    ).to_pylist() == [{"n": 100, "d": 100}]


def test_content_used_in_a_lineage_is_not_fresh_again_but_is_for_another_lineage(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 150, ("synthetic", "gen"): 100})
    policy = Policy.from_dict(
        {**POLICY, "constraints": {"min_fresh_real_fraction": 0.5}, "target": {"rows": 100}}
    )
    first = store.assemble(policy, tmp_path / "g1", lineage="main")
    used = {
        row["content_hash"]
        for row in store.sql(
            f"SELECT content_hash FROM usage WHERE manifest_id = '{first.manifest_id}' AND origin = 'real'"
        ).to_pylist()
    }
    second = store.assemble(policy, tmp_path / "g2", lineage="main")
    selection = pq.read_table(Path(store.root) / second.data["selection"]).to_pylist()
    fresh_again = [
        r for r in selection if r["category"] == "fresh_real" and r["content_hash"] in used
    ]
    assert fresh_again == []
    assert second.data["freshness"]["used_manifests"] == [first.manifest_id]
    assert {r["content_hash"] for r in selection if r["category"] == "used_real"} <= used
    other = store.assemble(policy, tmp_path / "other", lineage="other")
    other_selection = pq.read_table(Path(store.root) / other.data["selection"]).to_pylist()
    assert other.data["freshness"]["used_manifests"] == []
    assert {r["category"] for r in other_selection if r["content_hash"] in used} <= {"fresh_real"}
    # with only 150 real rows, a third set of 50 fresh real rows needs what the first two left
    with pytest.raises(
        ShortfallError, match=r"`min_fresh_real_fraction` 0\.5 of 100 rows needs 50 fresh real rows"
    ):
        store.assemble(policy, tmp_path / "g3", lineage="main")
    assert not (tmp_path / "g3").exists()


def test_same_store_policy_and_seed_give_byte_identical_shards(tmp_path):
    store = make_store(
        tmp_path,
        {
            ("real", "web"): 90,
            ("real", "books"): 40,
            ("synthetic", "gen"): 60,
            ("unknown", "crawl"): 30,
        },
    )
    policy = Policy.from_dict(POLICY)
    a = store.assemble(policy, tmp_path / "a", lineage="x")
    b = store.assemble(policy, tmp_path / "b", lineage="y")
    assert [o["sha256"] for o in a.outputs] == [o["sha256"] for o in b.outputs]
    for key in ("composition", "plan", "constraints", "outputs", "store", "policy"):
        assert a.data[key] == b.data[key]
    other_seed = store.assemble(
        Policy.from_dict({**POLICY, "seed": 8}), tmp_path / "c", lineage="z"
    )
    assert [o["sha256"] for o in other_seed.outputs] != [o["sha256"] for o in a.outputs]


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_one_or_two_worker_processes_write_byte_identical_shards(
    tmp_path, monkeypatch, output_format
):
    # Every shard is a task of its own, however small the set: on two threads (compression runs
    # outside the GIL, so the local engine starts no interpreter for it), or one after another.
    monkeypatch.setattr(curator.assembly.writer, "SMALL_WRITE_BYTES", 0)
    store = make_store(
        tmp_path,
        {("real", "web"): 90, ("real", "books"): 40, ("synthetic", "gen"): 60, ("unknown", "crawl"): 30},
    )  # fmt: skip
    policy = Policy.from_dict({**POLICY, "output": {"shard_rows": 30, "format": output_format}})
    with LocalEngine(jobs=1) as one, LocalEngine(jobs=2) as two:
        here = store.assemble(policy, tmp_path / "one", lineage="one", engine=one)
        assert one._workers == []
        workers = store.assemble(policy, tmp_path / "two", lineage="two", engine=two)
        assert two._workers == []

    def files(directory: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*"))
            if p.is_file()
        }

    shards = files(tmp_path / "one")
    del shards["manifest.json"]
    assert sorted(shards) == [f"data/train-0000{n}-of-00004.{output_format}" for n in range(4)]
    assert shards == {k: v for k, v in files(tmp_path / "two").items() if k != "manifest.json"}
    # The two manifests differ only in what names the run (id, time, place) and in the lineage
    # (each its own, so that the second set does not see the first's usage).
    volatile = {"manifest_id", "created_at", "lineage", "out_dir", "selection"}
    assert {k: v for k, v in here.data.items() if k not in volatile} == {
        k: v for k, v in workers.data.items() if k not in volatile
    }
    assert pq.read_table(Path(store.root) / here.data["selection"]).equals(
        pq.read_table(Path(store.root) / workers.data["selection"])
    )


def test_output_rows_are_in_selection_order_across_shards(tmp_path):
    # Rows reach the writer in whatever order DuckDB reads them; each output shard must still
    # hold exactly its positions of the selection, in order.
    store = make_store(
        tmp_path, {("real", "web"): 150, ("synthetic", "gen"): 90, ("unknown", "crawl"): 40}
    )
    manifest = store.assemble(
        Policy.from_dict({**POLICY, "target": {"rows": 200}, "output": {"shard_rows": 17}}),
        tmp_path / "out",
    )
    selection = pq.read_table(Path(store.root) / manifest.data["selection"])
    assert selection["out_pos"].to_pylist() == list(range(200))
    written = [
        sample_id
        for path in manifest.output_paths()
        for sample_id in pq.read_table(path)["sample_id"].to_pylist()
    ]
    assert written == selection["sample_id"].to_pylist()
    assert [o["rows"] for o in manifest.outputs] == [17] * 11 + [13]


def test_adding_samples_does_not_reshuffle_what_was_chosen(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 100})
    policy = Policy.from_dict({"seed": 1, "target": {"rows": 20}, "output": {"shard_rows": 20}})
    before = set(
        pq.read_table(store.assemble(policy, tmp_path / "a", lineage="a").output_paths()[0])[
            "sample_id"
        ].to_pylist()
    )
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps({"text": f"another sample {i}"}) + "\n" for i in range(100)))
    store.ingest([path], source="more", origin="real")
    after = set(
        pq.read_table(store.assemble(policy, tmp_path / "b", lineage="b").output_paths()[0])[
            "sample_id"
        ].to_pylist()
    )
    # the new samples take some places; the old ones kept are a subset of the old choice
    assert {s for s in after if s.startswith("web/")} <= before


def test_exact_duplicates_collapse_to_the_most_trustworthy_copy(tmp_path):
    store = curator.init_store(tmp_path / "store")
    (tmp_path / "r.jsonl").write_text(json.dumps({"text": "the same words"}) + "\n")
    (tmp_path / "s.jsonl").write_text(
        json.dumps({"text": "the  same words "}) + "\n" + json.dumps({"text": "other"}) + "\n"
    )
    store.ingest([tmp_path / "s.jsonl"], source="gen", origin="synthetic", generation=2)
    store.ingest([tmp_path / "r.jsonl"], source="web", origin="real")
    manifest = store.assemble(Policy.from_dict({"target": {"rows": 2}}), tmp_path / "out")
    rows = pq.read_table(manifest.output_paths()[0]).to_pylist()
    assert sorted((r["sample_id"], r["origin"]) for r in rows) == [
        ("gen/s.jsonl:2", "synthetic"),
        ("web/r.jsonl:1", "real"),
    ]


def test_low_confidence_counts_as_unknown_and_deep_generations_are_left_out(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 10, ("synthetic", "gen"): 10}, generation=3)
    policy = Policy.from_dict(
        {
            "target": {"rows": 20},
            "constraints": {"max_generation": 2},
            "output": {"on_shortfall": "shrink"},
        }
    )
    assembly = store.plan(policy)
    assert assembly.plan.total == 10 and assembly.plan.shrunk
    weak = make_store(
        tmp_path / "w", {("real", "web"): 10, ("synthetic", "gen"): 10}, confidence=0.5
    )
    assembly = weak.plan(
        Policy.from_dict({"target": {"rows": 20}, "constraints": {"min_origin_confidence": 0.9}})
    )
    assert {c.category for c in assembly.plan.amounts} == {"fresh_real", "unknown"}


def test_bytes_unit_and_dry_run_writes_nothing(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 50, ("synthetic", "gen"): 50})
    policy = Policy.from_dict(
        {
            "target": {"bytes": 2000},
            "constraints": {"min_real_fraction": 0.5},
            "output": {"shard_rows": 10},
        }
    )
    assembly = store.plan(policy)
    assert assembly.plan.total == 2000
    assert "planned 2,000 bytes" in assembly.describe()
    assert store.manifests() == []
    manifest = store.assemble(policy, tmp_path / "out")
    overall = manifest.data["composition"]["overall"]
    assert 2000 <= overall["units"] < 2000 + 60 * 2  # within one sample per pool
    assert overall["by_origin"]["real"]["units"] >= 1000


def test_manifest_verify_names_missing_and_changed_files(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 40})
    manifest = store.assemble(
        Policy.from_dict({"target": {"rows": 40}, "output": {"shard_rows": 15}}), tmp_path / "out"
    )
    paths = manifest.output_paths()
    paths[0].unlink()
    with open(paths[1], "ab") as handle:
        handle.write(b"x")
    assert Manifest.load(tmp_path / "out").verify() == [
        f"missing: {paths[0]}",
        f"changed: {paths[1]} ({paths[1].stat().st_size:,} bytes, manifest says {paths[1].stat().st_size - 1:,})",
    ]


def test_an_infeasible_policy_fails_before_writing(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 10, ("synthetic", "gen"): 90})
    with pytest.raises(ShortfallError):
        store.assemble(
            Policy.from_dict({"target": {"rows": 50}, "constraints": {"min_real_fraction": 0.5}}),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()
    assert store.manifests() == []
    assert store.sql("SELECT count(*) AS n FROM usage").to_pylist() == [{"n": 0}]


# -- properties over random stores and policies ---------------------------------------------------

FRACTION = st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 0.9, 1.0])


#: Targets are drawn in rows and scaled to the unit: about one row's worth of bytes or tokens.
UNIT_SCALE = {"rows": 1, "bytes": 150, "tokens": 60}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    counts=st.fixed_dictionaries(
        {
            ("real", "a"): st.integers(0, 60),
            ("real", "b"): st.integers(0, 40),
            ("synthetic", "g"): st.integers(0, 60),
            ("unknown", "c"): st.integers(0, 40),
        }
    ),
    used=st.integers(0, 30),
    target=st.integers(1, 120),
    fresh=FRACTION,
    real=FRACTION,
    synthetic=FRACTION,
    unknown=FRACTION,
    cap_a=FRACTION,
    shard_rows=st.integers(1, 40),
    seed=st.integers(0, 3),
    shrink=st.booleans(),
    unit=st.sampled_from(["rows", "bytes", "tokens"]),
    sizes=st.sampled_from(sorted(PADDING)),
)
def test_an_assembly_never_breaks_a_constraint_in_total_or_in_any_shard(
    tmp_path_factory,
    counts,
    used,
    target,
    fresh,
    real,
    synthetic,
    unknown,
    cap_a,
    shard_rows,
    seed,
    shrink,
    unit,
    sizes,
):
    root = tmp_path_factory.mktemp("prop")
    store = make_store(root, counts, seed=seed, sizes=sizes, tokens=unit == "tokens")
    if used and store.stats().total_rows:
        store.assemble(
            Policy.from_dict({"target": {"rows": used}, "output": {"on_shortfall": "shrink"}}),
            root / "warmup",
            lineage="main",
        )
    policy = Policy.from_dict(
        {
            "seed": seed,
            "target": {unit: target * UNIT_SCALE[unit]}
            | ({"token_column": "n_tokens"} if unit == "tokens" else {}),
            "constraints": {
                "min_fresh_real_fraction": fresh,
                "min_real_fraction": real,
                "max_synthetic_fraction": synthetic,
                "max_unknown_fraction": unknown,
            },
            # a cap on a source the store lacks is an error (test_policy_errors.py)
            "sources": [{"name": "a", "max_fraction": max(cap_a, 0.1)}]
            if counts[("real", "a")]
            else [],
            "output": {"shard_rows": shard_rows, "on_shortfall": "shrink" if shrink else "error"},
        }
    )
    try:
        manifest = store.assemble(policy, root / "out", lineage="main")
    except ShortfallError:
        assert not shrink
        assert not (root / "out").exists()
        return
    overall = manifest.data["composition"]["overall"]
    assert overall["rows"] == sum(o["rows"] for o in manifest.outputs)
    if unit == "rows":
        assert overall["rows"] == manifest.data["plan"]["total"]
        assert overall["rows"] == target or manifest.data["plan"]["shrunk"]
    assert all(item["held"] for item in manifest.data["constraints"]), manifest.data["constraints"]
    # every shard meets every fraction within one sample: a row, or the largest sample's units
    tolerance = 1 if unit == "rows" else largest_sample(store, manifest)
    assert per_shard_violations(manifest, policy, tolerance=tolerance) == []
    shards = manifest.data["composition"]["shards"]
    assert [s["rows"] for s in shards] == [o["rows"] for o in manifest.outputs]
    assert all(item["held"] for shard in shards for item in shard["constraints"])
    if unit == "rows":  # shards of exactly `shard_rows` rows, the last one the rest
        assert all(s["rows"] == shard_rows for s in shards[:-1])


def test_without_a_lineage_every_manifest_counts_as_used_and_jsonl_output(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 30})
    first = store.assemble(Policy.from_dict({"target": {"rows": 10}}), tmp_path / "a", lineage="x")
    second = store.assemble(
        Policy.from_dict({"target": {"rows": 10}, "output": {"format": "jsonl", "shard_rows": 4}}),
        tmp_path / "b",
    )
    assert second.data["lineage"] == "default"
    assert second.data["freshness"]["used_manifests"] == [first.manifest_id]
    assert [o["path"] for o in second.outputs] == [
        "data/train-00000-of-00003.jsonl",
        "data/train-00001-of-00003.jsonl",
        "data/train-00002-of-00003.jsonl",
    ]
    lines = [
        json.loads(line) for path in second.output_paths() for line in path.read_text().splitlines()
    ]
    assert len(lines) == 10 and {row["origin"] for row in lines} == {"real"}
    # 20 fresh and 10 used real rows: the natural mix, 2 : 1, rounded towards fresh
    assert second.data["composition"]["overall"]["by_freshness"] == {
        "fresh_real": {"rows": 7, "units": 7},
        "used_real": {"rows": 3, "units": 3},
    }


def test_shard_quotas_keep_every_group_within_one_row():
    from curator.assembly.quotas import shard_quotas

    # 8 real, 1 synthetic, 1 unknown in shards of 2: no shard may be without real rows
    quotas = shard_quotas([8, 0, 1, 1], 2)
    assert [sum(q) for q in quotas] == [2, 2, 2, 2, 2]
    assert [sum(col) for col in zip(*quotas, strict=True)] == [8, 0, 1, 1]
    assert all(q[0] + q[1] >= 1 for q in quotas)


@given(st.lists(st.integers(0, 50), min_size=4, max_size=4), st.integers(1, 30))
def test_shard_quotas_add_up_and_hold_each_group_within_one_row(counts, shard_rows):
    from curator.assembly.quotas import shard_quotas

    total = sum(counts)
    quotas = shard_quotas(counts, shard_rows)
    assert [sum(col) for col in zip(*quotas, strict=True)] == (counts if quotas else [])
    for quota in quotas:
        size = sum(quota)
        assert size == shard_rows or quota is quotas[-1]
        # floors (fresh real, all real) short by less than one row; caps (synthetic, unknown)
        # over by less than one row
        for members, sign in (((0,), 1), ((0, 1), 1), ((2,), -1), ((3,), -1)):
            share = sum(counts[k] for k in members) / total
            got = sum(quota[k] for k in members)
            assert sign * (share * size - got) < 1 + 1e-9


# -- lineages and freshness ---------------------------------------------------------------------

FRESH_ONLY = {
    "name": "e",
    "seed": 1,
    "target": {"rows": 30},
    "constraints": {"min_fresh_real_fraction": 1.0},
    "freshness": {"lineage": "main"},
    "output": {"shard_rows": 30},
}


def contents(store: curator.Store, manifest: Manifest) -> set[str]:
    selection = pq.read_table(Path(store.root) / manifest.data["selection"])
    return set(selection["content_hash"].to_pylist())


def test_a_lineage_given_and_a_different_policy_lineage_are_refused(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 70})
    policy = Policy.from_dict(FRESH_ONLY)
    message = (
        '`--lineage exp` differs from the policy\'s `freshness.lineage = "main"`: the manifest '
        "would be recorded in one lineage while what is fresh is judged by the other"
    )
    hint = 'drop one of them, or make them agree (`--lineage main`, Python: `lineage=`; or `freshness.lineage = "exp"`)'
    for attempt in (
        lambda: store.assemble(policy, tmp_path / "o1", lineage="exp"),
        lambda: store.plan(policy, lineage="exp"),
    ):
        with pytest.raises(PolicyError) as caught:
            attempt()
        assert (caught.value.message, caught.value.hint) == (message, hint)
    assert not (tmp_path / "o1").exists()
    assert store.manifests() == []


def test_the_policy_lineage_is_both_the_ledger_and_the_freshness_lineage(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 70})
    policy = Policy.from_dict(FRESH_ONLY)
    first = store.assemble(policy, tmp_path / "o1")
    second = store.assemble(policy, tmp_path / "o2", lineage="main")  # agreeing is fine
    assert [(m.lineage, m.data["sequence"]) for m in (first, second)] == [("main", 1), ("main", 2)]
    assert second.data["freshness"]["used_manifests"] == [first.manifest_id]
    assert contents(store, first).isdisjoint(contents(store, second))
    # 70 real rows, 60 used in lineage main: a third set of 30 fresh real rows cannot be made
    with pytest.raises(ShortfallError, match="needs 30 fresh real rows; 10 are available"):
        store.assemble(policy, tmp_path / "o3")
    # for another lineage, all of it is fresh again
    other = store.assemble(
        Policy.from_dict({**FRESH_ONLY, "freshness": {"lineage": "other"}}), tmp_path / "o4"
    )
    assert (other.lineage, other.data["freshness"]["used_manifests"]) == ("other", [])
    assert contents(store, other) & (contents(store, first) | contents(store, second))
    # with no lineage anywhere, every manifest counts as used, and the set goes to `default`
    anywhere = Policy.from_dict({**FRESH_ONLY, "freshness": {}, "target": {"rows": 10}})
    default = store.assemble(anywhere, tmp_path / "o5")
    assert default.lineage == "default"
    assert sorted(default.data["freshness"]["used_manifests"]) == sorted(
        [first.manifest_id, second.manifest_id, other.manifest_id]
    )
    assert contents(store, default).isdisjoint(
        contents(store, first) | contents(store, second) | contents(store, other)
    )


def test_freshness_manifests_are_ids_or_names(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 60})
    take = Policy.from_dict({"seed": 1, "target": {"rows": 10}, "output": {"shard_rows": 10}})
    alpha_old = store.assemble(take, tmp_path / "a1", lineage="x", name="alpha")
    alpha = store.assemble(take, tmp_path / "a2", lineage="x", name="alpha")
    beta = store.assemble(take, tmp_path / "b", lineage="y", name="beta")

    def used_by(*names: str) -> Manifest:
        policy = Policy.from_dict(
            {**FRESH_ONLY, "target": {"rows": 5}, "freshness": {"manifests": list(names)}}
        )
        return store.assemble(policy, tmp_path / "-".join(names), lineage="z")

    # a name is the latest manifest of that name; ids and names mix
    by_name = used_by("alpha", beta.manifest_id)
    assert by_name.data["freshness"]["used_manifests"] == sorted(
        [alpha.manifest_id, beta.manifest_id]
    )
    assert by_name.data["policy"]["freshness"]["manifests"] == ["alpha", beta.manifest_id]
    fresh = {
        r["content_hash"]
        for r in pq.read_table(Path(store.root) / by_name.data["selection"]).to_pylist()
        if r["category"] == "fresh_real"
    }
    assert fresh and fresh.isdisjoint(contents(store, alpha) | contents(store, beta))
    assert used_by(alpha_old.manifest_id).data["freshness"]["used_manifests"] == [
        alpha_old.manifest_id
    ]
    with pytest.raises(PolicyError) as caught:
        used_by("gamma")
    assert caught.value.message == (
        "`freshness.manifests` names `gamma`, which is neither the id nor the name of a manifest of this store"
    )
    # a name in two lineages is ambiguous: the candidates are listed
    store.assemble(take, tmp_path / "b2", lineage="w", name="beta")
    with pytest.raises(PolicyError) as caught:
        used_by("beta")
    candidates = {m["lineage"]: m["manifest_id"] for m in store.manifests() if m["name"] == "beta"}
    assert caught.value.message == (
        f"`freshness.manifests` names `beta`, which matches 2 manifests: "
        f"{candidates['w']} (lineage w #1); {candidates['y']} (lineage y #1)"
    )
    assert caught.value.hint == "give the manifest ids instead"


def test_fresh_after_makes_earlier_and_undated_real_content_used(tmp_path):
    from datetime import date

    store = curator.init_store(tmp_path / "store")
    for name, n, when in (
        ("old", 20, date(2021, 1, 1)),
        ("edge", 5, date(2025, 1, 1)),
        ("new", 15, date(2025, 6, 1)),
        ("undated", 10, None),
    ):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": f"{name} {i}"}) + "\n" for i in range(n)))
        store.ingest([path], source=name, origin="real", collected_at=when, jobs=1)
    (tmp_path / "p.toml").write_text(
        "seed = 1\n[target]\nrows = 20\n[constraints]\nmin_fresh_real_fraction = 1.0\n"
        "[freshness]\nfresh_after = 2025-01-01\n[output]\nshard_rows = 20\n"
    )
    policy = Policy.from_toml(tmp_path / "p.toml")
    assert policy.to_json()["freshness"]["fresh_after"] == "2025-01-01T00:00:00+00:00"
    available = {
        (cell.category, cell.source): pool.rows
        for cell, pool in store.plan(policy).plan.available.items()
    }
    assert available == {
        ("fresh_real", "edge"): 5,
        ("fresh_real", "new"): 15,
        ("used_real", "old"): 20,
        ("used_real", "undated"): 10,
    }
    (tmp_path / "p21.toml").write_text(
        (tmp_path / "p.toml").read_text().replace("rows = 20", "rows = 21")
    )
    with pytest.raises(ShortfallError, match="needs 21 fresh real rows; 20 are available"):
        store.assemble(tmp_path / "p21.toml", tmp_path / "out", lineage="main")
    manifest = store.assemble(policy, tmp_path / "out", lineage="main")
    assert manifest.data["composition"]["overall"]["by_source"] == {
        "edge": {"rows": 5, "units": 5},
        "new": {"rows": 15, "units": 15},
    }
    # the date and the ledger together: what `main` used is no longer fresh either
    with pytest.raises(ShortfallError, match="needs 20 fresh real rows; 0 are available"):
        store.assemble(policy, tmp_path / "again", lineage="main")


# -- units: bytes and tokens --------------------------------------------------------------------


def test_every_shard_of_a_bytes_target_meets_the_fractions_in_bytes(tmp_path):
    # samples of about 20 or 2,000 bytes: shards cut by rows would be far off in bytes
    store = make_store(
        tmp_path, {("real", "web"): 600, ("synthetic", "gen"): 600}, sizes="bimodal", seed=1
    )
    policy = Policy.from_dict(
        {
            "seed": 3,
            "target": {"bytes": 600_000},
            "constraints": {"max_synthetic_fraction": 0.5},
            "output": {"shard_rows": 100},
        }
    )
    manifest = store.assemble(policy, tmp_path / "out", lineage="a")
    largest = largest_sample(store, manifest)
    assert 2000 < largest < 2100
    shards = manifest.data["composition"]["shards"]
    over = [
        s["by_origin"].get("synthetic", {"units": 0})["units"] - 0.5 * s["units"] for s in shards
    ]
    assert max(over) <= largest
    assert per_shard_violations(manifest, policy, tolerance=largest) == []
    for shard in shards:
        (cap,) = [c for c in shard["constraints"] if c["name"] == "max_synthetic_fraction"]
        assert cap["held"] and cap["tolerance_units"] == largest
    # shards are cut by bytes, so they hold about, not exactly, `shard_rows` rows
    rows = [shard["rows"] for shard in shards]
    assert sum(rows) == manifest.rows and len(rows) == -(-manifest.rows // 100)
    # and the files are what the manifest says they are, the same for the same seed
    for shard, path in zip(shards, manifest.output_paths(), strict=True):
        table = pq.read_table(path, columns=["text", "origin"])
        assert table.num_rows == shard["rows"]
        assert sum(len(t.encode()) for t in table["text"].to_pylist()) == shard["units"]
    again = store.assemble(policy, tmp_path / "again", lineage="b")
    assert [o["sha256"] for o in again.outputs] == [o["sha256"] for o in manifest.outputs]


def test_a_tokens_target_counts_the_token_column(tmp_path):
    store = make_store(
        tmp_path, {("real", "web"): 80, ("synthetic", "gen"): 80}, tokens=True, seed=2
    )
    policy = Policy.from_dict(
        {
            "seed": 5,
            "target": {"tokens": 4000, "token_column": "n_tokens"},
            "constraints": {"min_real_fraction": 0.7, "max_synthetic_fraction": 0.3},
            "output": {"shard_rows": 12},
        }
    )
    assembly = store.plan(policy)
    assert (assembly.plan.unit, assembly.plan.total) == ("tokens", 4000)
    assert "planned 4,000 tokens" in assembly.describe()
    manifest = store.assemble(policy, tmp_path / "out")
    overall = manifest.data["composition"]["overall"]
    tables = [pq.read_table(p, columns=["n_tokens", "origin"]) for p in manifest.output_paths()]
    assert overall["units"] == sum(sum(t["n_tokens"].to_pylist()) for t in tables)
    assert 4000 <= overall["units"] < 4000 + 2 * 300
    assert overall["by_origin"]["real"]["units"] >= 0.7 * overall["units"] - 300
    assert all(item["held"] for item in manifest.data["constraints"])
    largest = largest_sample(store, manifest)
    for shard, table in zip(manifest.data["composition"]["shards"], tables, strict=True):
        assert shard["units"] == sum(table["n_tokens"].to_pylist())
        assert all(c["held"] for c in shard["constraints"])
    assert per_shard_violations(manifest, policy, tolerance=largest) == []
    with pytest.raises(PolicyError, match=r"`target\.token_column` 'words' is not a column"):
        store.plan(
            Policy.from_dict({"target": {"tokens": 10, "token_column": "words"}}),
        )


# -- the constraints report ---------------------------------------------------------------------


def test_max_generation_and_min_origin_confidence_are_reported(tmp_path):
    store = make_store(
        tmp_path,
        {("real", "web"): 30, ("synthetic", "gen"): 30},
        generation=2,
        confidence=0.95,
    )
    deep = tmp_path / "deep.jsonl"
    deep.write_text("".join(json.dumps({"text": f"deep {i}"}) + "\n" for i in range(30)))
    store.ingest([deep], source="deep", origin="synthetic", generation=4, jobs=1)
    weak = tmp_path / "weak.jsonl"
    weak.write_text("".join(json.dumps({"text": f"weak {i}"}) + "\n" for i in range(30)))
    store.ingest([weak], source="weak", origin="synthetic", generation=1, confidence=0.5, jobs=1)
    policy = Policy.from_dict(
        {
            "target": {"rows": 80},
            "constraints": {"max_generation": 3, "min_origin_confidence": 0.9},
            "output": {"shard_rows": 20},
        }
    )
    manifest = store.assemble(policy, tmp_path / "out")
    by_name = {c["name"]: c for c in manifest.data["constraints"]}
    assert by_name["max_generation"] == {
        "name": "max_generation",
        "kind": "generation",
        "relation": "<=",
        "bound": 3,
        "achieved": 2,
        "held": True,
        "margin": 1,
    }
    confidence = by_name["min_origin_confidence"]
    assert (confidence["kind"], confidence["relation"], confidence["bound"]) == (
        "confidence",
        ">=",
        0.9,
    )
    assert confidence["achieved"] == pytest.approx(0.95) and confidence["held"] is True
    assert confidence["margin"] == pytest.approx(0.05)
    assert by_name["max_synthetic_fraction"]["kind"] == "fraction"
    # generation 4 was left out; the weak labels counted as unknown
    assert "4" not in manifest.data["composition"]["overall"]["by_generation"]
    assert manifest.data["composition"]["overall"]["by_origin"]["unknown"]["rows"] > 0
    for shard in manifest.data["composition"]["shards"]:
        names = [c["name"] for c in shard["constraints"]]
        assert names[-2:] == ["max_generation", "min_origin_confidence"]
        assert all(c["held"] for c in shard["constraints"])
    assert (
        "  max_generation               <= 3        achieved 2  ok"
        in store.plan(policy).describe().splitlines()
    )
    # a policy that sets neither does not report them
    plain = store.assemble(Policy.from_dict({"target": {"rows": 10}}), tmp_path / "plain")
    assert {c["name"] for c in plain.data["constraints"]} == {
        "min_fresh_real_fraction",
        "min_real_fraction",
        "max_synthetic_fraction",
        "max_unknown_fraction",
    }


def test_a_set_whose_shards_would_break_a_constraint_is_not_written(tmp_path, monkeypatch):
    import numpy as np

    import curator.assembly.assemble
    import curator.assembly.quotas

    def lopsided(streams, policy, shards, tolerance):
        """Every stream whole into one shard: the first into the first, the rest into the last."""
        counts = np.array([len(sizes) for *_, sizes in streams])
        cuts = np.zeros((shards + 1, len(streams)), dtype=np.int64)
        cuts[1:, 0] = counts[0]
        cuts[shards] = counts
        return cuts

    monkeypatch.setattr(curator.assembly.quotas, "unit_shard_cuts", lopsided)
    store = make_store(tmp_path, {("real", "web"): 50, ("synthetic", "gen"): 50})
    policy = Policy.from_dict(
        {
            "target": {"bytes": 3000},
            "constraints": {"max_synthetic_fraction": 0.5},
            "output": {"shard_rows": 20},
        }
    )
    with pytest.raises(curator.assembly.assemble.AssemblyError) as caught:
        store.assemble(policy, tmp_path / "out")
    assert caught.value.message.startswith(
        "output shard 1 (`data/train-00001-of-00002.parquet`) would break `max_synthetic_fraction` (achieved 1, bound 0.5, "
        "in bytes) by more than one sample; nothing was written"
    )
    assert not (tmp_path / "out").exists()
    assert store.manifests() == []
    assert store.sql("SELECT count(*) AS n FROM usage").to_pylist() == [{"n": 0}]


def test_a_failed_commit_leaves_no_training_set_and_no_record(tmp_path, monkeypatch):
    from curator.store import ledgers

    store = make_store(tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80})
    policy = Policy.from_dict(POLICY)
    real_register = ledgers.register_ledger
    calls = []

    def fail_inside_the_commit(con, ledger):
        # inside the transaction that records the manifest, after its INSERT
        calls.append(ledger)
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledgers, "register_ledger", fail_inside_the_commit)
    with pytest.raises(RuntimeError, match="disk full"):
        store.assemble(policy, tmp_path / "out", lineage="main")
    assert len(calls) == 1
    assert not (tmp_path / "out").exists()  # no shard and no manifest.json left behind
    assert store.sql("SELECT count(*) AS n FROM manifests").to_pylist() == [{"n": 0}]
    assert store.sql("SELECT count(*) AS n FROM usage").to_pylist() == [{"n": 0}]
    assert not list((Path(store.root) / "ledgers").rglob("*.parquet"))  # the ledger withdrawn
    monkeypatch.setattr(ledgers, "register_ledger", real_register)
    manifest = store.assemble(policy, tmp_path / "out", lineage="main")  # a rerun completes
    assert manifest.verify() == [] and manifest.data["sequence"] == 1


# -- a killed assembly --------------------------------------------------------------------------

POLICY_TOML = """
name = "gen-1"
seed = 7
[target]
rows = 100
[constraints]
min_fresh_real_fraction = 0.5
min_real_fraction = 0.6
max_synthetic_fraction = 0.3
max_unknown_fraction = 0.1
[output]
shard_rows = 30
"""

PARTS = [f"data/train-0000{n}-of-00004.parquet" for n in range(4)]


def _files(directory: Path) -> list[str]:
    """Every file under `directory`, relative to it."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _kill_assembly(tmp_path: Path, point: str) -> tuple[curator.Store, list[str]]:
    """A store, and the CLI arguments of an assembly into `tmp_path/out` in lineage `main`, run
    once and killed (SIGKILL) at the crash point `point`."""
    import signal

    from tests.test_store import run_cli

    store = make_store(
        tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80, ("unknown", "crawl"): 40}
    )
    (tmp_path / "p.toml").write_text(POLICY_TOML)
    args = ["assemble", "--policy", str(tmp_path / "p.toml"), "--out", str(tmp_path / "out")]
    args += ["--lineage", "main", "--store", store.root]
    crashed = run_cli(*args, env={"CURATOR_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    return store, args


def _assert_same_as_an_uninterrupted_run(store: curator.Store, tmp_path: Path) -> Manifest:
    manifest = Manifest.load(tmp_path / "out")
    reference = store.assemble(Policy.from_dict(POLICY), tmp_path / "ref", lineage="ref")
    assert [o["sha256"] for o in manifest.outputs] == [o["sha256"] for o in reference.outputs]
    assert manifest.data["composition"] == reference.data["composition"]
    assert manifest.verify() == []
    assert _files(tmp_path / "out") == [*PARTS, "manifest.json"]
    assert store.sql(
        "SELECT m.lineage, m.sequence, count(*) AS used FROM manifests m JOIN usage u USING (manifest_id) "
        "GROUP BY ALL ORDER BY ALL"
    ).to_pylist() == [
        {"lineage": "main", "sequence": 1, "used": 100},
        {"lineage": "ref", "sequence": 1, "used": 100},
    ]
    assert sorted(p.name for p in (Path(store.root) / "manifests").iterdir()) == sorted(
        [manifest.manifest_id, reference.manifest_id]
    )
    assert [p.name for p in (Path(store.root) / ".staging").iterdir()] == []
    return manifest


@pytest.mark.parametrize(
    ("point", "left"),
    [
        ("assemble-written", PARTS),  # files written, nothing recorded
        ("assemble-recorded", PARTS),  # manifests/<id>/ written, not in the catalog
        ("assemble-committed", PARTS),  # recorded, no file placed
        ("assemble-placing", PARTS[1:]),  # recorded, the first file placed
    ],
)
def test_a_killed_assembly_is_finished_by_the_same_command_byte_for_byte(tmp_path, point, left):
    from tests.test_store import run_cli

    store, args = _kill_assembly(tmp_path, point)
    (tmp,) = [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]
    assert _files(tmp) == left
    recorded = store.manifests()
    assert len(recorded) == (1 if point in ("assemble-committed", "assemble-placing") else 0)
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    manifest = _assert_same_as_an_uninterrupted_run(store, tmp_path)
    if recorded:  # the recorded set was completed, not assembled again
        assert manifest.manifest_id == recorded[0]["manifest_id"] == tmp.name[len(".tmp-") :]
        assert rerun.stdout.splitlines()[0] == (
            f"note: completed manifest {manifest.manifest_id}, recorded by an assembly "
            "interrupted before it was done; its files were in place"
        )
    else:
        assert manifest.manifest_id != tmp.name[len(".tmp-") :]
        assert rerun.stdout.startswith("manifest ")


def test_a_recorded_set_whose_files_are_gone_is_rewritten_from_its_selection(tmp_path):
    store, _args = _kill_assembly(tmp_path, "assemble-committed")
    (tmp,) = [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]
    for path in tmp.rglob("*.parquet"):
        path.unlink()
    # another command into the same directory is refused, saying what is there and what to run
    other = Policy.from_dict({**POLICY, "seed": 8})
    from curator.assembly.assemble import AssemblyError

    with pytest.raises(AssemblyError) as caught:
        store.assemble(other, tmp_path / "out", lineage="main")
    manifest_id = tmp.name[len(".tmp-") :]
    assert caught.value.message == (
        f"`{tmp_path / 'out'}` holds the unfinished set of manifest `{manifest_id}` (main #1), "
        "recorded by an assembly that was interrupted after its catalog commit; this command's "
        "policy differs from that assembly's"
    )
    assert caught.value.hint.startswith("run the command that started it again to complete the set")
    manifest = store.assemble(Policy.from_dict(POLICY), tmp_path / "out", lineage="main")
    assert manifest.manifest_id == manifest_id
    assert manifest.note is not None and manifest.note.endswith(
        "its files were rewritten from the recorded selection"
    )
    _assert_same_as_an_uninterrupted_run(store, tmp_path)


def test_later_sets_of_a_lineage_draw_used_and_synthetic_rows_afresh(tmp_path):
    import duckdb

    store = make_store(tmp_path, {("synthetic", "gen"): 100, ("real", "web"): 40})
    # the real rows stay out (weight 0): every set is synthetic rows only
    policy = Policy.from_dict(
        {"seed": 7, "target": {"rows": 30}, "sources": [{"name": "web", "weight": 0}]}
    )
    first = store.assemble(policy, tmp_path / "g1", lineage="main")
    second = store.assemble(policy, tmp_path / "g2", lineage="main")
    hashes = store.sql("SELECT content_hash FROM samples WHERE source = 'gen'").to_pylist()

    def lowest(salt: str) -> set[str]:
        ranked = duckdb.execute(
            "SELECT h FROM (SELECT unnest(?::VARCHAR[]) AS h) ORDER BY md5_number(? || h) LIMIT 30",
            [[row["content_hash"] for row in hashes], salt],
        ).fetchall()
        return {row[0] for row in ranked}

    # the first set ranks by the seed alone, the second by the seed and one earlier manifest
    assert contents(store, first) == lowest("7:")
    assert contents(store, second) == lowest("7:1:")
    assert len(contents(store, first) & contents(store, second)) < 30
    # still deterministic: the same history in another lineage gives the same second set
    store.assemble(policy, tmp_path / "h1", lineage="other")
    again = store.assemble(policy, tmp_path / "h2", lineage="other")
    assert [o["sha256"] for o in again.outputs] == [o["sha256"] for o in second.outputs]


def test_a_recorded_set_whose_out_was_removed_is_completed_by_the_same_command(tmp_path):
    import shutil

    store, _args = _kill_assembly(tmp_path, "assemble-committed")
    (tmp,) = [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]
    manifest_id = tmp.name[len(".tmp-") :]
    shutil.rmtree(tmp_path / "out")  # what a user may do after the kill
    manifest = store.assemble(Policy.from_dict(POLICY), tmp_path / "out", lineage="main")
    assert manifest.manifest_id == manifest_id  # completed, not assembled anew
    assert manifest.note is not None and manifest.note.endswith(
        "its files were rewritten from the recorded selection"
    )
    _assert_same_as_an_uninterrupted_run(store, tmp_path)
