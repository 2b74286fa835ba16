"""What the store held when an ingest started, handed to its tasks so that each final shard is
written once.

Before the tasks run, the driver reads from the catalog the live shards of the run's source,
their ``sample_id → content_hash`` (written to ``known.parquet`` in the run's work directory)
and the type the store gives each input column (:func:`take_snapshot`). Each task then skips the
records already in the store with the same content, rejects those with other content (naming
both hashes), and writes a column that the store holds as text as JSON text
(:class:`StoreView`), before anything reaches a shard.

Under the write lock, the driver checks only what changed since (:mod:`curator.ingest.decide`):
shards of the source committed meanwhile, a `sample_id` repeated across tasks, types that
disagree between tasks. Only those rarer cases rewrite a staged shard.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from curator.core.schema import CONTENT_COLUMNS, PROVENANCE_NAMES
from curator.ingest.readers import ReadBatch, Reject
from curator.store.base import has_table
from curator.store.catalog import sql_literal
from curator.store.shards import compatible_types, json_text

if TYPE_CHECKING:
    from curator.store.base import StoreBase

#: In the run's work directory: ``sample_id``, ``content_hash`` and ``file`` of the source's
#: live samples when the run started.
KNOWN_FILE = "known.parquet"
_TEXT_TYPES = ("string", "large_string")


@dataclass(frozen=True)
class Snapshot:
    """What the driver read before dispatch (plain and picklable)."""

    #: the live shards of the source (paths relative to the store), sorted
    shard_paths: tuple[str, ...] = ()
    #: ``known.parquet``, or None when the source has no live shard
    known_path: str | None = None
    #: (column, Arrow type) of every input column the store has
    column_types: tuple[tuple[str, str], ...] = ()


def take_snapshot(
    store: StoreBase, source: str, work_dir: str, timeout: float | None = None
) -> Snapshot:
    """Read the source's live shards and the store's column types, and write the source's
    ``sample_id → content_hash`` to ``<work_dir>/known.parquet``."""
    with store.connect(read_only=True, timeout=timeout) as con:
        paths = tuple(
            row[0]
            for row in con.execute(
                "SELECT path FROM shards WHERE live AND source = ? ORDER BY path", [source]
            ).fetchall()
        )
        types = (
            tuple(sorted(con.execute("SELECT name, arrow_type FROM columns").fetchall()))
            if has_table(con, "columns")
            else ()
        )
        if not paths:
            return Snapshot((), None, types)
        known_path = os.path.join(work_dir, KNOWN_FILE)
        con.execute(
            "COPY (SELECT sample_id, any_value(content_hash) AS content_hash, "
            "any_value(filename) AS file FROM read_parquet(?, filename = true) GROUP BY sample_id) "
            f"TO {sql_literal(known_path)} (FORMAT parquet)",
            [list(paths)],
        )
    return Snapshot(paths, known_path, types)


class StoreView:
    """A task's view of the snapshot: which sample ids the store has, and the column types."""

    def __init__(self, root: str, known_path: str | None, column_types: Sequence[tuple[str, str]]):
        import pyarrow.parquet as pq

        self.root = root
        self.known: dict[str, tuple[str, str]] = {}
        if known_path is not None:
            table = pq.read_table(known_path)
            self.known = {
                sample_id: (content_hash, file)
                for sample_id, content_hash, file in zip(
                    table["sample_id"].to_pylist(),
                    table["content_hash"].to_pylist(),
                    table["file"].to_pylist(),
                    strict=True,
                )
            }
        fixed = set(PROVENANCE_NAMES) | set(CONTENT_COLUMNS)
        self.text_columns = {
            name for name, arrow_type in column_types if arrow_type in _TEXT_TYPES
        } - fixed

    def apply(
        self,
        batch: ReadBatch,
        table: pa.Table,
        content_bytes: pa.Array,
        positions: list[int | None],
        rejects: list[Reject],
        skip_codes: dict[str, int],
    ) -> tuple[pa.Table | None, pa.Array | None, list[int | None]]:
        """The rows of a prepared batch that are new to the store, with the store's text
        columns as text. Rows already in the store are counted in `skip_codes`
        (``already_in_store``) when the content is the same and added to `rejects`
        (``sample_id_conflict``) when it differs."""
        table = self._as_text(table)
        if not self.known:
            return table, content_bytes, positions
        keep = []
        for position, sample_id, content_hash in zip(
            positions,
            table["sample_id"].to_pylist(),
            table["content_hash"].to_pylist(),
            strict=True,
        ):
            existing = self.known.get(sample_id)
            keep.append(existing is None)
            if existing is None:
                continue
            existing_hash, existing_file = existing
            if existing_hash == content_hash:
                skip_codes["already_in_store"] = skip_codes.get("already_in_store", 0) + 1
                continue
            where = (
                os.path.relpath(existing_file, self.root)
                if os.path.isabs(existing_file)
                else existing_file
            )
            rejects.append(
                Reject(
                    batch.file.relpath,
                    position,
                    batch.kind,
                    "sample_id_conflict",
                    conflict_reason(sample_id, existing_hash, where, content_hash),
                )
            )
        if all(keep):
            return table, content_bytes, positions
        if not any(keep):
            return None, None, []
        mask = pa.array(keep, pa.bool_())
        kept = [p for p, k in zip(positions, keep, strict=True) if k]
        return table.filter(mask), content_bytes.filter(mask), kept

    def _as_text(self, table: pa.Table) -> pa.Table:
        """Columns the store holds as text, as JSON text when this batch has another type."""
        for name in self.text_columns & set(table.schema.names):
            column = table[name]
            if compatible_types("string", column.type):
                continue
            table = table.set_column(
                table.schema.get_field_index(name), pa.field(name, pa.string()), json_text(column)
            )
        return table


def conflict_reason(sample_id: str, existing_hash: str, where: str, content_hash: str) -> str:
    """Why a record whose `sample_id` the store holds with other content is rejected."""
    return (
        f"`{sample_id}` is already in the store with different content "
        f"(content_hash {existing_hash} in `{where}`; this record has {content_hash}); "
        "give it another id (--id-column) or ingest it under another --source"
    )
