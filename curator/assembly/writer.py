"""Writing a set: routing the chosen rows to their output shards and writing the output files.

The wide rows are never sorted whole: DuckDB reads them in storage order, each batch is split by
output shard into uncompressed Arrow spill files (in the driver, which holds the DuckDB session),
and each shard is then ordered on its own and compressed (Parquet) or written as JSON Lines by
:func:`write_shard`, a pure task run on the engine. Nothing run-specific goes into the files, so
the same store, policy and seed give byte-identical shards on any engine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curator.assembly.checks import AssemblyError
from curator.assembly.layout import DATA_DIR, shard_path
from curator.core.arrays import from_numpy, to_numpy
from curator.core.version import __version__

if TYPE_CHECKING:
    import duckdb

    from curator.assembly.policy import Policy
    from curator.assembly.tokens import TokenOutput
    from curator.engine.base import Engine

#: While the output is written, DuckDB streams the chosen rows here.
DUCKDB_WRITE_MEMORY_LIMIT = "512MB"
#: Rows per batch of the read that feeds the spill files: small batches stay in cache (8192 read
#: and routed 1.4x faster than 131072 in bench/assemble.py).
_READ_BATCH_ROWS = 8192
#: The output position carried through the spill files (dropped before writing).
_POSITION = "__curator_out_pos"
#: The row's pool (fresh_real, …), carried through the spill files for token counts.
_CATEGORY = "__curator_category"
#: Spill files smaller than this in all are written in this process: starting workers would
#: cost more than compressing them.
SMALL_WRITE_BYTES = 32 << 20


@dataclass(frozen=True)
class ShardWriteTask:
    """One output shard to write: its spill file (the shard's rows with their output positions,
    in any order), where the shard goes, its format and its Parquet footer metadata."""

    spill_path: str
    out_path: str
    extension: str
    metadata: tuple[tuple[bytes, bytes], ...]
    #: With `[output] format = "tokens"`: how the shard's documents become token arrays.
    tokens: TokenOutput | None = None

    @property
    def label(self) -> str:
        return f"output shard `{os.path.basename(self.out_path)}`"


def write_shard(task: ShardWriteTask) -> dict[str, Any]:
    """Order one shard's spill file by output position and write it as the output shard (pure:
    reads the spill file, writes the shard, removes the spill file), and with `task.tokens` its
    token arrays (:func:`curator.assembly.tokens.write_token_arrays`). Returns what the manifest
    records of it: its path in the set, rows, bytes and sha256 (and its `arrays`, with the
    shard's token counts under `token_counts`, which the manifest's `tokens` sums)."""
    import pyarrow.compute as pc

    with pa.memory_map(task.spill_path) as source:
        table = pa.ipc.open_file(source).read_all()
        table = table.take(pc.sort_indices(table.column(_POSITION)))
    categories = table.column(_CATEGORY) if _CATEGORY in table.column_names else None
    table = table.drop_columns([c for c in (_POSITION, _CATEGORY) if c in table.column_names])
    table = table.replace_schema_metadata(dict(task.metadata))
    os.remove(task.spill_path)
    written = _write_shard(task.out_path, table, task.extension)
    if task.tokens is not None:
        from curator.assembly.tokens import write_token_arrays

        assert categories is not None
        set_dir = os.path.dirname(os.path.dirname(task.out_path))
        stem = os.path.basename(task.out_path).rsplit(".", 1)[0]
        arrays, counts = write_token_arrays(table, categories, set_dir, stem, task.tokens)
        written["arrays"] = arrays
        written["token_counts"] = counts
    return written


def write_outputs(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    snapshot_paths: list[str],
    tmp_dir: str,
    spill_dir: str,
    starts: list[int],
    *,
    engine: Engine,
) -> list[dict[str, Any]]:
    """Write the chosen rows, in output order, as shards starting at the positions `starts`.

    Sorting the wide rows is what costs, so they are not sorted whole: DuckDB streams the chosen
    rows in whatever order it reads them, each with its output position; each batch is split by
    output shard into one uncompressed Arrow spill file per shard. Then `engine` runs
    :func:`write_shard` over the shards: each spill file is memory-mapped, ordered by position
    and compressed. Memory stays at DuckDB's read buffers plus one shard per worker.

    Returns:
        What the manifest records of each shard, in shard order."""
    import numpy as np

    from curator.assembly.tokens import token_output

    tokens = token_output(policy)
    first_positions = np.asarray(starts, dtype=np.int64)
    total = con.execute("SELECT count(*) FROM chosen").fetchall()[0][0]
    if total == 0 or not snapshot_paths:
        return []
    con.execute(f"SET memory_limit = '{DUCKDB_WRITE_MEMORY_LIMIT}'")
    # Token counts by freshness need each row's pool, which only `chosen` knows.
    category = f", c.category AS {_CATEGORY}" if tokens is not None else ""
    reader = con.sql(
        f"SELECT s.* EXCLUDE (file_row_number), c.out_pos AS {_POSITION}{category} "
        "FROM read_parquet($paths, file_row_number = true, union_by_name = true) s "
        "JOIN chosen c ON s.file_index = c.shard AND s.file_row_number = c.row",
        params={"paths": snapshot_paths},
    ).to_arrow_reader(_READ_BATCH_ROWS)
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            images = "image" in batch.schema.names
            if tokens is not None and images and batch.column("image").null_count < batch.num_rows:
                raise AssemblyError(
                    "the set holds images (column `image`), and "
                    '`[output] format = "tokens"` encodes text only; nothing was written',
                    "assemble text samples only (e.g. give image sources `weight = 0` in "
                    '`[[sources]]`), or use `format = "parquet"`',
                )
            shard_of = (
                np.searchsorted(first_positions, to_numpy(batch.column(_POSITION)), side="right")
                - 1
            )
            order = np.argsort(shard_of, kind="stable")
            grouped = batch.take(from_numpy(order))
            shard_of = shard_of[order]
            cuts = np.flatnonzero(np.diff(shard_of)) + 1
            for lo, hi in zip(
                np.concatenate([[0], cuts]), np.concatenate([cuts, [len(shard_of)]]), strict=True
            ):
                shard_no = int(shard_of[lo])
                writer = writers.get(shard_no)
                if writer is None:
                    writer = writers[shard_no] = pa.ipc.new_file(
                        os.path.join(spill_dir, f"{shard_no}.arrow"), batch.schema
                    )
                writer.write_batch(grouped.slice(int(lo), int(hi - lo)))
    finally:
        for writer in writers.values():
            writer.close()
    # Nothing run-specific (ids, times) goes into the files: the same store, policy and seed
    # give byte-identical shards.
    metadata = (
        (b"curator.version", __version__.encode()),
        (b"curator.seed", str(policy.seed).encode()),
    )
    extension = "jsonl" if policy.output.format == "jsonl" else "parquet"
    os.makedirs(os.path.join(tmp_dir, DATA_DIR), exist_ok=True)
    tasks = [
        ShardWriteTask(
            spill_path=os.path.join(spill_dir, f"{shard_no}.arrow"),
            out_path=os.path.join(tmp_dir, shard_path(shard_no, len(starts), extension)),
            extension=extension,
            metadata=metadata,
            tokens=tokens,
        )
        for shard_no in sorted(writers)
    ]
    spilled = sum(os.path.getsize(task.spill_path) for task in tasks)
    # Ordering and compressing run in Arrow, outside the GIL: threads on this machine.
    return engine.map(write_shard, tasks, small=spilled < SMALL_WRITE_BYTES, threads=True)


def _write_shard(path: str, table: pa.Table, extension: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from curator.store.shards import sha256_file, write_options

    if extension == "parquet":
        pq.write_table(table, path, row_group_size=65_536, **write_options(table.schema))
    else:
        with open(path, "w", encoding="utf-8") as handle:
            for row in table.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
    return {
        "path": f"{DATA_DIR}/{os.path.basename(path)}",
        "rows": table.num_rows,
        "bytes": os.path.getsize(path),
        "sha256": sha256_file(path),
    }


def _json_default(value: Any) -> Any:
    import base64

    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
