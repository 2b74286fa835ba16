"""CLI transcripts for policy, assemble and manifest."""

from __future__ import annotations

import json
import re

from tests.conftest import invoke

POLICY = """
name = "g1"
seed = 3
[target]
rows = 20
[constraints]
min_fresh_real_fraction = 0.5
max_synthetic_fraction = 0.25
[output]
shard_rows = 8
"""


def _store(runner, tmp_path, write_jsonl) -> dict[str, str]:
    store = tmp_path / "store"
    invoke(runner, "init", str(store))
    env = {"CURATOR_STORE": str(store)}
    invoke(
        runner,
        "ingest",
        str(write_jsonl("real.jsonl", [{"text": f"real {i}"} for i in range(30)])),
        "--source",
        "web",
        "--origin",
        "real",
        env=env,
    )
    invoke(
        runner,
        "ingest",
        str(write_jsonl("gen.jsonl", [{"text": f"gen {i}"} for i in range(30)])),
        "--source",
        "gen",
        "--origin",
        "synthetic",
        "--generation",
        "1",
        env=env,
    )
    (tmp_path / "p.toml").write_text(POLICY)
    return env


def test_policy_init_and_check(runner, tmp_path, write_jsonl):
    result = invoke(runner, "policy", "init", str(tmp_path / "example.toml"))
    assert result.output == f"Wrote {tmp_path / 'example.toml'}\n"
    result = invoke(runner, "policy", "init", str(tmp_path / "example.toml"))
    assert result.exit_code == 1 and "already exists" in result.output
    result = invoke(
        runner, "policy", "check", str(tmp_path / "example.toml"), env={"CURATOR_STORE": ""}
    )
    assert (
        result.output
        == f"{tmp_path / 'example.toml'}: valid policy (target 800,000 rows, seed 7)\n"
    )
    env = _store(runner, tmp_path, write_jsonl)
    result = invoke(runner, "policy", "check", str(tmp_path / "p.toml"), env=env)
    lines = result.output.splitlines()
    assert lines[1] == "lineage default: 0 earlier manifest(s) count as used; 60 candidate samples"
    assert lines[2] == "target 20 rows; planned 20 rows"
    assert "  min_fresh_real_fraction      >= 0.5      achieved 0.7500  ok" in lines
    # the example's 800,000 rows are more than this store holds: valid, but not here
    invoke(runner, "policy", "init", str(tmp_path / "mine.toml"), env=env)
    result = invoke(runner, "policy", "check", str(tmp_path / "mine.toml"), env=env)
    assert result.exit_code == 1
    assert result.output.startswith(
        f"{tmp_path / 'mine.toml'}: valid policy (target 800,000 rows, seed 7); this store "
        "cannot meet it:\nError: "
    )


def test_assemble_dry_run_then_for_real_then_manifest_commands(runner, tmp_path, write_jsonl):
    env = _store(runner, tmp_path, write_jsonl)
    out = tmp_path / "train"
    result = invoke(
        runner,
        "assemble",
        "--policy",
        str(tmp_path / "p.toml"),
        "--out",
        str(out),
        "--dry-run",
        env=env,
    )
    assert result.exit_code == 0 and result.output.endswith("(dry run: nothing written)\n")
    assert not out.exists()
    result = invoke(
        runner,
        "assemble",
        "--policy",
        str(tmp_path / "p.toml"),
        "--out",
        str(out),
        "--lineage",
        "main",
        env=env,
    )
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("manifest ") and first.endswith(
        f"(main #1): 20 rows, 20 rows in 3 shards in {out}"
    )
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "data/train-00000-of-00003.parquet",
        "data/train-00001-of-00003.parquet",
        "data/train-00002-of-00003.parquet",
        "manifest.json",
    ]
    listed = json.loads(invoke(runner, "manifest", "list", "--json", env=env).output)
    assert [(m["name"], m["lineage"], m["sequence"], m["rows"]) for m in listed] == [
        ("g1", "main", 1, 20)
    ]
    shown = json.loads(invoke(runner, "manifest", "show", "g1", "--json", env=env).output)
    report = invoke(runner, "lineage", "report", "main", env=env).output.splitlines()
    header = report.index("constraints (achieved, bound, margin; by the policy's unit):") + 1
    assert report[header].split() == ["#", "constraint", "achieved", "margin", "status"]
    assert shown["manifest_id"] == listed[0]["manifest_id"]
    assert invoke(runner, "manifest", "verify", str(out), env=env).output.startswith(
        "ok: 3 files of manifest "
    )
    (out / "data" / "train-00001-of-00003.parquet").unlink()
    result = invoke(runner, "manifest", "verify", "g1", env=env)
    assert result.exit_code == 1
    assert (
        result.output.splitlines()[0] == f"missing: {out / 'data' / 'train-00001-of-00003.parquet'}"
    )
    assert "Error: 1 of 3 output files of manifest" in result.output


def test_assemble_shortfall_is_a_clear_error(runner, tmp_path, write_jsonl):
    env = _store(runner, tmp_path, write_jsonl)
    (tmp_path / "big.toml").write_text(POLICY.replace("rows = 20", "rows = 100"))
    result = invoke(
        runner,
        "assemble",
        "--policy",
        str(tmp_path / "big.toml"),
        "--out",
        str(tmp_path / "o"),
        env=env,
    )
    assert result.exit_code == 1
    assert result.output == (
        "Error: `max_synthetic_fraction` 0.25 caps synthetic data at 25 of 100 rows; the other 75 need real or unknown rows, and 30 are available\n"
        'Hint: lower the target to 40, add real data, or set `on_shortfall = "shrink"`\n'
    )
    assert not (tmp_path / "o").exists()


FRESH_ONLY = """
name = "e"
seed = 1
[target]
rows = 10
[constraints]
min_fresh_real_fraction = 1.0
[freshness]
lineage = "main"
[output]
shard_rows = 10
"""


def _texts(out) -> set[str]:
    import pyarrow.parquet as pq

    return {
        t
        for path in sorted(out.glob("data/*.parquet"))
        for t in pq.read_table(path)["text"].to_pylist()
    }


def test_assemble_lineage_must_agree_with_the_policy_and_never_reuses_fresh_content(
    runner, tmp_path, write_jsonl
):
    env = _store(runner, tmp_path, write_jsonl)  # 30 real samples
    (tmp_path / "e.toml").write_text(FRESH_ONLY)

    def assemble(out: str, *extra: str, policy: str = "e.toml"):
        return invoke(
            runner, "assemble", "--policy", str(tmp_path / policy), "--out", str(tmp_path / out),
            *extra, env=env,
        )  # fmt: skip

    refused = assemble("o1", "--lineage", "exp")
    assert refused.exit_code == 1
    assert refused.output == (
        'Error: `--lineage exp` differs from the policy\'s `freshness.lineage = "main"`: the manifest '
        "would be recorded in one lineage while what is fresh is judged by the other\n"
        'Hint: drop one of them, or make them agree (`--lineage main`, Python: `lineage=`; or `freshness.lineage = "exp"`)\n'
    )
    assert not (tmp_path / "o1").exists()
    checked = invoke(
        runner, "policy", "check", str(tmp_path / "e.toml"), "--lineage", "exp", env=env
    )
    assert checked.exit_code == 1 and "differs from the policy's" in checked.output
    # the policy's lineage, given or not: three sets of 10 fresh real rows, never the same content
    outputs = []
    for index, extra in enumerate(((), ("--lineage", "main"), ())):
        result = assemble(f"o{index + 1}", *extra)
        assert result.exit_code == 0, result.output
        assert f"(main #{index + 1}): 10 rows" in result.output.splitlines()[0]
        outputs.append(_texts(tmp_path / f"o{index + 1}"))
    assert all(text.startswith("real ") for texts in outputs for text in texts)
    assert len(set().union(*outputs)) == 30
    result = assemble("o4")
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: `min_fresh_real_fraction` 1 of 10 rows needs 10 fresh real rows; 0 are available\n"
    )
    # for another lineage the same content is fresh again
    (tmp_path / "other.toml").write_text(
        FRESH_ONLY.replace('lineage = "main"', 'lineage = "other"')
    )
    result = assemble("o5", policy="other.toml")
    assert result.exit_code == 0, result.output
    assert "(other #1)" in result.output.splitlines()[0]
    assert _texts(tmp_path / "o5") <= set().union(*outputs)


CHECKED = """
name = "g1"
seed = 3
[target]
rows = 20
[constraints]
min_fresh_real_fraction = 0.5
max_synthetic_fraction = 0.25
max_generation = 2
min_origin_confidence = 0.9
[[sources]]
name = "web"
max_fraction = 0.8
[output]
shard_rows = 8
"""

INTERNAL_NAMES = ("not_real", "used_real", "fresh_real")


def test_policy_check_lists_what_assemble_reports_in_the_same_words(runner, tmp_path, write_jsonl):
    env = _store(runner, tmp_path, write_jsonl)
    (tmp_path / "c.toml").write_text(CHECKED)
    checked = invoke(runner, "policy", "check", str(tmp_path / "c.toml"), env=env)
    assert checked.exit_code == 0, checked.output
    assert checked.output.splitlines()[3:7] == [
        "pool        generation  source  available rows  planned rows  share",
        "----------  ----------  ------  --------------  ------------  -----",
        "fresh real           0  web                 30            15  75.0%",
        "synthetic            1  gen                 30             5  25.0%",
    ]
    assembled = invoke(
        runner, "assemble", "--policy", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"),
        env=env,
    )  # fmt: skip
    assert assembled.exit_code == 0, assembled.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    names = [c["name"] for c in manifest["constraints"]]
    assert names == [
        "min_fresh_real_fraction", "min_real_fraction", "max_synthetic_fraction",
        "max_unknown_fraction", "sources.web.max_fraction", "max_generation", "min_origin_confidence",
    ]  # fmt: skip
    checked_names = [
        line.split()[0] for line in checked.output.split("constraints:\n")[1].splitlines()
    ]
    assert checked_names == names
    assert assembled.output.splitlines()[1:3] == [
        "  fresh real                                 15 rows   75.0%",
        "  not real (synthetic + unknown)              5 rows   25.0%",
    ]
    shown = invoke(runner, "manifest", "show", "g1", env=env)
    assert shown.output.splitlines()[-4:] == [
        "origin      generation  source  rows  share",
        "----------  ----------  ------  ----  -----",
        "fresh real           0  web       15  75.0%",
        "synthetic            1  gen        5  25.0%",
    ]
    for output in (checked.output, assembled.output, shown.output):  # policy keys aside
        assert not any(re.search(rf"\b{name}\b", output) for name in INTERNAL_NAMES)


def test_policy_check_errors_name_the_key_or_the_file(runner, tmp_path, write_jsonl):
    env = _store(runner, tmp_path, write_jsonl)
    (tmp_path / "typo.toml").write_text(CHECKED.replace('name = "web"', 'name = "wbe"'))
    result = invoke(runner, "policy", "check", str(tmp_path / "typo.toml"), env=env)
    assert result.exit_code == 1
    assert result.output == (
        "Error: `sources[0].name` is `wbe`, which is not a source of the store (its sources: `gen`, `web`)\n"
        "Hint: did you mean `web`? use one of the store's sources, or delete the `[[sources]]` table\n"
    )
    (tmp_path / "date.toml").write_text(CHECKED + '[freshness]\nfresh_after = "not a date"\n')
    result = invoke(
        runner, "policy", "check", str(tmp_path / "date.toml"), env={"CURATOR_STORE": ""}
    )
    assert result.exit_code == 1 and "valid policy" not in result.output
    assert result.output.startswith(
        f"Error: {tmp_path / 'date.toml'}: `freshness.fresh_after` must be a TOML date or date-time"
    )
    result = invoke(runner, "policy", "check", str(tmp_path / "nosuch.toml"), env=env)
    assert result.output == (
        f"Error: cannot read policy `{tmp_path / 'nosuch.toml'}`: no such file\n"
        f"Hint: check the path, or write an example there with `curator policy init {tmp_path / 'nosuch.toml'}` "
        "(Python: `curator.assembly.policy.example_policy()` returns its text)\n"
    )


def test_policy_init_with_a_store_names_its_sources(runner, tmp_path, write_jsonl):
    env = _store(runner, tmp_path, write_jsonl)
    result = invoke(runner, "policy", "init", str(tmp_path / "init.toml"), env=env)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "init.toml").read_text()
    assert "web-2021" not in text
    assert (
        '[[sources]]                   # 30 rows in the store\nname = "gen"\nweight = 1.0\n'
        'max_fraction = 1.0\n\n[[sources]]                   # 30 rows in the store\nname = "web"\n'
    ) in text
    # the placeholder of a policy written without a store is refused by a store
    invoke(runner, "policy", "init", str(tmp_path / "example.toml"), env={"CURATOR_STORE": ""})
    result = invoke(runner, "policy", "check", str(tmp_path / "example.toml"), env=env)
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: `sources[0].name` is `web-2021`, which is not a source of the store (its sources: `gen`, `web`)\n"
    )


def test_manifest_commands_name_a_path_that_does_not_exist(runner, tmp_path, write_jsonl):
    for command in ("verify", "show"):
        result = invoke(
            runner, "manifest", command, str(tmp_path / "nope"), env={"CURATOR_STORE": ""}
        )
        assert result.exit_code == 1
        assert result.output == (
            f"Error: no manifest at `{tmp_path / 'nope'}`\n"
            "Hint: pass a manifest.json or the directory that holds it, or, with --store DIR "
            "(env CURATOR_STORE), a manifest id or name\n"
        )
    env = _store(runner, tmp_path, write_jsonl)
    result = invoke(runner, "manifest", "verify", str(tmp_path / "sets" / "nope"), env=env)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no file or directory `{tmp_path / 'sets' / 'nope'}`")
