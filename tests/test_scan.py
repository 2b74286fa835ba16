"""polars LazyFrames over a store's live samples (`Store.scan`) and over an assembled set
(`Manifest.scan`): exact counts against `curator stats` and the manifest, projection, and no
superseded shard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import curator
from curator.store.scan import ScanError
from tests.conftest import invoke

POLICY = """name = "{name}"
seed = 1
[target]
rows = {rows}
[constraints]
max_unknown_fraction = 0.5
[output]
shard_rows = 7
format = "{fmt}"
"""


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """30 real rows (with an input column `topic`), 12 synthetic, and 9 of unknown origin of
    which 5 were collected in 2020: `infer` relabels those 5 by the time prior, which replaces
    the crawl's shard by new ones (the old one is no longer live)."""
    root = tmp_path_factory.mktemp("scan")
    store = curator.init_store(root / "store")
    store.ingest(
        [_jsonl(root / "web.jsonl", [{"text": f"real page {i}", "topic": i % 3} for i in range(30)])],
        source="web", origin="real",
    )  # fmt: skip
    store.ingest(
        [_jsonl(root / "gen.jsonl", [{"text": f"generated line {i}"} for i in range(12)])],
        source="gen", origin="synthetic", generation=1, model="m-1",
    )  # fmt: skip
    crawl = [
        {"text": f"crawled {i}", "when": f"2020-01-0{i + 1}" if i < 5 else None} for i in range(9)
    ]
    store.ingest(
        [_jsonl(root / "crawl.jsonl", crawl)],
        source="crawl", origin="unknown", collected_at_column="when",
    )  # fmt: skip
    store.infer()
    sets = {}
    for fmt in ("parquet", "jsonl"):
        policy = root / f"{fmt}.toml"
        policy.write_text(POLICY.format(name=f"set-{fmt}", rows=20, fmt=fmt))
        sets[fmt] = store.assemble(policy, root / f"set-{fmt}", name=f"set-{fmt}")
    return {"root": root, "store": store, "sets": sets}


def test_store_scan_counts_the_live_samples_as_stats_does(world, runner):
    store = world["store"]
    frame = store.scan()
    assert isinstance(frame, pl.LazyFrame)
    assert store.stats().by_origin() == {"real": 35, "synthetic": 12, "unknown": 4}
    counts = frame.group_by("origin").len().collect()
    assert dict(zip(counts["origin"].cast(pl.String), counts["len"], strict=True)) == {
        "real": 35,
        "synthetic": 12,
        "unknown": 4,
    }
    stats = json.loads(invoke(runner, "stats", "--json", env={"CURATOR_STORE": store.root}).output)
    assert frame.select(pl.len()).collect().item() == stats["total_rows"] == 51
    relabelled = frame.filter(pl.col("origin_evidence") == "time-prior").collect()
    assert sorted(relabelled["sample_id"]) == [f"crawl/crawl.jsonl:{i}" for i in range(1, 6)]
    # an input column of one source reads as null in the others
    topic = frame.select("source", "topic").filter(pl.col("topic").is_not_null()).collect()
    assert topic.height == 30 and set(topic["source"]) == {"web"}


def test_store_scan_projects_columns(world):
    frame = world["store"].scan(columns=["sample_id", "generation"])
    assert frame.collect_schema().names() == ["sample_id", "generation"]
    synthetic = frame.filter(pl.col("generation") == 1).collect()
    assert synthetic.height == 12


def test_store_scan_reads_only_live_shards(world):
    store = world["store"]
    live = {row["path"] for row in store.live_shards()}
    every = {row["path"] for row in store.sql("SELECT path FROM shards").to_pylist()}
    assert len(every - live) == 1  # the crawl's shard, superseded by infer
    assert store.scan(["sample_id"]).collect()["sample_id"].n_unique() == 51


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_manifest_scan_counts_the_set(world, fmt):
    manifest = world["sets"][fmt]
    assert isinstance(manifest, curator.Manifest)
    frame = manifest.scan()
    assert isinstance(frame, pl.LazyFrame)
    overall = manifest.data["composition"]["overall"]
    counts = frame.group_by("origin").len().collect()
    assert dict(zip(counts["origin"].cast(pl.String), counts["len"], strict=True)) == {
        origin: value["rows"] for origin, value in overall["by_origin"].items()
    }
    assert frame.select(pl.len()).collect().item() == manifest.rows == 20
    assert len(manifest.output_locations()) == 3  # 7 + 7 + 6 rows
    loaded = curator.Manifest.load(world["root"] / f"set-{fmt}")
    assert isinstance(loaded, curator.Manifest)
    ids = loaded.scan(["sample_id"]).collect()
    assert ids.columns == ["sample_id"] and ids.height == 20


def test_manifest_scan_reads_only_the_files_the_manifest_lists(world):
    manifest = world["sets"]["parquet"]
    stray = manifest.out_dir / "stray.parquet"
    pl.DataFrame({"sample_id": ["x"], "origin": ["real"]}).write_parquet(stray)
    (manifest.out_dir / "tokens.npy").write_bytes(b"\x93NUMPY")
    try:
        assert manifest.scan().select(pl.len()).collect().item() == 20
    finally:
        stray.unlink()
        (manifest.out_dir / "tokens.npy").unlink()


def test_scan_of_an_unknown_column_is_an_error(world):
    with pytest.raises(ScanError) as error:
        world["sets"]["parquet"].scan(["sample_id", "colour"])
    message = str(error.value)
    assert message.startswith(
        f"no column `colour` in manifest `{world['sets']['parquet'].manifest_id}`"
    )
    assert "Hint: pick from: `" in message and "`origin`" in message
    with pytest.raises(ScanError, match="no column `colour` in store"):
        world["store"].scan(["colour"])
