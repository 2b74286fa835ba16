"""Generations: models, generated samples, lineage and the generation audit.

The end-to-end test runs three generations of the self-consuming loop through the CLI alone, with
a word-level Markov chain trained on each manifest's shards as the generative model."""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import curator
from curator.lineage.models import ModelError
from tests.conftest import SUBPROCESS_TIMEOUT, invoke

WORDS = [
    "river",
    "stone",
    "light",
    "garden",
    "window",
    "morning",
    "letter",
    "market",
    "bridge",
    "winter",
    "paper",
    "silver",
    "road",
    "forest",
    "music",
    "harbor",
    "candle",
    "orchard",
    "meadow",
    "lantern",
    "valley",
    "mirror",
    "thunder",
    "village",
    "cloud",
    "teacher",
    "story",
    "kitchen",
    "island",
    "summer",
    "wheel",
    "basket",
    "feather",
    "engine",
    "field",
    "shadow",
    "ocean",
]

LOOP_POLICY = """
name = "loop"
seed = 5
[target]
rows = 120
[constraints]
min_fresh_real_fraction = 0.5
max_synthetic_fraction = 0.5
[freshness]
lineage = "loop"
[output]
shard_rows = 40
"""


def real_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = set()
    while len(texts) < n:
        texts.add(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))))
    return sorted(texts)


class MarkovChain:
    """A word-level bigram model: the tiny generative model of the loop."""

    def __init__(self, texts: list[str]) -> None:
        self.next: dict[str, list[str]] = defaultdict(list)
        for text in texts:
            words = ["<s>", *text.split(), "</s>"]
            for a, b in itertools.pairwise(words):
                self.next[a].append(b)

    def generate(self, n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        out: list[str] = []
        seen: set[str] = set()
        while len(out) < n:
            word, words = "<s>", []
            while len(words) < 20:
                word = rng.choice(self.next[word])
                if word == "</s>":
                    break
                words.append(word)
            text = " ".join(words)
            if text and text not in seen:
                seen.add(text)
                out.append(text)
        return out


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_three_generations_of_the_loop_through_the_cli(runner, tmp_path):
    store_dir = tmp_path / "store"
    env = {"CURATOR_STORE": str(store_dir)}
    ok(invoke(runner, "init", str(store_dir)))
    real = write_jsonl(tmp_path / "real.jsonl", real_corpus(600))
    ok(invoke(runner, "ingest", str(real), "--source", "web", "--origin", "real", env=env))
    policy = tmp_path / "loop.toml"
    policy.write_text(LOOP_POLICY)

    manifests = []
    for k in (1, 2, 3):
        out = tmp_path / f"gen-{k}"
        result = ok(
            invoke(
                runner, "assemble", "--policy", str(policy), "--out", str(out),
                "--name", f"gen-{k}", "--json", env=env,
            )
        )  # fmt: skip
        manifest = json.loads(result.output)
        manifests.append(manifest)
        texts = [
            t
            for path in sorted(out.glob("data/*.parquet"))
            for t in pq.read_table(path, columns=["text"])["text"].to_pylist()
        ]
        generated = MarkovChain(texts).generate(100, seed=k)
        ok(invoke(runner, "model", "register", f"ngram-{k}", "--trained-on", f"gen-{k}", env=env))
        samples = write_jsonl(tmp_path / f"ngram-{k}.jsonl", generated)
        ok(
            invoke(
                runner, "ingest", str(samples), "--source", f"ngram-{k}-out",
                "--generated-by", f"ngram-{k}", env=env,
            )
        )  # fmt: skip

    store = curator.open_store(store_dir)
    # generated samples get generations 1, 2 and 3 without anyone computing them
    assert store.sql(
        "SELECT model, generation, origin_evidence, origin_confidence, count(*) AS n FROM samples "
        "WHERE origin = 'synthetic' GROUP BY ALL ORDER BY model"
    ).to_pylist() == [
        {"model": f"ngram-{k}", "generation": k, "origin_evidence": "model-lineage",
         "origin_confidence": 1.0, "n": 100}
        for k in (1, 2, 3)
    ]  # fmt: skip
    models = json.loads(ok(invoke(runner, "model", "list", "--json", env=env)).output)
    assert [(m["name"], m["generation"], m["declared"]) for m in models] == [
        ("ngram-1", 0, False),
        ("ngram-2", 1, False),
        ("ngram-3", 2, False),
    ]

    # the audit, checked against the output shards themselves
    report = json.loads(ok(invoke(runner, "lineage", "report", "loop", "--json", env=env)).output)
    assert [e["manifest_id"] for e in report["manifests"]] == [m["manifest_id"] for m in manifests]
    used: set[str] = set()
    for k, entry in enumerate(report["manifests"], start=1):
        rows = [
            row
            for path in sorted((tmp_path / f"gen-{k}").glob("data/*.parquet"))
            for row in pq.read_table(
                path, columns=["origin", "generation", "content_hash"]
            ).to_pylist()
        ]
        n = len(rows)
        real_rows = [r for r in rows if r["origin"] == "real"]
        fresh = [r for r in real_rows if r["content_hash"] not in used]
        by_generation: dict[str, int] = defaultdict(int)
        for r in rows:
            if r["origin"] == "synthetic":
                by_generation[str(r["generation"])] += 1
        assert entry["rows"] == n == 120
        assert entry["fractions"]["real"] == len(real_rows) / n
        assert entry["fractions"]["fresh_real"] == len(fresh) / n
        assert entry["fractions"]["fresh_real"] >= 0.5
        assert entry["fractions"]["synthetic"] == sum(by_generation.values()) / n
        assert entry["fractions"]["unknown"] == 0.0
        assert entry["synthetic_by_generation"] == {
            g: c / n for g, c in sorted(by_generation.items())
        }
        assert entry["deepest_generation"] == k - 1
        assert entry["models"] == [f"ngram-{k}"]
        assert entry["all_held"] is True
        fresh_floor = next(
            c for c in entry["constraints"] if c["name"] == "min_fresh_real_fraction"
        )
        assert fresh_floor["achieved"] == len(fresh) / n
        assert fresh_floor["margin"] == pytest.approx(len(fresh) / n - 0.5)
        used |= {r["content_hash"] for r in real_rows}
    assert report["manifests"][2]["synthetic_by_generation"].get("2", 0) > 0

    text = ok(invoke(runner, "lineage", "report", "loop", env=env)).output
    assert "lineage loop: 3 manifests" in text
    assert "min_fresh_real_fraction" in text and "VIOLATED" not in text

    # a third-generation sample traces back through every model to the real data
    sample_id = (
        store.sql(
            "SELECT sample_id FROM samples WHERE model = 'ngram-3' ORDER BY sample_id LIMIT 1"
        )
        .column(0)[0]
        .as_py()
    )
    tree = json.loads(ok(invoke(runner, "lineage", "show", sample_id, "--json", env=env)).output)
    assert (tree["kind"], tree["generation"], tree["model"]) == ("sample", 3, "ngram-3")
    chain = []
    node = tree
    while node["parents"]:
        model = next((p for p in node["parents"] if p["kind"] == "model"), None)
        if model is None:  # a manifest: follow the source made by a model
            sources = [p for p in node["parents"] if p["kind"] == "source" and p["parents"]]
            if not sources:
                break
            model = max(sources, key=lambda s: s["generation"])["parents"][0]
        chain.append((model["id"], model["generation"]))
        node = model["parents"][0] if model["parents"] else model
        if node["kind"] == "manifest":
            chain.append((node["name"], node["deepest_generation"]))
    assert chain == [
        ("ngram-3", 2), ("gen-3", 2), ("ngram-2", 1), ("gen-2", 1), ("ngram-1", 0), ("gen-1", 0)
    ]  # fmt: skip
    shown = ok(invoke(runner, "lineage", "show", sample_id, env=env)).output
    assert f"sample {sample_id}: synthetic, generation 3" in shown
    assert "model ngram-1: generation 0" in shown and "source web:" in shown

    # SQL: which manifests did content derived from ngram-1 reach?
    direct = (
        store.sql("SELECT DISTINCT manifest_id FROM usage WHERE model = 'ngram-1' ORDER BY 1")
        .column(0)
        .to_pylist()
    )
    assert direct and set(direct) <= {manifests[1]["manifest_id"], manifests[2]["manifest_id"]}
    reached = (
        store.sql(
            """
        WITH RECURSIVE down(kind, id) AS (
            SELECT 'model', 'ngram-1'
            UNION
            SELECT e.dst_kind, e.dst_id FROM down d
            JOIN lineage_edges e ON e.src_kind = d.kind AND e.src_id = d.id
        )
        SELECT id FROM down WHERE kind = 'manifest' ORDER BY id
        """
        )
        .column(0)
        .to_pylist()
    )
    assert reached == sorted([manifests[1]["manifest_id"], manifests[2]["manifest_id"]])


def _loop_store(tmp_path: Path) -> curator.Store:
    store = curator.init_store(tmp_path / "store")
    store.ingest(
        [write_jsonl(tmp_path / "real.jsonl", real_corpus(200))], source="web", origin="real"
    )
    return store


def _policy(tmp_path: Path, name: str = "p", exclude: str | None = None) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nseed = 1\n[target]\nrows = 60\n[constraints]\n'
        "min_fresh_real_fraction = 0.3\nmax_synthetic_fraction = 0.5\n"
        "[output]\nshard_rows = 60\n"
        + (f'[[sources]]\nname = "{exclude}"\nweight = 0\n' if exclude else "")
    )
    return path


def test_register_and_ingest_errors_name_what_is_wrong(runner, tmp_path):
    store = _loop_store(tmp_path)
    env = {"CURATOR_STORE": store.root}
    missing = invoke(runner, "model", "register", "m", "--trained-on", "nope", env=env)
    assert missing.exit_code == 1
    assert f"Error: no manifest `nope` in store `{store.root}` to register the model against" in (
        missing.output
    )
    assert "curator manifest list" in missing.output
    nothing = invoke(runner, "model", "register", "m", env=env)
    assert "needs the manifest it was trained on, or its generation" in nothing.output
    bad_name = invoke(runner, "model", "register", "has space", "--generation", "0", env=env)
    assert "'has space' is not a valid model name" in bad_name.output

    unknown = invoke(
        runner, "ingest", str(write_jsonl(tmp_path / "g.jsonl", ["x"])), "--source", "g",
        "--generated-by", "ghost", env=env,
    )  # fmt: skip
    assert unknown.exit_code == 1
    assert "no model `ghost` is registered" in unknown.output
    assert "no model is registered yet" in unknown.output

    store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    ok(invoke(runner, "model", "register", "m", "--trained-on", "m1", env=env))
    unknown = invoke(
        runner, "ingest", str(write_jsonl(tmp_path / "g.jsonl", ["x"])), "--source", "g",
        "--generated-by", "ghost", env=env,
    )  # fmt: skip
    assert "no model `ghost` is registered" in unknown.output and "registered: m" in unknown.output
    taken = invoke(runner, "model", "register", "m", "--trained-on", "m1", env=env)
    assert "model `m` is already registered (generation 0" in taken.output
    assert "Hint: models are immutable" in taken.output
    contradiction = invoke(
        runner, "ingest", str(write_jsonl(tmp_path / "g.jsonl", [{"text": "y"}])), "--source",
        "g", "--generated-by", "m", "--origin", "real", env=env,
    )  # fmt: skip
    assert "`--generated-by m` makes the samples synthetic, but `--origin real` was given" in (
        contradiction.output
    )
    wrong_generation = invoke(
        runner, "ingest", str(write_jsonl(tmp_path / "g.jsonl", [{"text": "y"}])), "--source",
        "g", "--generated-by", "m", "--generation", "3", env=env,
    )  # fmt: skip
    assert "model `m` is generation 0, so its samples are generation 1" in wrong_generation.output
    no_origin = invoke(
        runner, "ingest", str(write_jsonl(tmp_path / "g.jsonl", [{"text": "y"}])), "--source",
        "g", env=env,
    )  # fmt: skip
    assert "Error: no origin given" in no_origin.output
    assert store.stats().total_rows == 200  # nothing of the failed runs was committed


def test_declared_generations_and_their_checks(tmp_path):
    store = _loop_store(tmp_path)
    third_party = store.register_model("org/llm:v1", generation=2, notes="third-party")
    assert (third_party.generation, third_party.declared, third_party.trained_on) == (2, True, None)
    result = store.ingest(
        [write_jsonl(tmp_path / "llm.jsonl", ["from a big model", "another one"])],
        source="llm-out",
        generated_by="org/llm:v1",
    )
    assert result.ingested == 2
    assert store.sql(
        "SELECT DISTINCT origin, generation, model FROM samples WHERE source = 'llm-out'"
    ).to_pylist() == [{"origin": "synthetic", "generation": 3, "model": "org/llm:v1"}]
    manifest = store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    deepest = manifest.data["composition"]["overall"]["by_generation"]
    assert "3" in deepest  # the llm's samples were taken
    with pytest.raises(ModelError, match="declared generation 1 is shallower than the deepest"):
        store.register_model("shallow", trained_on="m1", generation=1)
    deeper = store.register_model("deeper", trained_on="m1", generation=5)
    assert (deeper.generation, deeper.declared) == (5, True)
    computed = store.register_model("computed", trained_on="m1")
    assert (computed.generation, computed.declared, computed.lineage) == (3, False, "a")
    total = sum(computed.fractions[k] for k in ("real", "synthetic", "unknown"))
    assert total == pytest.approx(1.0)
    assert computed.synthetic_by_generation == {"3": computed.fractions["synthetic"]}


def test_a_model_trained_on_its_own_output_is_a_cycle(tmp_path):
    store = _loop_store(tmp_path)
    # samples labelled with a model name that is not registered yet
    store.ingest(
        [write_jsonl(tmp_path / "w.jsonl", [f"made by w {i}" for i in range(40)])],
        source="w-out",
        origin="synthetic",
        generation=1,
        model="w",
    )
    store.assemble(_policy(tmp_path, "a1"), tmp_path / "a1", lineage="a", name="a1")
    with pytest.raises(ModelError, match=r"cycle: manifest \S+ contains samples generated by `w`"):
        store.register_model("w", trained_on="a1")
    # through another model: z was trained on a1 (which holds w's samples); z's output is in a2
    z = store.register_model("z", trained_on="a1")
    store.ingest(
        [write_jsonl(tmp_path / "z.jsonl", [f"made by z {i}" for i in range(40)])],
        source="z-out",
        generated_by="z",
    )
    a2 = store.assemble(
        _policy(tmp_path, "a2", exclude="w-out"), tmp_path / "a2", lineage="a", name="a2"
    )
    assert a2.data["composition"]["overall"]["by_generation"].keys() == {"0", "2"}
    with pytest.raises(ModelError) as caught:
        store.register_model("w", trained_on="a2")
    assert f"← z ← {a2.manifest_id}" in caught.value.message
    assert z.generation == 1
    assert [m.name for m in store.models()] == ["z"]  # nothing registered by the failures


def test_lineage_show_of_a_model_and_a_manifest_and_unknown_ids(tmp_path):
    store = _loop_store(tmp_path)
    manifest = store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    store.register_model("m", trained_on="m1")
    tree = store.lineage("m").to_json()
    assert (tree["kind"], tree["id"], tree["generation"]) == ("model", "m", 0)
    (parent,) = tree["parents"]
    assert (parent["kind"], parent["id"], parent["deepest_generation"]) == (
        "manifest",
        manifest.manifest_id,
        0,
    )
    assert [(s["kind"], s["id"], s["rows"]) for s in parent["parents"]] == [("source", "web", 60)]
    assert store.lineage("m1").to_json()["id"] == manifest.manifest_id
    with pytest.raises(curator.CuratorError, match="is not a sample id, a registered model or a"):
        store.lineage("nothing-like-it")
    with pytest.raises(curator.CuratorError, match="lineage `b` has no manifest"):
        store.lineage_report("b")


def test_derived_samples_link_to_their_parents(tmp_path):
    store = _loop_store(tmp_path)
    store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    store.register_model("para", trained_on="m1")
    parent = "web/real.jsonl:1"
    assert store.sql(f"SELECT count(*) AS n FROM samples WHERE sample_id = '{parent}'").to_pylist()
    rows = [
        {"text": "a paraphrase of the first", "of": parent},
        {"text": "a paraphrase of nothing known", "of": "web/elsewhere:9"},
    ]
    path = tmp_path / "para.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store.ingest([path], source="para-out", generated_by="para", parent_id_column="of")
    child = (
        store.sql(
            "SELECT sample_id FROM samples WHERE source = 'para-out' AND parent_id = 'web/real.jsonl:1'"
        )
        .column(0)[0]
        .as_py()
    )
    tree = store.lineage(child).to_json()
    assert [(p["kind"], p["id"]) for p in tree["parents"]] == [
        ("model", "para"),
        ("sample", parent),
    ]
    assert tree["parents"][1]["origin"] == "real"
    orphan = (
        store.sql("SELECT sample_id FROM samples WHERE parent_id = 'web/elsewhere:9'")
        .column(0)[0]
        .as_py()
    )
    missing = store.lineage(orphan).to_json()["parents"][1]
    assert (missing["id"], missing["missing"]) == ("web/elsewhere:9", True)
    assert store.sql(
        "SELECT src_id, dst_id FROM lineage_edges WHERE relation = 'derived' ORDER BY src_id"
    ).to_pylist() == [
        {"src_id": "web/elsewhere:9", "dst_id": orphan},
        {"src_id": parent, "dst_id": child},
    ]


def test_review_cases_of_registration(tmp_path):
    store = _loop_store(tmp_path)
    # synthetic samples below min_origin_confidence count as unknown, but keep their depth
    store.ingest(
        [write_jsonl(tmp_path / "low.jsonl", [f"low confidence {i}" for i in range(30)])],
        source="lowconf",
        origin="synthetic",
        generation=4,
        model="ext",
        confidence=0.5,
    )
    low = tmp_path / "low.toml"
    low.write_text(
        'name = "v1"\nseed = 1\n[target]\nrows = 60\n[constraints]\nmin_origin_confidence = 0.9\n'
        "max_unknown_fraction = 1.0\n[output]\nshard_rows = 60\n"
    )
    manifest = store.assemble(low, tmp_path / "v1", lineage="L")
    assert manifest.data["composition"]["overall"]["by_origin"]["unknown"]["rows"] > 0
    model = store.register_model("mv", trained_on="v1")
    assert model.generation == 4
    assert model.fractions["unknown"] > 0
    # two manifests of one name: refuse, and list them
    store.assemble(low, tmp_path / "v1b", lineage="other")
    with pytest.raises(
        ModelError, match=r"`v1` matches 2 manifests: .*lineage L #1.*lineage other #1"
    ):
        store.register_model("ambiguous", trained_on="v1")
    # the store's copy of the manifest counts, not an edited file elsewhere
    forged = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    forged["composition"]["overall"]["by_generation"] = {"0": {"rows": 60, "units": 60}}
    (tmp_path / "forged").mkdir()
    (tmp_path / "forged" / "manifest.json").write_text(json.dumps(forged))
    assert store.register_model("from-path", trained_on=str(tmp_path / "forged")).generation == 4
    # names: not a manifest's or a sample's, no trailing newline, whole-number generations
    with pytest.raises(ModelError, match="is already the name of manifest"):
        store.register_model("v1", generation=0)
    with pytest.raises(ModelError, match="is already a sample id"):
        store.register_model("web/real.jsonl:1", generation=0)
    with pytest.raises(ModelError, match="is not a valid model name"):
        store.register_model("nl\n", generation=0)
    with pytest.raises(ModelError, match="is not a whole number"):
        store.register_model("half", generation=1.5)  # type: ignore[arg-type]
    # a chain that would go past the maximum generation is refused at registration
    store.register_model("top", generation=999)
    store.ingest(
        [write_jsonl(tmp_path / "top.jsonl", ["from the top"])],
        source="top-out",
        generated_by="top",
    )
    deep = tmp_path / "deep.toml"
    deep.write_text(
        "seed = 1\n[target]\nrows = 10\n[constraints]\nmax_synthetic_fraction = 1.0\n"
        '[[sources]]\nname = "top-out"\nweight = 100\n[output]\nshard_rows = 10\n'
    )
    deep_manifest = store.assemble(deep, tmp_path / "deep", lineage="deep")
    assert "1000" in deep_manifest.data["composition"]["overall"]["by_generation"]
    with pytest.raises(ModelError, match="beyond the maximum of 1000"):
        store.register_model("too-deep", trained_on=deep_manifest.manifest_id)
    # --model naming a registered model must agree with its generation
    with pytest.raises(curator.CuratorError, match="use --generated-by mv"):
        store.ingest(
            [write_jsonl(tmp_path / "spoof.jsonl", ["spoofed"])],
            source="spoof",
            origin="synthetic",
            generation=1,
            model="mv",
        )


def test_lineage_marks_what_the_depth_limit_cuts(tmp_path):
    store = _loop_store(tmp_path)
    store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    store.register_model("m", trained_on="m1")
    shallow = store.lineage("m", max_depth=1).to_json()
    (manifest,) = shallow["parents"]
    assert manifest["truncated"] is True and manifest["parents"] == []
    assert "truncated" not in store.lineage("m").to_json()["parents"][0]


def test_a_catalog_from_before_generations_is_upgraded(tmp_path):
    store = _loop_store(tmp_path)
    first = store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    with store.connect(read_only=False) as con:  # what an older curator left
        con.execute("DROP VIEW lineage_edges")
        con.execute("DROP TABLE models")
        # the usage ledger as the table it was, without the columns added with models
        con.execute(
            "CREATE TABLE legacy_usage AS SELECT manifest_id, content_hash, origin, fresh FROM usage"
        )
        con.execute("DROP VIEW usage")
        con.execute("ALTER TABLE legacy_usage RENAME TO usage")
        con.execute("DELETE FROM ledger_files WHERE ledger = 'usage'")
    tree = store.lineage("m1").to_json()
    assert [(p["id"], p["rows"]) for p in tree["parents"]] == [("web", 60)]
    assert store.sql(
        f"SELECT count(*) AS n FROM usage WHERE manifest_id = '{first.manifest_id}' AND sample_id IS NOT NULL"
    ).to_pylist() == [{"n": 60}]
    assert store.sql("SELECT count(*) AS n FROM lineage_edges").to_pylist() == [{"n": 60}]


def test_a_closed_pipe_is_not_an_error(tmp_path):
    import subprocess
    import sys

    store = _loop_store(tmp_path)
    result = subprocess.run(
        f"{sys.executable} -m curator sql 'SELECT range FROM range(2000000)' --format csv "
        f"--store {store.root} | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.stdout == "range\n0\n1\n"
    assert "Error" not in result.stderr and "Traceback" not in result.stderr


def test_models_keep_the_metrics_they_were_registered_with(runner, tmp_path):
    store = _loop_store(tmp_path)
    env = {"CURATOR_STORE": store.root}
    store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    registered = ok(
        invoke(
            runner, "model", "register", "m", "--trained-on", "m1", "--metric",
            "perplexity=41.25", "--metric", "vocabulary=3000", "--json", env=env,
        )
    )  # fmt: skip
    assert json.loads(registered.output)["metrics"] == {"perplexity": 41.25, "vocabulary": 3000.0}
    assert store.model("m").metrics == {"perplexity": 41.25, "vocabulary": 3000.0}
    shown = ok(invoke(runner, "model", "show", "m", env=env)).output
    assert "  metrics        perplexity 41.25, vocabulary 3,000" in shown
    report = store.lineage_report("a")
    assert report["manifests"][0]["model_metrics"] == {
        "m": {"perplexity": 41.25, "vocabulary": 3000.0}
    }
    assert store.model("m").to_json()["metrics"] == {"perplexity": 41.25, "vocabulary": 3000.0}
    # a model registered without metrics has none
    assert store.register_model("n", generation=0).metrics == {}

    not_a_pair = invoke(
        runner, "model", "register", "x", "--generation", "0", "--metric", "ppl", env=env
    )
    assert not_a_pair.exit_code == 2
    assert "Invalid value for '--metric': 'ppl' is not NAME=NUMBER, e.g. perplexity=41.2" in (
        not_a_pair.output
    )
    twice = invoke(
        runner, "model", "register", "x", "--generation", "0", "--metric", "a=1", "--metric",
        "a=2", env=env,
    )  # fmt: skip
    assert twice.exit_code == 2
    assert "Invalid value for '--metric': metric `a` is given twice" in twice.output
    nan = invoke(
        runner, "model", "register", "x", "--generation", "0", "--metric", "ppl=nan", env=env
    )
    assert nan.exit_code == 1
    assert "Error: metric `ppl` is nan, not a finite number" in nan.output
    with pytest.raises(ModelError, match=r"'2bad' is not a valid metric name"):
        store.register_model("y", generation=0, metrics={"2bad": 1.0})
    with pytest.raises(ModelError, match=r"metric `flag` is True, not a finite number"):
        store.register_model("y", generation=0, metrics={"flag": True})
    assert [m.name for m in store.models()] == ["m", "n"]  # the refused ones were not registered


def test_a_tampered_manifest_path_is_refused(tmp_path):
    import duckdb

    from curator.core.errors import StoreError

    store = _loop_store(tmp_path)
    store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    with duckdb.connect(store.catalog_path) as con:
        con.execute("UPDATE manifests SET manifest_path = '../elsewhere/manifest.json'")
    for call in (lambda: store.register_model("x", trained_on="m1"), lambda: store.lineage("m1")):
        with pytest.raises(StoreError) as caught:
            call()
        assert caught.value.message == (
            f"the catalog of store `{store.root}` names the manifest path "
            "`../elsewhere/manifest.json`, which is not inside the store: the catalog looks "
            "tampered with"
        )


def test_a_tampered_shard_path_stops_assembly_before_it_reads(tmp_path):
    import duckdb

    from curator.core.errors import StoreError

    store = _loop_store(tmp_path)
    with duckdb.connect(store.catalog_path) as con:
        con.execute("UPDATE shards SET path = '/etc/x.parquet'")
    with pytest.raises(StoreError, match=r"names the shard path `/etc/x\.parquet`, which is not"):
        store.assemble(_policy(tmp_path), tmp_path / "m1", lineage="a", name="m1")
    assert not (tmp_path / "m1").exists()
