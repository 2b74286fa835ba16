from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curator
from curator.core.schema import PROVENANCE_NAMES


def test_tag_keeps_every_original_column_in_order_then_provenance(tmp_path):
    table = pa.table(
        {"z_first": [3, 2, 1], "body": ["a", "b", "c"], "meta": [{"k": 1}, {"k": 2}, {"k": 3}]}
    )
    pq.write_table(table, tmp_path / "in.parquet")
    result = curator.tag(
        [tmp_path / "in.parquet"],
        tmp_path / "out",
        source="mine",
        origin="synthetic",
        generation=1,
        model="gen-a",
        text_column="body",
    )
    assert (result.rows_read, result.written, result.rejected) == (3, 3, 0)
    assert [p.rsplit("/", 1)[1] for p in result.files] == ["part-00000.parquet"]
    out = pq.read_table(result.files[0])
    assert out.schema.names == ["z_first", "body", "meta", *PROVENANCE_NAMES]
    assert out.select(["z_first", "body", "meta"]).equals(table)
    assert out["sample_id"].to_pylist() == [
        "mine/in.parquet:0",
        "mine/in.parquet:1",
        "mine/in.parquet:2",
    ]
    assert set(out["model"].to_pylist()) == {"gen-a"}
    assert out.schema.metadata[b"curator.schema_version"] == b"1.0"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000.parquet"]


def test_tag_rejects_go_beside_the_output(tmp_path, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "ok"}, "nope", {"text": ""}])
    result = curator.tag([path], tmp_path / "out", source="s", origin="unknown")
    assert (result.rows_read, result.written, result.rejected) == (3, 1, 2)
    lines = [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in lines] == [(2, "malformed_json"), (3, "empty_content")]


def test_tag_strict_writes_no_shard_and_refuses_a_used_directory(tmp_path, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "ok"}, "nope"])
    with pytest.raises(curator.IngestFailed):
        curator.tag([path], tmp_path / "out", source="s", origin="real", strict=True)
    assert not list((tmp_path / "out").glob("*.parquet"))
    curator.tag([path], tmp_path / "out2", source="s", origin="real")
    with pytest.raises(curator.InputError, match="already holds Parquet files"):
        curator.tag([path], tmp_path / "out2", source="s", origin="real")
