"""`curator demo` end to end through the CLI, and the pieces it is made of: the text model's
perplexity, distinct n-grams, the Fréchet distance and the loop policies."""

from __future__ import annotations

import itertools
import math
import random
import re
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import curator
from curator.loop.demo import (
    DemoConfig,
    frechet_distance,
    loop_policy,
    real_text_corpus,
    run_demo,
)
from curator.loop.textgen import NGramModel, distinct_ngrams
from tests.conftest import DEMO_GENERATIONS as GENERATIONS
from tests.conftest import invoke

STEP_PREFIXES = ("generation ", "crawl: ingesting", "dedup: ", "infer: ", "report: ", "demo: ")


def _series(data: dict, lineage: str, metric: str) -> list[float]:
    rows = sorted(
        (r for r in data["metrics"] if r["lineage"] == lineage), key=lambda r: r["generation"]
    )
    assert [r["generation"] for r in rows] == list(range(1, GENERATIONS + 1))
    return [r[metric] for r in rows]


def test_without_a_floor_diversity_falls_every_generation_and_with_one_it_holds(demo):
    data = demo["data"]
    for metric in ("vocabulary", "distinct_bigrams"):
        no_floor = _series(data, "text-no-floor", metric)
        floor = _series(data, "text-fresh-floor", metric)
        # the fully synthetic loop loses diversity generation after generation …
        assert all(b < a for a, b in itertools.pairwise(no_floor)), no_floor
        assert no_floor[-1] < 0.75 * no_floor[0]
        # … while the fresh-real floor holds it within the band the README states
        assert all(0.8 * floor[0] <= v <= 1.2 * floor[0] for v in floor), floor
        assert all(f > n for f, n in zip(floor[1:], no_floor[1:], strict=True))
    # quality: held-out real text gets less likely under the no-floor models
    no_floor = _series(data, "text-no-floor", "perplexity")
    floor = _series(data, "text-fresh-floor", "perplexity")
    assert all(b > a for a, b in itertools.pairwise(no_floor)), no_floor
    assert all(f < n for f, n in zip(floor[1:], no_floor[1:], strict=True))
    # digits: the no-floor loop drifts away from held-out real digits faster
    no_floor = _series(data, "digits-no-floor", "frechet_distance")
    floor = _series(data, "digits-fresh-floor", "frechet_distance")
    assert no_floor[-1] > 2 * no_floor[0]
    assert floor[-1] < no_floor[-1]


def test_the_demo_runs_the_loop_with_curators_own_records(demo):
    store = curator.open_store(Path(demo["directory"]) / "store")
    # generated samples got their generation from the model they were ingested under
    rows = store.sql(
        "SELECT model, min(generation) AS lo, max(generation) AS hi, count(*) AS n, "
        "min(origin_evidence) AS evidence FROM samples WHERE source LIKE 'text-no-floor-%' "
        "GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert [(r["model"], r["lo"], r["hi"], r["n"], r["evidence"]) for r in rows] == [
        (f"text-no-floor-bigram-{k}", k, k, 200, "model-lineage") for k in range(1, GENERATIONS + 1)
    ]
    models = {m.name: m for m in store.models()}
    assert models["digits-fresh-floor-gmm-3"].generation == 2
    assert set(models["text-fresh-floor-bigram-2"].metrics) == {
        "distinct_bigrams",
        "perplexity",
        "vocabulary",
    }
    # every manifest of the fresh-floor loops met its floor; the no-floor loop had none
    for lineage in ("text-fresh-floor", "digits-fresh-floor"):
        report = store.lineage_report(lineage)
        assert [e["all_held"] for e in report["manifests"]] == [True] * GENERATIONS
        assert [e["fractions"]["fresh_real"] for e in report["manifests"]] == [1.0] + [0.5] * (
            GENERATIONS - 1
        )
        assert [e["deepest_generation"] for e in report["manifests"]] == list(range(GENERATIONS))
    report = store.lineage_report("text-no-floor")
    assert [e["fractions"]["synthetic"] for e in report["manifests"]] == [0.0] + [1.0] * (
        GENERATIONS - 1
    )
    assert (
        report["manifests"][1]["model_metrics"]["text-no-floor-bigram-2"]["vocabulary"]
        == (_series(demo["data"], "text-no-floor", "vocabulary")[1])
    )
    # the training sets are plain Parquet with the provenance columns
    shards = sorted(
        (Path(demo["directory"]) / "train" / "text-fresh-floor" / "gen-2").glob("data/*.parquet")
    )
    table = pq.read_table(shards)
    assert table.num_rows == 200
    assert sorted(set(table["origin"].to_pylist())) == ["real", "synthetic"]
    # the crawl's copies of generated text were found and labelled
    crawl = demo["data"]["contamination"]
    assert crawl["source"] == "crawl" and crawl["samples"] == 120
    assert crawl["contaminated"] >= 40
    relabelled = store.sql(
        "SELECT count(*) AS n FROM samples WHERE source = 'crawl' AND origin_evidence = 'near-duplicate'"
    ).to_pylist()[0]["n"]
    assert relabelled >= 80
    # the output says what it shows
    output = demo["output"]
    assert (
        "text-no-floor        gen 2: trained on 200 rows (0% fresh real, 100% synthetic)" in output
    )
    assert (
        "text-fresh-floor     gen 2: trained on 200 rows (50% fresh real, 50% synthetic)" in output
    )
    assert "vocabulary (no-floor)" in output and "frechet_distance (fresh-floor)" in output
    assert f"Report: {demo['directory']}/report/index.html" in output
    # each slow step is named as it starts (on stderr, which the runner's output includes)
    steps = [line for line in output.splitlines() if line.startswith(STEP_PREFIXES)]
    assert steps[:2] == [
        f"generation 1/{GENERATIONS}: assemble, train, evaluate, register and ingest, "
        "for 4 lineages",
        f"generation 2/{GENERATIONS}: assemble, train, evaluate, register and ingest, "
        "for 4 lineages",
    ]
    assert steps[GENERATIONS:-1] == [
        "crawl: ingesting texts of unknown origin",
        # 1,946 real paragraphs, 2 x 4 generations x 200 generated texts, 120 crawled ones
        "dedup: near-duplicates among the store's 3,666 texts (MinHash)",
        "infer: labelling the crawl from its near-duplicates",
        f"report: writing {demo['directory']}/report",
        "report: 1/9 summary",
        "report: 2/9 about the demo",
        "report: 3/9 composition",
        "report: 4/9 generation depth",
        "report: 5/9 metrics",
        "report: 6/9 images",
        "report: 7/9 near-duplicate clusters",
        "report: 8/9 contamination",
        "report: 9/9 the Gaussian loop",
        f"report: {demo['directory']}/report/index.html (14 figure files)",
    ]
    assert re.fullmatch(r"demo: done in \d+ s", steps[-1])


def test_the_same_seed_gives_the_same_numbers_and_the_floor_is_the_one_asked_for(tmp_path):
    config = DemoConfig(
        generations=2, text_rows=40, digit_rows=40, held_out=40, floor=0.25, report=False
    )
    said: list[str] = []
    first = run_demo(str(tmp_path / "a"), config, echo=lambda _line: None, progress=said.append)
    # without a report, the steps end with infer; `echo` got none of them
    assert said[:3] == [
        "generation 1/2: assemble, train, evaluate, register and ingest, for 4 lineages",
        "generation 2/2: assemble, train, evaluate, register and ingest, for 4 lineages",
        "crawl: ingesting texts of unknown origin",
    ]
    assert said[3].startswith("dedup: near-duplicates among the store's ")
    assert said[4] == "infer: labelling the crawl from its near-duplicates"
    assert said[5].startswith("demo: done in ") and len(said) == 6
    second = run_demo(str(tmp_path / "b"), config, echo=lambda _line: None)

    def numbers(metrics: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "manifest"} for row in metrics]

    assert len(first.metrics) == 8  # 2 generations x 2 loops x text and digits
    assert numbers(first.metrics) == numbers(second.metrics)  # manifest ids hold a timestamp
    # generation 2 of the fresh-floor loops: a quarter fresh real, the rest the previous output
    for lineage in ("text-fresh-floor", "digits-fresh-floor"):
        (entry,) = [r for r in first.metrics if r["lineage"] == lineage and r["generation"] == 2]
        assert (entry["fresh_real"], entry["synthetic"]) == (0.25, 0.75)
    policy = curator.Policy.from_toml(tmp_path / "a" / "policies" / "text-fresh-floor-gen-2.toml")
    assert policy.constraints.min_fresh_real_fraction == 0.25


def test_demo_says_how_many_generations_the_real_data_allows(tmp_path):
    with pytest.raises(curator.CuratorError) as error:
        run_demo(
            tmp_path / "demo", DemoConfig(generations=8, digits=False), echo=lambda _line: None
        )
    assert not (tmp_path / "demo").exists()  # failed before writing anything
    assert error.value.message == (
        "8 generations of the fresh-floor loop need 2,250 real paragraphs; this Python ships "
        "1,946 that are not held out"
    )
    assert error.value.hint == (
        "pass --generations 6 or fewer, or a smaller --text-rows or --floor"
    )


def test_demo_refuses_a_directory_that_is_not_a_demo(runner, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = invoke(runner, "demo", str(tmp_path))
    assert result.exit_code == 1
    assert f"Error: `{tmp_path}` is not empty and is not an earlier demo" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"
    bad = invoke(runner, "demo", str(tmp_path / "new"), "--generations", "1")
    assert bad.exit_code == 2 and "--generations" in bad.output
    with pytest.raises(curator.CuratorError, match="needs at least 2"):
        DemoConfig(generations=1)


def test_perplexity_is_the_smoothed_likelihood_per_word():
    model = NGramModel(order=1).fit(["a b", "a c"])
    # by hand: unigram counts a 2, b 1, c 1, </s> 2 over {a, b, c, </s>, <unk>} with add-0.1
    total = 6 + 0.5
    p_a = 0.8 * 1.0 + 0.2 * 2.1 / total  # a after <s>
    p_b = 0.8 * 0.5 + 0.2 * 1.1 / total  # b after a
    p_end = 0.8 * 1.0 + 0.2 * 2.1 / total  # </s> after b
    expected = math.exp(-(math.log(p_a) + math.log(p_b) + math.log(p_end)) / 3)
    assert model.perplexity(["a b"], {"a", "b", "c"}) == pytest.approx(expected, rel=1e-12)
    # an unseen word maps to <unk> and gets the smoothed unigram probability only
    worse = model.perplexity(["a zebra"], {"a", "b", "c"})
    assert worse > model.perplexity(["a b"], {"a", "b", "c"})
    assert distinct_ngrams(["a b a b", "b a"], 2) == 2
    assert distinct_ngrams(["a b", "c"], 1) == 3
    assert distinct_ngrams([""], 1) == 0


def test_frechet_distance_of_gaussians():
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((20_000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-6)
    # N(0, I) vs N(0, 4I) in 3 dimensions: 3 (1 - 2)^2 = 3, up to sampling error
    assert frechet_distance(a, 2 * rng.standard_normal((20_000, 3))) == pytest.approx(3.0, rel=0.05)


def test_loop_policies_are_valid_and_say_what_each_generation_draws_on():
    first = curator.Policy.from_dict(
        tomllib.loads(
            loop_policy(
                "t", 1, rows=100, floor=0.5, real_source="docs", previous_source=None,
                other_sources=["docs", "other"], seed=3,
            )
        )
    )  # fmt: skip
    assert first.constraints.min_fresh_real_fraction == 0.0
    assert {r.name: (r.weight, r.max_fraction) for r in first.sources} == {
        "docs": (1.0, 1.0),
        "other": (0.0, 1.0),
    }
    later = curator.Policy.from_dict(
        tomllib.loads(
            loop_policy(
                "t", 3, rows=100, floor=0.5, real_source="docs", previous_source="t-2-out",
                other_sources=["docs", "t-1-out", "t-2-out"], seed=3,
            )
        )
    )  # fmt: skip
    assert later.constraints.min_fresh_real_fraction == 0.5
    assert later.freshness.lineage == "t" and later.seed == 3 and later.dedup.exact is False
    assert {r.name: (r.weight, r.max_fraction) for r in later.sources} == {
        "docs": (1.0, 0.5),
        "t-2-out": (1.0, 1.0),
        "t-1-out": (0.0, 1.0),
    }
    no_floor = curator.Policy.from_dict(
        tomllib.loads(
            loop_policy(
                "n", 2, rows=100, floor=0.0, real_source="docs", previous_source="n-1-out",
                other_sources=["docs", "n-1-out"], seed=3,
            )
        )
    )  # fmt: skip
    assert {r.name: r.weight for r in no_floor.sources} == {"docs": 0.0, "n-1-out": 1.0}


def test_real_text_is_pythons_own_documentation():
    paragraphs = real_text_corpus()
    assert len(paragraphs) > 2000 and len(set(paragraphs)) == len(paragraphs)
    assert all(len(p.split()) >= 12 for p in paragraphs)
    assert paragraphs == real_text_corpus()  # a fixed order
    random.Random(0).shuffle(paragraphs)  # the demo shuffles a copy
    assert real_text_corpus() != paragraphs


def test_real_text_does_not_depend_on_what_the_process_imported(monkeypatch):
    from curator.loop.demo import STDLIB_MODULES, stdlib_paragraphs

    before = stdlib_paragraphs()
    module = __import__(STDLIB_MODULES[0])

    def added() -> None:
        """A paragraph that a library patched into a standard module at run time, long enough
        to count as a paragraph of the demo's real text if it were read from this process."""

    added.__module__ = module.__name__
    monkeypatch.setattr(module, "zz_added_by_a_library", added, raising=False)
    assert stdlib_paragraphs() == before
