"""Writing shards: real Parquet, zstd-compressed, the provenance schema version in the footer,
written under a temporary name and only renamed into place when complete."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curator.core.schema import DICTIONARY_COLUMNS

#: Default target size of one shard, in bytes of content.
DEFAULT_SHARD_BYTES = 256 << 20
ROW_GROUP_ROWS = 65_536
#: Beside a staged shard, where each of its rows came from (input file, position).
LOCATIONS_SUFFIX = ".locations.parquet"


@dataclass
class WrittenShard:
    """A complete shard file and what it holds."""

    path: str
    rows: int
    file_bytes: int
    content_bytes: int
    sha256: str = ""
    content_kind: str = "text"
    #: rows and content bytes by (origin, generation, source)
    composition: dict[tuple[str, int | None, str], list[int]] = field(default_factory=dict)


def composition_of(
    table: pa.Table, content_bytes: pa.Array
) -> dict[tuple[str, int | None, str], list[int]]:
    """Rows and content bytes by (origin, generation, source) of a table with provenance."""
    grouped = (
        pa.table(
            {
                "origin": table["origin"],
                "generation": table["generation"],
                "source": table["source"],
                "content_bytes": content_bytes,
            }
        )
        .group_by(["origin", "generation", "source"], use_threads=False)
        .aggregate([("content_bytes", "count"), ("content_bytes", "sum")])
    )
    result: dict[tuple[str, int | None, str], list[int]] = {}
    for row in grouped.to_pylist():
        key = (row["origin"], row["generation"], row["source"])
        result[key] = [int(row["content_bytes_count"]), int(row["content_bytes_sum"] or 0)]
    return result


def merge_composition(
    into: dict[tuple[str, int | None, str], list[int]],
    other: dict[tuple[str, int | None, str], list[int]],
) -> None:
    for key, (rows, nbytes) in other.items():
        slot = into.setdefault(key, [0, 0])
        slot[0] += rows
        slot[1] += nbytes


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_options(schema: pa.Schema) -> dict[str, object]:
    dictionary = [name for name in schema.names if name in DICTIONARY_COLUMNS]
    return {"compression": "zstd", "use_dictionary": dictionary, "write_statistics": True}


class ShardWriter:
    """Streams tables into a sequence of shards of about `target_bytes` of content each.

    Files are written as ``<name>.parquet.tmp`` and renamed to ``<name>.parquet`` when closed, so a
    reader never sees a partial shard. A table whose schema is not a subset of the open shard's
    starts a new shard (JSON Lines input may grow fields).

    Args:
        directory: where the shards go.
        name: called with the shard's index to give its file name (without ``.parquet``).
        target_bytes: content bytes after which the shard is closed.
        metadata: Parquet footer key-value metadata.
    """

    def __init__(
        self,
        directory: str,
        name: Callable[[int], str],
        target_bytes: int,
        metadata: dict[bytes, bytes],
        content_kind: str = "text",
    ) -> None:
        self.content_kind = content_kind
        self.directory = directory
        self.name = name
        self.target_bytes = max(1, target_bytes)
        self.metadata = metadata
        self.shards: list[WrittenShard] = []
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._current: WrittenShard | None = None
        self._tmp_path = ""
        self._sidecar: pq.ParquetWriter | None = None

    def _open(self, schema: pa.Schema) -> None:
        schema = schema.with_metadata(self.metadata)
        final = os.path.join(self.directory, self.name(len(self.shards)) + ".parquet")
        self._tmp_path = final + ".tmp"
        self._writer = pq.ParquetWriter(self._tmp_path, schema, **write_options(schema))
        self._schema = schema
        self._current = WrittenShard(final, 0, 0, 0, content_kind=self.content_kind)

    def _conform(self, table: pa.Table) -> pa.Table | None:
        """`table` in the open shard's schema, or None when it does not fit."""
        assert self._schema is not None
        if table.schema.equals(self._schema, check_metadata=False):
            return table
        names = set(table.schema.names)
        if not names.issubset(self._schema.names):
            return None
        columns = []
        for target in self._schema:
            if target.name in names:
                column = table[target.name]
                if not column.type.equals(target.type):
                    # Only all-null columns are cast: any other cast can change values
                    # (bool→int, big int→double, struct fields dropped). A new shard is safer.
                    if not pa.types.is_null(column.type):
                        return None
                    column = pa.nulls(table.num_rows, target.type)
                columns.append(column)
            else:
                if not target.nullable:
                    return None
                columns.append(pa.nulls(table.num_rows, target.type))
        return pa.Table.from_arrays(columns, schema=self._schema)

    def write(
        self, table: pa.Table, content_bytes: pa.Array, sidecar: pa.Table | None = None
    ) -> None:
        """Append rows; `content_bytes` gives each row's content size (for the shard target and
        the composition); `sidecar`, if given, is written row for row beside the shard, as
        ``<name>.locations.parquet``."""
        if table.num_rows == 0:
            return
        if self._writer is not None:
            conformed = self._conform(table)
            if conformed is None:
                self._close()
            else:
                table = conformed
        if self._writer is None:
            self._open(table.schema)
            table = table.replace_schema_metadata(self.metadata)
        assert self._writer is not None and self._current is not None
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        if sidecar is not None:
            if self._sidecar is None:
                self._sidecar = pq.ParquetWriter(
                    self._current.path[: -len(".parquet")] + LOCATIONS_SUFFIX, sidecar.schema
                )
            self._sidecar.write_table(sidecar)
        self._current.rows += table.num_rows
        nbytes = int(pc.sum(content_bytes).as_py() or 0)
        self._current.content_bytes += nbytes
        merge_composition(self._current.composition, composition_of(table, content_bytes))
        if self._current.content_bytes >= self.target_bytes:
            self._close()

    def _close(self) -> None:
        if self._writer is None or self._current is None:
            return
        self._writer.close()
        if self._sidecar is not None:
            self._sidecar.close()
            self._sidecar = None
        os.replace(self._tmp_path, self._current.path)
        self._current.file_bytes = os.path.getsize(self._current.path)
        self._current.sha256 = sha256_file(self._current.path)
        self.shards.append(self._current)
        self._writer = None
        self._current = None
        self._schema = None

    def close(self) -> list[WrittenShard]:
        """Finish the open shard; returns every shard written."""
        self._close()
        return self.shards

    def abort(self) -> None:
        """Drop the open shard's partial file (the complete ones stay)."""
        if self._writer is not None:
            try:
                self._writer.close()
                if self._sidecar is not None:
                    self._sidecar.close()
            finally:
                if os.path.exists(self._tmp_path):
                    os.remove(self._tmp_path)
                self._writer = None


#: Rewriting a shard reads it in batches of about this many bytes (and at most 8192 rows).
REWRITE_BATCH_BYTES = 64 << 20


def batch_rows_within(rows: int, nbytes: int, batch_rows: int, batch_bytes: int) -> int:
    """Rows per batch for data of `rows` rows and `nbytes` uncompressed bytes: at most
    `batch_rows`, and about `batch_bytes` bytes at the average row size (at least 1), so a
    batch of large documents stays far below Arrow's 2 GiB per `string` array."""
    if rows <= 0 or nbytes <= 0:
        return max(1, batch_rows)
    return max(1, min(batch_rows, batch_bytes * rows // nbytes))


def drop_rows(shard: WrittenShard, rows: set[int]) -> None:
    """Rewrite a complete (not yet published) shard without the given 0-based rows."""
    rewrite_shard(shard, drop=rows)


_NUMERIC = {
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "halffloat",
    "float",
    "double",
}
_STRINGS = {"string", "large_string"}


def compatible_types(a: pa.DataType | str, b: pa.DataType | str) -> bool:
    """Whether DuckDB can read two shards' columns of these types (or their Arrow names) as one
    column of `samples` without losing values: equal types, nulls, numbers with numbers,
    strings with strings."""
    a, b = str(a), str(b)
    if a == b or "null" in (a, b):
        return True
    return (a in _NUMERIC and b in _NUMERIC) or (a in _STRINGS and b in _STRINGS)


def json_text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column's values as JSON text (strings stay as they are), for columns whose type
    differs between shards."""
    import json

    def encode(value: object) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bytes):
            import base64

            return base64.b64encode(value).decode("ascii")
        return json.dumps(value, ensure_ascii=False, default=str)

    return pa.array([encode(v) for v in column.to_pylist()], pa.string())


def rewrite_shard(
    shard: WrittenShard, *, drop: set[int] | None = None, to_text: set[str] | None = None
) -> None:
    """Rewrite a complete (not yet published) shard, streaming batch by batch: without the
    0-based rows in `drop`, and with the columns in `to_text` as JSON text. Its counts,
    composition and checksum follow. A shard left empty is removed (``shard.rows`` becomes 0)."""
    drop = drop or set()
    to_text = to_text or set()
    parquet = pq.ParquetFile(shard.path)
    schema = parquet.schema_arrow
    schema = pa.schema(
        [pa.field(f.name, pa.string(), nullable=True) if f.name in to_text else f for f in schema],
        metadata=schema.metadata,
    )
    content_name = shard.content_kind
    tmp = shard.path + ".tmp"
    shard.rows = 0
    shard.content_bytes = 0
    shard.composition = {}
    offset = 0
    metadata = parquet.metadata
    size = batch_rows_within(
        metadata.num_rows,
        sum(metadata.row_group(g).total_byte_size for g in range(metadata.num_row_groups)),
        8192,
        REWRITE_BATCH_BYTES,
    )
    with pq.ParquetWriter(tmp, schema, **write_options(schema)) as writer:
        for batch in parquet.iter_batches(batch_size=size):
            table = pa.Table.from_batches([batch])
            if drop:
                keep = pa.array([offset + i not in drop for i in range(batch.num_rows)])
                table = table.filter(keep)
            offset += batch.num_rows
            if table.num_rows == 0:
                continue
            for name in to_text:
                if name in table.schema.names:
                    table = table.set_column(
                        table.schema.get_field_index(name),
                        pa.field(name, pa.string()),
                        json_text(table[name]),
                    )
            writer.write_table(table.cast(schema), row_group_size=ROW_GROUP_ROWS)
            content_bytes = pc.binary_length(table[content_name]).combine_chunks()
            shard.rows += table.num_rows
            shard.content_bytes += int(pc.sum(content_bytes).as_py() or 0)
            merge_composition(shard.composition, composition_of(table, content_bytes))
    parquet.close()
    if shard.rows == 0:
        os.remove(tmp)
        os.remove(shard.path)
        return
    os.replace(tmp, shard.path)
    shard.file_bytes = os.path.getsize(shard.path)
    shard.sha256 = sha256_file(shard.path)
