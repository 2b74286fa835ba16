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
from curator.report import build_report
from tests.conftest import invoke

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
            "Composition per manifest", "Generation depth", "Model metrics per generation",
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
