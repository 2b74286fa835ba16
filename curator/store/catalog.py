"""The catalog: an embedded DuckDB database beside the shards.

Tables: ``meta``, ``runs``, ``shards``, ``shard_composition``, ``columns``, ``manifests``,
``models``, ``tokenizers`` (which tokenizer counted a shard's ``n_tokens``) and ``ledger_files``;
views: ``samples`` (every row of every live shard), the row-level
ledgers ``usage`` (which samples each manifest used), ``duplicates``, ``label_events`` and
``label_conflicts`` over their Parquet files (:mod:`curator.store.ledgers`), ``composition`` and
``lineage_edges`` (how data flows: sample → manifest → model → sample). Shard and ledger paths are
relative to the store directory, so
``duckdb catalog.duckdb`` started inside the store answers queries on ``samples`` with no
curator code involved.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from curator.core.schema import PROVENANCE_COLUMNS
from curator.store.paths import sql_literal as sql_literal  # re-exported: callers use catalog's
from curator.store.paths import store_path as store_path

if TYPE_CHECKING:
    from datetime import datetime

    import duckdb

    from curator.store.shards import WrittenShard

CATALOG_VERSION = "1"

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    command VARCHAR NOT NULL,
    status VARCHAR NOT NULL,            -- committed | failed
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    seconds DOUBLE NOT NULL,
    source VARCHAR,
    args JSON,
    rows_read BIGINT NOT NULL,
    ingested BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    content_bytes BIGINT NOT NULL,
    shards INTEGER NOT NULL,
    rejects_path VARCHAR,
    curator_version VARCHAR NOT NULL,
    message VARCHAR
);
CREATE TABLE IF NOT EXISTS shards (
    shard_id VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL UNIQUE,       -- relative to the store directory
    source VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    content_kind VARCHAR NOT NULL,      -- text | image
    rows BIGINT NOT NULL,
    file_bytes BIGINT NOT NULL,
    content_bytes BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    schema_version VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    live BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS shard_composition (
    shard_id VARCHAR NOT NULL,
    origin VARCHAR NOT NULL,
    generation SMALLINT,
    source VARCHAR NOT NULL,
    rows BIGINT NOT NULL,
    content_bytes BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS columns (
    name VARCHAR PRIMARY KEY,           -- an input column of some live shard
    arrow_type VARCHAR NOT NULL         -- its Arrow type: one type per name across the store
);
CREATE TABLE IF NOT EXISTS manifests (
    manifest_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    lineage VARCHAR NOT NULL,
    sequence INTEGER NOT NULL,          -- 1, 2, … within the lineage
    created_at TIMESTAMPTZ NOT NULL,
    seed BIGINT NOT NULL,
    unit VARCHAR NOT NULL,
    target BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    units BIGINT NOT NULL,
    out_dir VARCHAR NOT NULL,
    manifest_path VARCHAR NOT NULL,     -- relative to the store
    policy JSON NOT NULL,
    composition JSON NOT NULL,
    curator_version VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    name VARCHAR PRIMARY KEY,
    generation SMALLINT NOT NULL,       -- its samples are generation + 1
    declared BOOLEAN NOT NULL,          -- generation declared (--generation), not computed
    trained_on VARCHAR,                 -- manifest_id; null for a model trained elsewhere
    lineage VARCHAR,                    -- the lineage of that manifest
    registered_at TIMESTAMPTZ NOT NULL,
    notes VARCHAR,
    unit VARCHAR,                       -- the unit of the fractions (the manifest's policy unit)
    training_rows BIGINT,
    training_units BIGINT,
    real_fraction DOUBLE,
    fresh_real_fraction DOUBLE,
    synthetic_fraction DOUBLE,
    unknown_fraction DOUBLE,
    synthetic_by_generation JSON,       -- {"1": 0.25, …}
    curator_version VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS tokenizers (
    shard_id VARCHAR PRIMARY KEY,       -- a shard whose `n_tokens` curator counted
    path VARCHAR NOT NULL,              -- the tokenizer.json that counted them (absolute)
    sha256 VARCHAR NOT NULL,
    vocab_size BIGINT NOT NULL
);
-- Added with reports: what the model scored when it was evaluated ({"perplexity": 41.2, …}).
ALTER TABLE models ADD COLUMN IF NOT EXISTS metrics JSON;
CREATE OR REPLACE VIEW composition AS
    SELECT c.origin, c.generation, c.source,
           sum(c.rows)::BIGINT AS rows, sum(c.content_bytes)::BIGINT AS content_bytes
    FROM shard_composition c JOIN shards s USING (shard_id)
    WHERE s.live
    GROUP BY ALL;
"""

_SQL_TYPES = {
    "string": "VARCHAR",
    "int16": "SMALLINT",
    "float": "FLOAT",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
}


def empty_samples_select() -> str:
    """A query with the columns of `samples` and no rows (the view of a store with no shards)."""
    columns = [
        f"NULL::{_SQL_TYPES[str(column.arrow_type)]} AS {column.name}"
        for column in PROVENANCE_COLUMNS
    ]
    columns += ["NULL::VARCHAR AS text", "NULL::BLOB AS image"]
    return "SELECT " + ", ".join(columns) + " WHERE false"


def samples_view_sql(paths: list[str]) -> str:
    if not paths:
        return "CREATE OR REPLACE VIEW samples AS " + empty_samples_select()
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return (
        "CREATE OR REPLACE VIEW samples AS SELECT * FROM read_parquet(["
        + listed
        + "], union_by_name = true)"
    )


#: Edges of the lineage graph, in the direction data flows: a sample is used in a manifest, a
#: manifest trains a model, a model generates samples, a sample is derived into another.
LINEAGE_VIEW = """
CREATE OR REPLACE VIEW lineage_edges AS
    SELECT 'sample' AS src_kind, sample_id AS src_id, 'manifest' AS dst_kind, manifest_id AS dst_id,
           'used_in' AS relation
    FROM usage WHERE sample_id IS NOT NULL
    UNION ALL
    SELECT 'manifest', trained_on, 'model', name, 'trained' FROM models WHERE trained_on IS NOT NULL
    UNION ALL
    SELECT 'model', model, 'sample', sample_id, 'generated' FROM samples WHERE model IS NOT NULL
    UNION ALL
    SELECT 'sample', parent_id, 'sample', sample_id, 'derived' FROM samples WHERE parent_id IS NOT NULL
"""


def register_shard(
    con: duckdb.DuckDBPyConnection,
    shard: WrittenShard,
    relative: str,
    source: str,
    run_id: str,
    created_at: datetime,
) -> str:
    """Insert a live shard and its composition (inside the caller's transaction); its id."""
    from curator.core.schema import SCHEMA_VERSION

    shard_id = os.path.basename(relative)[: -len(".parquet")]
    con.execute(
        "INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, true)",
        [shard_id, relative, source, run_id, shard.content_kind, shard.rows, shard.file_bytes,
         shard.content_bytes, shard.sha256, SCHEMA_VERSION, created_at],
    )  # fmt: skip
    for (origin, generation, group), (rows, nbytes) in sorted(
        shard.composition.items(),
        key=lambda kv: (kv[0][0], kv[0][1] if kv[0][1] is not None else -1, kv[0][2]),
    ):
        con.execute(
            "INSERT INTO shard_composition VALUES (?, ?, ?, ?, ?, ?)",
            [shard_id, origin, generation, group, rows, nbytes],
        )
    _register_tokenizer(con, shard_id, shard.path, relative)
    return shard_id


def _register_tokenizer(
    con: duckdb.DuckDBPyConnection, shard_id: str, written: str, relative: str
) -> None:
    """Record the tokenizer a shard's footer names (``curator.tokenizer``), whichever command
    wrote the shard (ingest, tokens, or infer rewriting a counted shard)."""
    import pyarrow.parquet as pq

    from curator.core.schema import footer_tokenizer

    root = con.execute("SELECT current_setting('file_search_path')").fetchall()[0][0]
    path = store_path(root, relative) if root else written
    try:
        tokenizer = footer_tokenizer(pq.read_schema(path).metadata)
    except OSError:
        return
    if tokenizer is None:
        return
    con.execute(
        "CREATE TABLE IF NOT EXISTS tokenizers (shard_id VARCHAR PRIMARY KEY, path VARCHAR NOT NULL, "
        "sha256 VARCHAR NOT NULL, vocab_size BIGINT NOT NULL)"
    )
    con.execute(
        "INSERT INTO tokenizers VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [shard_id, tokenizer.get("path"), tokenizer.get("sha256"), tokenizer.get("vocab_size")],
    )


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create any table or view a newer curator added to an older catalog, and turn ledger
    tables into ledger files (:func:`curator.store.ledgers.ensure`; idempotent). Call it under
    the write lock, with the store as the connection's ``file_search_path``."""
    from curator.store import ledgers

    con.execute(DDL)
    ledgers.ensure(con)
    con.execute(LINEAGE_VIEW)


def create(con: duckdb.DuckDBPyConnection, curator_version: str) -> None:
    """Create the catalog tables and views in an empty database."""
    from curator.store import ledgers

    con.execute(DDL)
    con.execute(
        "INSERT INTO meta VALUES ('catalog_version', ?), ('created_by', ?)",
        [CATALOG_VERSION, f"curator {curator_version}"],
    )
    con.execute(samples_view_sql([]))
    ledgers.create(con)
    con.execute(LINEAGE_VIEW)


def rebuild_samples_view(con: duckdb.DuckDBPyConnection) -> None:
    """Point `samples` at the live shards (inside the caller's transaction).

    Raises:
        StoreError: a live shard path leads out of the store (:func:`store_path`; the store is
            the connection's ``file_search_path``, as :meth:`curator.Store.connect` sets it).
    """
    paths = [
        row[0] for row in con.execute("SELECT path FROM shards WHERE live ORDER BY path").fetchall()
    ]
    root = con.execute("SELECT current_setting('file_search_path')").fetchall()[0][0]
    if root:
        for path in paths:
            store_path(root, path)
    con.execute(samples_view_sql(paths))
