import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq

import curator
from curator.core.schema import (
    FOOTER_SCHEMA_VERSION_KEY,
    PROVENANCE_NAMES,
    SCHEMA_VERSION,
    provenance_json_schema,
    provenance_schema,
)

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_is_generated_from_the_module():
    shipped = json.loads((ROOT / "schemas" / "provenance.schema.json").read_text())
    assert shipped == provenance_json_schema()
    jsonschema.Draft202012Validator.check_schema(shipped)


def test_column_names_and_arrow_types_are_fixed():
    assert PROVENANCE_NAMES == (
        "sample_id", "content_hash", "origin", "generation", "origin_confidence",
        "origin_evidence", "source", "model", "parent_id", "collected_at", "ingest_id",
    )  # fmt: skip
    schema = provenance_schema()
    assert schema.field("generation").type == pa.int16()
    assert schema.field("origin_confidence").type == pa.float32()
    assert schema.field("collected_at").type == pa.timestamp("us", tz="UTC")
    assert not schema.field("sample_id").nullable


def test_every_shard_row_validates_and_the_footer_has_the_version(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "one two"}, {"text": "three"}])
    store.ingest(
        [path], source="web", origin="real", collected_at=__import__("datetime").date(2021, 5, 1)
    )
    (shard,) = store.live_shards()
    parquet = pq.ParquetFile(Path(store.root) / shard["path"])
    metadata = parquet.schema_arrow.metadata
    assert metadata[FOOTER_SCHEMA_VERSION_KEY.encode()] == SCHEMA_VERSION.encode()
    assert metadata[b"curator.version"] == curator.__version__.encode()
    table = parquet.read()
    for name, field in zip(PROVENANCE_NAMES, provenance_schema(), strict=True):
        assert table.schema.field(name).type == field.type
    validator = jsonschema.Draft202012Validator(provenance_json_schema())
    for row in table.select(list(PROVENANCE_NAMES)).to_pylist():
        row["collected_at"] = row["collected_at"].isoformat()
        validator.validate(row)


def test_schema_rejects_a_real_row_with_a_generation():
    validator = jsonschema.Draft202012Validator(provenance_json_schema())
    row = {
        "sample_id": "web/a", "content_hash": "0" * 32, "origin": "real", "generation": 2,
        "origin_confidence": 1.0, "origin_evidence": "declared", "source": "web", "model": None,
        "parent_id": None, "collected_at": None, "ingest_id": "r",
    }  # fmt: skip
    assert not validator.is_valid(row)
    row["generation"] = 0
    assert validator.is_valid(row)
