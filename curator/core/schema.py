"""The provenance columns: the single source of truth for their names, Arrow types and values.

Every shard carries these columns beside the content (``text`` or ``image``) and the input's own
columns. ``schemas/provenance.schema.json`` is generated from this module
(``python -m curator.core.schema > schemas/provenance.schema.json``) and a test keeps the two equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal

import pyarrow as pa

#: Version of the provenance columns. Written into every shard's Parquet footer under
#: :data:`FOOTER_SCHEMA_VERSION_KEY`; bump it when a column is added or its meaning changes.
SCHEMA_VERSION: Final = "1.0"

FOOTER_SCHEMA_VERSION_KEY: Final = "curator.schema_version"
FOOTER_CURATOR_VERSION_KEY: Final = "curator.version"
FOOTER_RUN_KEY: Final = "curator.ingest_id"
#: Footer key of a shard whose `n_tokens` curator counted: JSON of the tokenizer's path, sha256
#: and vocabulary size (:class:`curator.core.tokenizer.TokenizerInfo`).
FOOTER_TOKENIZER_KEY: Final = "curator.tokenizer"

Origin = Literal["real", "synthetic", "unknown"]
ORIGINS: Final[tuple[str, ...]] = ("real", "synthetic", "unknown")

Evidence = Literal[
    "declared",
    "c2pa",
    "iptc",
    "generator-metadata",
    "model-lineage",
    "near-duplicate",
    "time-prior",
    "detector",
]
#: Evidence codes, strongest first (the order in which inference lets one override another).
EVIDENCE: Final[tuple[str, ...]] = (
    "declared",
    "c2pa",
    "iptc",
    "generator-metadata",
    "model-lineage",
    "near-duplicate",
    "time-prior",
    "detector",
)

#: Content columns: a sample has exactly one of these.
TEXT_COLUMN: Final = "text"
IMAGE_COLUMN: Final = "image"
CONTENT_COLUMNS: Final = (TEXT_COLUMN, IMAGE_COLUMN)

#: The longest generation depth a sample may carry.
MAX_GENERATION: Final = 1000


@dataclass(frozen=True)
class ProvenanceColumn:
    """One provenance column: its name, Arrow type, nullability and meaning."""

    name: str
    arrow_type: pa.DataType
    nullable: bool
    description: str


PROVENANCE_COLUMNS: Final[tuple[ProvenanceColumn, ...]] = (
    ProvenanceColumn(
        "sample_id",
        pa.string(),
        False,
        "Unique in the store and stable when the same input is ingested again: `<source>/<key>`.",
    ),
    ProvenanceColumn(
        "content_hash",
        pa.string(),
        False,
        "xxh3-128 of the normalised content, 32 lowercase hex digits: the exact-duplicate key and "
        "the freshness key. Text: NFC, whitespace runs folded to one space, ends trimmed, UTF-8. "
        "Image: decoded pixels as RGBA with their size.",
    ),
    ProvenanceColumn(
        "origin",
        pa.string(),
        False,
        "`real`, `synthetic` or `unknown` (dictionary-encoded in Parquet).",
    ),
    ProvenanceColumn(
        "generation",
        pa.int16(),
        True,
        "0 for real; k >= 1 for synthetic (1 + the generation of the model that made it); "
        "null for unknown.",
    ),
    ProvenanceColumn("origin_confidence", pa.float32(), False, "Confidence in `origin`, 0..1."),
    ProvenanceColumn("origin_evidence", pa.string(), False, "Why `origin` is what it is."),
    ProvenanceColumn("source", pa.string(), False, "The dataset or crawl the sample came from."),
    ProvenanceColumn("model", pa.string(), True, "The generator, for synthetic samples."),
    ProvenanceColumn(
        "parent_id", pa.string(), True, "The sample this one was derived from, if any."
    ),
    ProvenanceColumn(
        "collected_at",
        pa.timestamp("us", tz="UTC"),
        True,
        "When the content was created or captured, if known (UTC).",
    ),
    ProvenanceColumn("ingest_id", pa.string(), False, "The run that wrote the row."),
)

PROVENANCE_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in PROVENANCE_COLUMNS)

#: The token-count column that `--tokenizer` (ingest, tag) and `curator tokens` add.
N_TOKENS_COLUMN: Final = "n_tokens"

#: Columns a shard may carry beside the provenance columns, written by curator itself.
OPTIONAL_COLUMNS: Final[tuple[ProvenanceColumn, ...]] = (
    ProvenanceColumn(
        N_TOKENS_COLUMN,
        pa.int32(),
        True,
        "Tokens of the text without special tokens, counted by the tokenizer the Parquet footer "
        f"key `{FOOTER_TOKENIZER_KEY}` names; null for images. Added by `--tokenizer` or "
        "`curator tokens`.",
    ),
)
#: Names an input column may not have (it would shadow a provenance or content column).
RESERVED_NAMES: Final[frozenset[str]] = frozenset(PROVENANCE_NAMES)

#: Provenance columns that Parquet dictionary-encodes (few distinct values per shard).
DICTIONARY_COLUMNS: Final[tuple[str, ...]] = (
    "origin",
    "origin_evidence",
    "source",
    "model",
    "ingest_id",
)

#: Source names become directory names under `shards/` and the prefix of `sample_id`.
SOURCE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def provenance_schema() -> pa.Schema:
    """The Arrow schema of the provenance columns, in their canonical order."""
    return pa.schema(
        [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in PROVENANCE_COLUMNS]
    )


def footer_metadata(
    ingest_id: str, curator_version: str, tokenizer: dict[str, object] | None = None
) -> dict[bytes, bytes]:
    """Key-value metadata every shard's Parquet footer carries; with `tokenizer` (the JSON of a
    :class:`~curator.core.tokenizer.TokenizerInfo`), the one that counted `n_tokens`."""
    metadata = {
        FOOTER_SCHEMA_VERSION_KEY.encode(): SCHEMA_VERSION.encode(),
        FOOTER_CURATOR_VERSION_KEY.encode(): curator_version.encode(),
        FOOTER_RUN_KEY.encode(): ingest_id.encode(),
    }
    if tokenizer is not None:
        metadata[FOOTER_TOKENIZER_KEY.encode()] = json.dumps(tokenizer, sort_keys=True).encode()
    return metadata


def footer_tokenizer(metadata: dict[bytes, bytes] | None) -> dict[str, object] | None:
    """The tokenizer (path, sha256, vocab_size) a shard's footer metadata names, if any."""
    raw = (metadata or {}).get(FOOTER_TOKENIZER_KEY.encode())
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_type(column: ProvenanceColumn) -> dict[str, object]:
    t = column.arrow_type
    base: dict[str, object]
    if column.name == "origin":
        base = {"type": "string", "enum": list(ORIGINS)}
    elif column.name == "origin_evidence":
        base = {"type": "string", "enum": list(EVIDENCE)}
    elif column.name == "content_hash":
        base = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
    elif column.name == "source":
        base = {"type": "string", "pattern": SOURCE_NAME_PATTERN}
    elif column.name == "generation":
        base = {"type": "integer", "minimum": 0, "maximum": MAX_GENERATION}
    elif column.name == "origin_confidence":
        base = {"type": "number", "minimum": 0, "maximum": 1}
    elif pa.types.is_timestamp(t):
        base = {"type": "string", "format": "date-time"}
    elif pa.types.is_integer(t):
        base = {"type": "integer", "minimum": 0}
    else:
        base = {"type": "string"}
    if column.nullable:
        base["type"] = [base["type"], "null"]
    base["description"] = column.description
    base["x-arrow-type"] = str(t)
    return base


def provenance_json_schema() -> dict[str, object]:
    """The JSON Schema of one sample's provenance columns (what `schemas/` ships)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://curator.dev/schemas/provenance.schema.json",
        "title": "curator provenance columns",
        "description": (
            "The provenance columns every curator shard carries. The Parquet footer key "
            f"`{FOOTER_SCHEMA_VERSION_KEY}` records the version."
        ),
        "x-schema-version": SCHEMA_VERSION,
        "type": "object",
        "properties": {c.name: _json_type(c) for c in (*PROVENANCE_COLUMNS, *OPTIONAL_COLUMNS)},
        "required": list(PROVENANCE_NAMES),
        "allOf": [
            {
                "if": {"properties": {"origin": {"const": "real"}}},
                "then": {"properties": {"generation": {"const": 0}}},
            },
            {
                "if": {"properties": {"origin": {"const": "synthetic"}}},
                "then": {"properties": {"generation": {"type": "integer", "minimum": 1}}},
            },
            {
                "if": {"properties": {"origin": {"const": "unknown"}}},
                "then": {"properties": {"generation": {"type": "null"}}},
            },
        ],
    }


if __name__ == "__main__":  # pragma: no cover - regenerates schemas/provenance.schema.json
    print(json.dumps(provenance_json_schema(), indent=2))
