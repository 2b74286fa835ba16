"""`curator report`: a self-contained HTML report whose plots exist and are valid images."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

import curator
from curator.loop.demo import LOOPS, TEXT_SOURCE
from curator.loop.plots import (
    FRESH_FLOOR_COLOUR,
    LINEAGE_COLOURS,
    LOOP_COLOURS,
    NO_FLOOR_COLOUR,
    lineage_colours,
)
from curator.loop.report import build_report
from curator.loop.report_words import number
from tests.conftest import DEMO_GENERATIONS, invoke
from tests.test_assemble import POLICY, make_store

FIGURES = (
    "composition",
    "generations",
    "metrics",
    "images",
    "duplicates",
    "contamination",
    "simulation",
)


def _check_png(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        return image.size


def test_the_demo_report_holds_every_plot_and_opens_with_no_network(demo):
    report = Path(demo["directory"]) / "report"
    page = (report / "index.html").read_text(encoding="utf-8")
    embedded = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', page)
    assert len(embedded) == len(FIGURES)
    for stem, (_alt, data) in zip(FIGURES, embedded, strict=True):
        png = (report / f"{stem}.png").read_bytes()
        assert base64.b64decode(data) == png  # the page embeds the very file
        width, height = _check_png(png)
        assert width >= 400 and height >= 250, (stem, width, height)
        svg = ET.parse(report / f"{stem}.svg").getroot()
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        assert len(list(svg.iter())) > 50  # drawn, not an empty canvas
    # nothing is fetched: no script, no stylesheet link, no remote image
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for title in (
        "Summary", "About the demo",
        "Composition per manifest", "Generation depth", "Model metrics per generation",
        "Generated images per generation", "Near-duplicate clusters",
        "Contamination by known synthetic samples", "The Gaussian self-consuming loop",
    ):  # fmt: skip
        assert f"<h2>{title}</h2>" in page
    # the tables carry the numbers behind the plots
    assert "<td>text-fresh-floor</td><td>2</td><td>text-fresh-floor-gen-2</td>" in page
    assert "<td>crawl</td><td>120</td>" in page


def test_report_cli_for_one_lineage(demo, runner, tmp_path):
    store = str(Path(demo["directory"]) / "store")
    out = tmp_path / "one"
    result = invoke(
        runner, "report", "--store", store, "--out", str(out), "--lineage", "text-no-floor",
        "--no-simulation", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    assert written["index"] == str(out / "index.html")
    assert written["sections"] == list(
        (
            "Summary", "About the demo", "Composition per manifest", "Generation depth", "Model metrics per generation",
            "Generated images per generation", "Near-duplicate clusters",
            "Contamination by known synthetic samples",
        )
    )  # fmt: skip
    # no model of this lineage made images, so that section has no figure
    assert sorted(Path(p).name for p in written["figures"]) == sorted(
        f"{stem}.{ext}"
        for stem in ("composition", "generations", "metrics", "duplicates", "contamination")
        for ext in ("png", "svg")
    )
    page = (out / "index.html").read_text()
    assert "No model of these lineages generated images." in page
    # one lineage: the summary speaks of it alone, with no pair to compare
    assert "1 lineage: <code>text-no-floor</code> (4 generations)." in page
    assert "without a floor" not in page
    composition = page.split("<h2>Composition per manifest</h2>")[1].split("<h2>")[0]
    assert "<td>text-no-floor</td>" in composition and "digits-no-floor" not in composition
    # writing again into an earlier report replaces it whole
    (out / "stale.png").write_bytes(b"an old plot")
    again = invoke(runner, "report", "--store", store, "--out", str(out), "--no-simulation")
    assert again.exit_code == 0, again.output
    assert not (out / "stale.png").exists() and (out / "images.png").exists()
    assert again.output.startswith(f"Report: {out / 'index.html'}\n")


def test_report_of_an_empty_store_says_what_to_run(tmp_path):
    store = curator.init_store(tmp_path / "store")
    result = build_report(store, tmp_path / "report", simulation=False)
    assert result.figures == []
    page = Path(result.index).read_text()
    assert "No manifest yet. Assemble a training set" in page
    assert "The store holds no sample yet" in page
    assert "No model was registered with metrics" in page
    assert (
        "No near-duplicate cluster is recorded. Find them with <code>curator dedup</code>" in page
    )
    assert "Contamination needs near-duplicate clusters" in page
    assert "<p>The store holds no sample yet. No lineage: nothing was assembled yet.</p>" in page
    assert "About the demo" not in page


def test_report_errors(runner, tmp_path):
    store = curator.init_store(tmp_path / "store")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = invoke(runner, "report", "--store", store.root, "--out", str(busy))
    assert result.exit_code == 1
    assert f"Error: `{busy}` is not empty and holds no earlier report" in result.output
    assert "Hint: pass a new or empty directory" in result.output
    assert (busy / "notes.txt").read_text() == "mine"
    earlier = tmp_path / "r"
    build_report(store, earlier, simulation=False)
    before = sorted(p.name for p in earlier.iterdir())
    missing = invoke(
        runner, "report", "--store", store.root, "--out", str(earlier), "--lineage", "nope"
    )
    assert missing.exit_code == 1
    assert f"Error: lineage `nope` has no manifest in store `{store.root}`" in missing.output
    # a failed report leaves the earlier one as it was, and no temporary directory behind
    assert sorted(p.name for p in earlier.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "r", "store"]
    with pytest.raises(curator.CuratorError, match="is a file"):
        build_report(store, busy / "notes.txt")


def _section(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>")[1].split("<h2>")[0]


def _demo_series(demo, lineage: str, metric: str) -> list:
    rows = sorted(
        (r for r in demo["data"]["metrics"] if r["lineage"] == lineage),
        key=lambda r: r["generation"],
    )
    return [r[metric] for r in rows]


def test_the_demo_report_opens_with_a_summary_computed_from_the_data(demo):
    page = (Path(demo["directory"]) / "report" / "index.html").read_text(encoding="utf-8")
    assert page.index("<h2>Summary</h2>") < page.index("<h2>About the demo</h2>")
    assert page.index("<h2>About the demo</h2>") < page.index("<h2>Composition per manifest</h2>")
    summary = _section(page, "Summary")
    assert (
        "4 lineages: <code>text-no-floor</code> (4 generations), <code>text-fresh-floor</code> "
        "(4 generations), <code>digits-no-floor</code> (4 generations), "
        "<code>digits-fresh-floor</code> (4 generations)."
    ) in summary
    assert (
        "Models were registered with 5 metrics: vocabulary, distinct_bigrams, perplexity, "
        "frechet_distance, pixel_variance."
    ) in summary
    bare = _demo_series(demo, "text-no-floor", "vocabulary")
    held = _demo_series(demo, "text-fresh-floor", "vocabulary")
    spread = max(abs(v - held[0]) / held[0] for v in held)
    assert (
        "<li>vocabulary: distinct words in the model&#x27;s samples (words; higher is better): "
        f"without a floor {bare[0]:,} → {bare[-1]:,} over {DEMO_GENERATIONS} generations "
        f"({100 * (bare[-1] - bare[0]) / bare[0]:+.1f} %); with the floor {held[0]:,} → "
        f"{held[-1]:,}, every generation within {100 * spread:.1f} % of its first</li>"
    ) in summary
    fid = _demo_series(demo, "digits-no-floor", "frechet_distance")
    assert f"without a floor {number(fid[0])} → {number(fid[-1])} over 4 generations" in summary
    assert (
        "<code>text-fresh-floor</code> keeps at least 50 % fresh real data in each. After 4 "
        "generations the loop without a floor is worse than the one with it on 3 of 3 metrics"
    ) in summary
    about = _section(page, "About the demo")
    # the real text in the store: Python's own documentation less the held-out paragraphs (its
    # size depends on the Python build, so it is read from the store, not written down here)
    store = curator.open_store(demo["directory"] / "store")
    (real,) = store.sql(
        f"SELECT count(*) AS n FROM samples WHERE source = '{TEXT_SOURCE}' AND origin = 'real'"
    ).to_pylist()
    assert f"{real['n']:,} paragraphs of the standard library" in about
    assert "a training set (200 rows for text, 100 rows for digits)" in about
    assert "at least 50 % fresh real data" in about
    assert "<b>A crawl of unknown origin</b>: 120 texts" in about
    # what the contamination and cluster numbers cover
    clusters = _section(page, "Near-duplicate clusters")
    assert "What <code>curator dedup</code> found over the store's" in clusters
    assert "methods run: minhash;" in clusters
    assert "Covers the " in _section(page, "Contamination by known synthetic samples")


def test_the_metrics_table_has_a_row_per_generation_and_a_column_per_metric_and_lineage(demo):
    page = (Path(demo["directory"]) / "report" / "index.html").read_text(encoding="utf-8")
    tables = re.findall(r'<table class="metrics">(.*?)</table>', page)
    shapes = []
    for table in tables:
        head, body = table.split("</thead>")
        metrics = re.findall(r'<th colspan="2">([^<]+)</th>', head)
        lineages = re.findall(r"<th>([^<]+)</th>", head)
        rows = [re.findall(r"<td>([^<]*)</td>", row) for row in body.split("</tr>")[:-1]]
        shapes.append((metrics, lineages, [len(r) for r in rows], [r[0] for r in rows]))
        if metrics[0] == "vocabulary":
            assert rows[-1][1:3] == [
                f"{_demo_series(demo, name, 'vocabulary')[-1]:,}"
                for name in ("text-no-floor", "text-fresh-floor")
            ]
    generations = [str(g) for g in range(1, DEMO_GENERATIONS + 1)]
    assert shapes == [
        (
            ["vocabulary", "distinct_bigrams", "perplexity"],
            ["text-no-floor", "text-fresh-floor"] * 3,
            [7] * DEMO_GENERATIONS,
            generations,
        ),
        (
            ["frechet_distance", "pixel_variance"],
            ["digits-no-floor", "digits-fresh-floor"] * 2,
            [5] * DEMO_GENERATIONS,
            generations,
        ),
    ]


def test_one_colour_per_meaning_in_every_chart(demo):
    assert set(LOOP_COLOURS) == set(LOOPS)  # the demo's loops, each with its colour
    assert lineage_colours(
        ["text-no-floor", "main", "text-fresh-floor", "digits-no-floor", "digits-fresh-floor", "b"]
    ) == {
        "text-no-floor": NO_FLOOR_COLOUR,
        "main": LINEAGE_COLOURS[0],
        "text-fresh-floor": FRESH_FLOOR_COLOUR,
        "digits-no-floor": NO_FLOOR_COLOUR,
        "digits-fresh-floor": FRESH_FLOOR_COLOUR,
        "b": LINEAGE_COLOURS[1],
    }
    report = Path(demo["directory"]) / "report"
    default_cycle = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # matplotlib's C0..C3
    for stem in ("generations", "metrics", "simulation"):
        svg = (report / f"{stem}.svg").read_text()
        assert f"stroke: {NO_FLOOR_COLOUR}" in svg and f"stroke: {FRESH_FLOOR_COLOUR}" in svg, stem
        assert not any(colour in svg for colour in default_cycle), stem
    # legends and titles say what each colour is, in words
    metrics = (report / "metrics.svg").read_text()
    for label in ("text-no-floor", "text-fresh-floor", "digits-no-floor", "digits-fresh-floor"):
        assert f">{label}</text>" in metrics
    assert "distinct words in the model" in metrics and "lower is better" in metrics
    composition = (report / "composition.svg").read_text()
    for label in ("fresh real", "used real", "synthetic, gen 1", "unknown"):
        assert f">{label}</text>" in composition
    assert ">gen 0 (real)</text>" in (report / "generations.svg").read_text()


def test_the_image_grid_has_no_blank_band(demo):
    import numpy as np

    with Image.open(Path(demo["directory"]) / "report" / "images.png") as image:
        pixels = np.asarray(image.convert("L"))
    inked = (pixels < 250).any(axis=1)
    runs, run = [], 0
    for row in inked:
        run = 0 if row else run + 1
        runs.append(run)
    # 2 lineages x (the real row + 4 generations): no blank stretch as tall as a quarter row
    # (a figure title over the grid left one of nearly a whole row)
    assert max(runs) < pixels.shape[0] / 10 / 4, max(runs)


def test_the_summary_of_another_store_speaks_generally(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 150, ("synthetic", "gen"): 100})
    policy = curator.Policy.from_dict(
        {**POLICY, "constraints": {"min_real_fraction": 0.5}, "target": {"rows": 40}}
    )
    for k, (perplexity, score) in enumerate([(41.2, 0.5), (38.0, 0.75)], 1):
        manifest = store.assemble(policy, tmp_path / f"g{k}", lineage="main")
        store.register_model(
            f"m-{k}",
            trained_on=manifest.manifest_id,
            metrics={"perplexity": perplexity, "score": score},
        )
    page = Path(build_report(store, tmp_path / "r", simulation=False).index).read_text()
    assert (
        "<p>The store holds 250 samples: 150 real, 100 synthetic (generation 1). 1 lineage: "
        "<code>main</code> (2 generations). Models were registered with 2 metrics: perplexity, "
        "score.</p>"
    ) in page
    assert (
        "<li><code>main</code>, perplexity: perplexity of held-out real text under the model "
        "(per word; lower is better): 41.2 at generation 1 → 38 at generation 2 (-7.8 %)</li>"
    ) in page
    assert (
        "<li><code>main</code>, score (as registered; direction unknown): 0.5 at generation 1 "
        "→ 0.75 at generation 2 (+50.0 %)</li>"
    ) in page
    assert "About the demo" not in page and "floor" not in page
    assert '<th colspan="1">perplexity</th><th colspan="1">score</th>' in page
