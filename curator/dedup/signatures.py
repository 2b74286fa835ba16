"""Signatures of the store's contents for near-duplicate detection: MinHash for text
(:mod:`curator.dedup.minhash`), a perceptual hash for images (:mod:`curator.dedup.phash`,
:mod:`curator.dedup.imagehash_kinds`), kept under ``STORE/indexes/`` keyed by content so that
a later run computes only new content (one :class:`SignatureTask` per shard that has some)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curator.core.arrays import from_numpy
from curator.dedup.candidates import index_files
from curator.store.base import STAGING_DIR
from curator.store.locking import place_file

if TYPE_CHECKING:
    import duckdb

    from curator.engine.base import Engine

MINHASH_SEED = 1
#: a dedup run's work directory is ``STORE/.staging/dedup-<run>``
WORK_PREFIX = "dedup-"
BATCH_ROWS = 8192
#: Below this many bytes of shards to read, signatures are computed in this process: starting
#: worker processes would cost more than it saves.
SMALL_WORK_BYTES = 32 << 20


def work_path(index_dir: str, run_id: str) -> str:
    """The work directory of the dedup run `run_id` (``STORE/.staging/dedup-<run>``), from one
    of the store's index directories (``STORE/indexes/<name>``)."""
    root = os.path.dirname(os.path.dirname(index_dir))
    return os.path.join(root, STAGING_DIR, WORK_PREFIX + run_id)


@dataclass(frozen=True)
class SignatureTask:
    """Compute the signatures of some rows of one live shard (a pure task: it reads the shard
    and writes one Parquet file of ``(content_hash, value)``)."""

    index: int
    path: str
    column: str
    #: row numbers of the shard, ascending: the first sample of each content the index lacks
    rows: tuple[int, ...]
    method: str  # minhash | an image-hash method (phash, dhash, …, crop_resistant)
    num_perm: int
    shingling: str
    out_path: str

    @property
    def label(self) -> str:
        return f"{self.method} signatures of `{self.path}`"


def signature_values(method: str, num_perm: int, shingling: str, contents: pa.Array) -> pa.Array:
    """The index values of `contents`: MinHash signatures as fixed-size binary (text) or
    image hashes as int64 (images; a list of int64 for ``crop_resistant``). Contents without a
    signature (no word, undecodable) get a value that never clusters, so that later runs do not
    hash them again."""
    if method == "minhash":
        from curator.dedup import minhash

        sigs, _ok = minhash.signatures(
            contents, num_perm=num_perm, seed=MINHASH_SEED, shingling=shingling
        )
        data = pa.py_buffer(np.ascontiguousarray(sigs).tobytes())
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(4 * num_perm), len(sigs), [None, data]
        )
    if method != "phash":
        from curator.dedup import imagehash_kinds

        return imagehash_kinds.index_values(method, contents)
    from curator.dedup import phash

    hashes, _ok = phash.phashes(contents.to_pylist())
    return pa.array(hashes.view(np.int64))


def writer_options(method: str) -> dict[str, Any]:
    """Parquet options of index files. MinHash signatures are random bytes: zstd cannot shrink
    them, a dictionary never pays and min/max statistics of 512-byte values are useless, so
    they are written plain (the content hashes, hex digits, still compress)."""
    if method != "minhash":
        return {"compression": "zstd"}
    return {
        "compression": {"content_hash": "zstd", "value": "none"},
        "use_dictionary": False,
        "write_statistics": ["content_hash"],
    }


def compute_signatures(task: SignatureTask) -> int:
    """Run one :class:`SignatureTask`; returns how many signatures it wrote."""
    wanted = np.asarray(task.rows, np.int64)
    writer: pq.ParquetWriter | None = None
    tmp = task.out_path + ".tmp"
    written = 0
    start = 0
    try:
        source = pq.ParquetFile(task.path)
        for batch in source.iter_batches(
            batch_size=BATCH_ROWS, columns=["content_hash", task.column]
        ):
            stop = start + batch.num_rows
            lo, hi = np.searchsorted(wanted, [start, stop])
            if hi > lo:
                # rows are unique and ascending: as many as the batch has means all of them
                whole = hi - lo == batch.num_rows
                picked = batch if whole else batch.take(from_numpy(wanted[lo:hi] - start))
                values = signature_values(
                    task.method, task.num_perm, task.shingling, picked.column(task.column)
                )
                table = pa.table({"content_hash": picked.column("content_hash"), "value": values})
                writer = writer or pq.ParquetWriter(
                    tmp, table.schema, **writer_options(task.method)
                )
                writer.write_table(table)
                written += table.num_rows
            start = stop
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, task.out_path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return written


def compute_missing(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    paths: list[str],
    column: str,
    index_dir: str,
    work: str,
    run_id: str,
    method: str,
    num_perm: int,
    shingling: str,
    value_type: pa.DataType,
    progress: Callable[[int], None] | None,
) -> int:
    """Signatures of the live contents the index lacks, written as one new index file (staged
    in the run's work directory, then placed: a killed run leaves nothing in `indexes/`).

    The driver picks the first sample (in shard order) of every content the index lacks; one
    task per shard computes those samples' signatures; their files, joined in shard order, are
    the new index file, so that it does not depend on the engine or on timing."""
    existing = index_files(index_dir)
    known = (
        "SELECT content_hash FROM read_parquet($index)"
        if existing
        else "SELECT NULL::VARCHAR WHERE false"
    )
    params: dict[str, Any] = {"paths": paths}
    if existing:
        params["index"] = existing
    # one (shard, row) per missing content, packed in one integer: its first sample
    firsts = con.sql(
        f"""
        WITH live_files AS (
            SELECT unnest($paths) AS filename, unnest(range(len($paths))) AS file_no
        )
        SELECT min((f.file_no::BIGINT << 40) + s.file_row_number) AS first
        FROM read_parquet($paths, union_by_name = true, filename = true, file_row_number = true) s
        JOIN live_files f USING (filename)
        WHERE s.{column} IS NOT NULL AND s.content_hash NOT IN ({known})
        GROUP BY s.content_hash
        """,
        params=params,
    ).fetchnumpy()["first"]
    packed = np.sort(np.asarray(firsts, np.int64))
    file_nos = packed >> 40
    row_nos = packed & ((1 << 40) - 1)
    if not len(packed):
        return 0
    parts_dir = os.path.join(work, f"signatures-{method}")
    os.makedirs(parts_dir, exist_ok=True)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(file_nos)) + 1, [len(file_nos)]])
    tasks = [
        SignatureTask(
            index=number,
            path=paths[int(file_nos[lo])],
            column=column,
            rows=tuple(row_nos[lo:hi].tolist()),
            method=method,
            num_perm=num_perm,
            shingling=shingling,
            out_path=os.path.join(parts_dir, f"{int(file_nos[lo]):06d}.parquet"),
        )
        for number, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]
    content_bytes = sum(os.path.getsize(task.path) for task in tasks)
    counts = engine.map(
        compute_signatures,
        tasks,
        on_result=lambda task, _count: progress(len(task.rows)) if progress else None,
        small=content_bytes < SMALL_WORK_BYTES,
        threads=True,  # the kernels run outside the GIL: no worker interpreters needed here
    )
    computed = sum(counts)
    if not computed:
        return 0
    os.makedirs(index_dir, exist_ok=True)
    final = os.path.join(index_dir, f"{run_id}.parquet")
    tmp = os.path.join(work_path(index_dir, run_id), os.path.basename(index_dir) + ".parquet")
    schema = pa.schema([("content_hash", pa.string()), ("value", value_type)])
    parts = [task.out_path for task, count in zip(tasks, counts, strict=True) if count]
    try:
        if len(parts) == 1 and pq.read_schema(parts[0]).remove_metadata().equals(schema):
            # one part (one shard had new contents): it is the index file as it stands
            place_file(parts[0], final)
            return computed
        with pq.ParquetWriter(tmp, schema, **writer_options(method)) as writer:
            for part in parts:
                for batch in pq.ParquetFile(part).iter_batches(batch_size=65_536):
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        place_file(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return computed
