"""Deciding what of a run is new: rows whose `sample_id` is already in the store (skipped when
the content is the same, rejected naming both hashes when it differs) or repeated in the run, and
one Arrow type per input column across the store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curator.core.errors import IngestFailed
from curator.ingest.snapshot import conflict_reason
from curator.store.base import has_table

if TYPE_CHECKING:
    from curator.ingest.result import IngestResult
    from curator.store.base import StoreBase
    from curator.store.shards import WrittenShard


#: Input formats whose sample keys (without --id-column) are ``<file>:<line or row>``: distinct
#: within an ingest, as input files have distinct relative paths.
POSITION_KEYED = frozenset({"parquet", "jsonl", "csv"})


def drop_known(
    store: StoreBase,
    source: str,
    staged: list[WrittenShard],
    result: IngestResult,
    timeout: float | None = None,
    *,
    checked: Sequence[str] = (),
    keys_unique: bool = False,
) -> tuple[list[Any], int]:
    """Find staged rows whose `sample_id` is already in the store or earlier in this run:
    skip them when the content is the same, reject them when it differs. Rewrites the
    staged shards that lose rows.

    The tasks have already left out what the live shards `checked` hold (the snapshot of
    :mod:`curator.ingest.snapshot`), so only shards of the source committed since then are
    read, and on the common paths (a fresh ingest, a re-ingest of a partly known input) no
    shard is rewritten. `keys_unique` says the staged sample ids cannot repeat (they are
    ``<file>:<row>`` keys of distinct files): with no shard of the source to compare against
    either, there is nothing to read."""
    import duckdb
    import pyarrow.parquet as pq

    from curator.ingest.readers import Reject
    from curator.store.shards import LOCATIONS_SUFFIX, drop_rows

    snapshot = set(checked)
    with store.connect(read_only=True, timeout=timeout) as con:
        existing = [
            row[0]
            for row in con.execute(
                "SELECT path FROM shards WHERE live AND source = ? ORDER BY path", [source]
            ).fetchall()
            if row[0] not in snapshot
        ]
    if keys_unique and not existing:
        return [], 0
    staged_paths = [s.path for s in staged]
    mem = duckdb.connect()
    try:
        mem.execute("SET file_search_path = '" + store.root.replace("'", "''") + "'")
        mem.execute(
            "CREATE TEMP TABLE staged AS SELECT sample_id, content_hash, filename AS file, "
            "file_row_number AS row FROM read_parquet(?, filename = true, file_row_number = true)",
            [staged_paths],
        )
        existing_sql = (
            "SELECT sample_id, any_value(content_hash) AS content_hash, any_value(filename) AS file "
            "FROM read_parquet(?, filename = true) WHERE sample_id IN (SELECT sample_id FROM staged) "
            "GROUP BY sample_id"
            if existing
            else "SELECT NULL::VARCHAR AS sample_id, NULL::VARCHAR AS content_hash, NULL::VARCHAR AS file WHERE false"
        )
        rows = mem.execute(
            f"""
            WITH existing AS ({existing_sql}),
            repeated AS (
                SELECT * FROM (
                    SELECT *, row_number() OVER w AS rank, first_value(content_hash) OVER w AS first_hash
                    FROM staged
                    WHERE sample_id IN (SELECT sample_id FROM staged GROUP BY sample_id HAVING count(*) > 1)
                    WINDOW w AS (PARTITION BY sample_id ORDER BY file, row)
                ) WHERE rank > 1
            )
            SELECT s.file, s.row, s.sample_id, s.content_hash, e.content_hash, e.file,
                   r.first_hash
            FROM staged s
            LEFT JOIN existing e USING (sample_id)
            LEFT JOIN repeated r ON r.file = s.file AND r.row = s.row
            WHERE e.sample_id IS NOT NULL OR r.rank IS NOT NULL
            ORDER BY s.file, s.row
            """,
            [existing] if existing else [],
        ).fetchall()
    finally:
        mem.close()
    if not rows:
        return [], 0
    drop: dict[str, set[int]] = {}
    decisions: list[tuple[str, int, str, str]] = []  # file, row, code, reason
    skipped = 0
    for (
        file,
        row,
        sample_id,
        content_hash,
        existing_hash,
        existing_file,
        first_hash,
    ) in rows:
        drop.setdefault(file, set()).add(int(row))
        if existing_hash is not None:
            if existing_hash == content_hash:
                skipped += 1
                result.skip_codes["already_in_store"] = (
                    result.skip_codes.get("already_in_store", 0) + 1
                )
                continue
            where = (
                os.path.relpath(existing_file, store.root)
                if os.path.isabs(existing_file)
                else existing_file
            )
            decisions.append(
                (
                    file,
                    int(row),
                    "sample_id_conflict",
                    conflict_reason(sample_id, existing_hash, where, content_hash),
                )
            )
        elif first_hash == content_hash:
            skipped += 1
            result.skip_codes["duplicate_in_run"] = result.skip_codes.get("duplicate_in_run", 0) + 1
        else:
            decisions.append(
                (
                    file,
                    int(row),
                    "sample_id_conflict",
                    f"`{sample_id}` appears twice in this run with different content "
                    f"(content_hash {first_hash} first, then {content_hash})",
                )
            )
    rejects: list[Reject] = []
    locations: dict[str, pa.Table] = {}
    for file, row, code, reason in decisions:
        if file not in locations:
            sidecar = file[: -len(".parquet")] + LOCATIONS_SUFFIX
            locations[file] = pq.read_table(sidecar)
        loc = locations[file]
        kind = loc["kind"][row].as_py()
        rejects.append(
            Reject(loc["file"][row].as_py(), loc["position"][row].as_py(), kind, code, reason)
        )
    by_path = {s.path: s for s in staged}
    for file, rows_to_drop in drop.items():
        drop_rows(by_path[file], rows_to_drop)
    return rejects, skipped


def reconcile_columns(
    store: StoreBase, staged: list[WrittenShard], timeout: float | None
) -> dict[str, str]:
    """One Arrow type per input column across the store, so `samples` stays readable.

    A column whose type differs between the new shards, or from the store, is rewritten in the
    new shards as JSON text when the store has it as text (or not at all); when the store has
    it with another type, the run fails, naming the column. Returns the new columns' types.
    """
    import pyarrow.parquet as pq

    from curator.core.schema import CONTENT_COLUMNS, PROVENANCE_NAMES
    from curator.store.shards import compatible_types, rewrite_shard

    fixed = set(PROVENANCE_NAMES) | set(CONTENT_COLUMNS)
    with store.connect(read_only=True, timeout=timeout) as con:
        known = (
            dict(con.execute("SELECT name, arrow_type FROM columns").fetchall())
            if has_table(con, "columns")
            else {}
        )
    seen: dict[str, list[tuple[pa.DataType, WrittenShard]]] = {}
    for shard in staged:
        for field_ in pq.read_schema(shard.path):
            if field_.name not in fixed:
                seen.setdefault(field_.name, []).append((field_.type, shard))
    to_text: dict[str, set[str]] = {}
    new_columns: dict[str, str] = {}
    for name, entries in seen.items():
        types = [t for t, _ in entries if not pa.types.is_null(t)]
        store_type = known.get(name)
        distinct = {str(t) for t in types}
        consistent = all(compatible_types(types[0], t) for t in types) if types else True
        if (
            store_type is not None
            and types
            and not all(compatible_types(store_type, t) for t in types)
        ):
            if store_type not in ("string", "large_string"):
                first = next(t for t in types if not compatible_types(store_type, t))
                raise IngestFailed(
                    f"column `{name}` is {store_type} in the store but {first} in this input; nothing was committed",
                    f"rename it with --rename-column {name}=NEW_NAME (Python: `rename_columns={{{name!r}: NEW_NAME}}`), or convert it to {store_type}",
                )
            consistent = False
        if not consistent:
            for t, shard in entries:
                if not pa.types.is_string(t):
                    to_text.setdefault(shard.path, set()).add(name)
            distinct = {"string"}
        if store_type is None and types:
            if not consistent:
                new_columns[name] = "string"
            else:
                new_columns[name] = str(types[0]) if len(distinct) == 1 else "double"
    by_path = {s.path: s for s in staged}
    for path, names in to_text.items():
        rewrite_shard(by_path[path], to_text=names)
    return new_columns
