"""Candidate pairs of near duplicates, and their verification: in DuckDB on the driver, or as
tasks on an engine.

Every content's signature is cut into bands; two contents that agree on one band are a
candidate. Rows ``(id, band, h)`` — `id` the content's position in the index, `h` the band's
hash — are grouped on ``(band, h)``; in every bucket of more than one member, each member is
linked to the smallest (`root`), and in buckets of at most :data:`SMALL_BUCKET` members every
pair is linked. A verifier keeps the pairs whose signatures really are close.

- On the local engine, each band is sorted in the driver (numpy, the bands on all cores:
  :func:`pairs_in_numpy`, the same pairs as :data:`PAIRS_SQL` over all band rows) and the driver
  verifies the pairs.
- On another engine (Ray), the band rows are written to Parquet and routed by
  :meth:`~curator.engine.base.Engine.exchange` on ``(band, h)``, so that each partition holds
  whole buckets; one task per partition groups its buckets with the same query and verifies its
  pairs. A pair found in several partitions (two contents sharing several bands) is verified
  in each and kept once. Either way the set of verified pairs, and so the clusters, are the same.

The driver then takes the connected components of the verified pairs (union-find in a compiled
kernel), holding every candidate
pair in memory once: up to :data:`MAX_PAIRS` (100 million; about 24 bytes each, 2.4 GB at the
limit). Past it dedup stops with a :class:`DedupError` before writing anything, on either engine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curator.core.errors import CuratorError

if TYPE_CHECKING:
    import duckdb

    from curator.engine.base import Engine

R = TypeVar("R")

SMALL_BUCKET = 32
#: Band rows per Parquet file that the driver writes for the exchange, and per partition.
BAND_FILE_ROWS = 1 << 21
BAND_PARTITION_ROWS = 1 << 22
#: The most candidate pairs the driver holds (to verify them, or to take the components of the
#: verified ones): about 24 bytes each, 2.4 GB at the limit.
MAX_PAIRS = 100_000_000

PAIRS_SQL = f"""
WITH g AS (
    SELECT band, h, id, min(id) OVER w AS root, count(*) OVER w AS size
    FROM band_rows WINDOW w AS (PARTITION BY band, h)
), multi AS (SELECT * FROM g WHERE size > 1)
SELECT DISTINCT a, b FROM (
    SELECT root AS a, id AS b FROM multi WHERE id <> root
    UNION ALL
    SELECT x.id, y.id FROM multi x JOIN multi y
      ON x.band = y.band AND x.h = y.h AND x.id < y.id
    WHERE x.size <= {SMALL_BUCKET} AND x.id <> x.root
)
"""


class DedupError(CuratorError):
    """Near-duplicate detection cannot run as asked."""


def index_files(directory: str) -> list[str]:
    """The Parquet files of an index directory, in their fixed order."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".parquet")
    )


def index_batches(index_dir: str, num_perm: int) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """(content hashes, signature matrix view) per batch of the MinHash index, in a fixed order."""
    for path in index_files(index_dir):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            yield _keys_and_signatures(path, batch, num_perm)


def _keys_and_signatures(
    path: str, batch: pa.RecordBatch | pa.Table, num_perm: int
) -> tuple[pa.Array, np.ndarray]:
    width = 4 * num_perm
    values = batch.column("value")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.binary(width):
        raise DedupError(
            f"the MinHash index file `{path}` holds signatures of another size",
            "delete STORE/indexes/minhash-* and run again",
        )
    data = np.frombuffer(values.buffers()[1], np.uint8)[
        values.offset * width : (values.offset + len(values)) * width
    ]
    keys = batch.column("content_hash")
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    return keys.cast(pa.string()), data.view(np.uint32).reshape(-1, num_perm)


def map_index(
    index_dir: str,
    num_perm: int,
    function: Callable[[pa.Array, np.ndarray, int], R],
    positions: np.ndarray | None = None,
) -> list[R]:
    """``function(content hashes, signatures, first position)`` of every row group of the
    MinHash index, in index order, the row groups read and processed on all cores (threads:
    Parquet reading and the kernels release the GIL); one row group's signatures at a time per
    thread. With sorted `positions`, only the row groups that hold one of them."""
    from concurrent.futures import ThreadPoolExecutor

    groups: list[tuple[str, int, int]] = []
    start = 0
    for path in index_files(index_dir):
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            if positions is None or np.searchsorted(positions, start) < np.searchsorted(
                positions, start + rows
            ):
                groups.append((path, group, start))
            start += rows

    def run(item: tuple[str, int, int]) -> R:
        path, group, first = item
        table = pq.ParquetFile(path).read_row_group(group, columns=["content_hash", "value"])
        keys, sigs = _keys_and_signatures(path, table, num_perm)
        return function(keys, sigs, first)

    if len(groups) < 2:
        return [run(item) for item in groups]
    with ThreadPoolExecutor(max_workers=min(len(groups), os.cpu_count() or 1)) as pool:
        return list(pool.map(run, groups))


def gather(index_dir: str, num_perm: int, positions: np.ndarray) -> np.ndarray:
    """The signatures at the given (sorted, unique) positions of the index."""
    out = np.empty((len(positions), num_perm), np.uint32)

    def take(_keys: pa.Array, sigs: np.ndarray, start: int) -> None:
        lo, hi = np.searchsorted(positions, [start, start + len(sigs)])
        if hi > lo:
            out[lo:hi] = sigs[positions[lo:hi] - start]

    map_index(index_dir, num_perm, take, positions)
    return out


@dataclass(frozen=True)
class MinHashVerifier:
    """Keeps a pair when the estimated Jaccard similarity of its MinHash signatures (read back
    from the index, only those of the pairs) reaches `threshold`."""

    index_dir: str
    num_perm: int
    threshold: float

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(a):
            return np.zeros(0, bool), np.zeros(0)
        needed = np.unique(np.concatenate([a, b]))
        sigs = gather(self.index_dir, self.num_perm, needed)
        a = np.searchsorted(needed, a)
        b = np.searchsorted(needed, b)
        sim = np.empty(len(a))
        for start in range(0, len(a), 65536):
            stop = start + 65536
            sim[start:stop] = (sigs[a[start:stop]] == sigs[b[start:stop]]).mean(axis=1)
        return sim >= self.threshold, sim


@dataclass(frozen=True)
class PHashVerifier:
    """Keeps a pair when its 64-bit perceptual hashes differ in at most `hamming` bits."""

    hashes: np.ndarray  # uint64, by index position
    hamming: int

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distance = np.bitwise_count(self.hashes[a] ^ self.hashes[b]).astype(np.int64)
        return distance <= self.hamming, 1.0 - distance / 64.0


Verifier = MinHashVerifier | PHashVerifier


def band_rows(bands: np.ndarray, rows: np.ndarray) -> pa.Table:
    """``(id, band, h)`` for every band of the given rows of the band matrix."""
    b = bands.shape[1]
    return pa.table(
        {
            "id": np.repeat(rows, b),
            "band": np.tile(np.arange(b, dtype=np.int16), len(rows)),
            "h": bands[rows].reshape(-1),
        }
    )


def pairs_in_duckdb(con: duckdb.DuckDBPyConnection, table: pa.Table) -> tuple[Any, Any]:
    """The candidate pairs ``(a, b)`` of all band rows, grouped by DuckDB (out of core)."""
    con.register("band_rows", table)
    try:
        pairs = con.execute(PAIRS_SQL).fetchnumpy()
    finally:
        con.unregister("band_rows")
    return np.asarray(pairs["a"], np.int64), np.asarray(pairs["b"], np.int64)


def pairs_in_numpy(bands: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs ``(a, b)`` of the given rows of the band matrix: the pairs that
    :data:`PAIRS_SQL` gives for :func:`band_rows` ``(bands, rows)``, as one sorted set, found
    band by band with a sort in this process (no band-row table, no DuckDB), the bands on
    all cores (numpy's sorts release the GIL).

    `rows` must be ascending (a stable sort then keeps each bucket's members ascending, so the
    first is its root)."""
    ids = np.asarray(rows, np.int64)
    if len(ids) < 2 or not bands.shape[1]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if int(ids[-1]) >= 1 << 32:
        raise DedupError(
            f"{int(ids[-1]) + 1:,} contents: more than the 2³² that dedup numbers",
            "dedup a smaller store",
        )
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(bands.shape[1], os.cpu_count() or 1)) as pool:
        chunks = [
            chunk
            for found in pool.map(lambda band: _band_pairs(bands, ids, band), range(bands.shape[1]))
            for chunk in found
        ]
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    packed = np.unique(np.concatenate(chunks))
    return (packed >> np.uint64(32)).astype(np.int64), (packed & np.uint64(0xFFFFFFFF)).astype(
        np.int64
    )


def _band_pairs(bands: np.ndarray, ids: np.ndarray, band: int) -> list[np.ndarray]:
    """The packed candidate pairs of one band (see :func:`pairs_in_numpy`)."""
    column = bands[ids, band]
    order = np.argsort(column, kind="stable")
    values = column[order]
    members = ids[order]
    del column, order
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(values)]]))
    multi = sizes > 1
    if not multi.any():
        return []
    starts, sizes = starts[multi], sizes[multi]
    # every member linked to its bucket's root (the smallest id, first in the bucket)
    roots = np.repeat(members[starts], sizes - 1)
    chunks = [_pack(roots, members[_non_root_positions(starts, sizes)])]
    # in small buckets, every pair of non-root members too
    for size in np.unique(sizes[(sizes > 2) & (sizes <= SMALL_BUCKET)]):
        first = starts[sizes == size]
        x, y = np.triu_indices(int(size), 1)
        keep = x > 0
        x, y = x[keep], y[keep]
        chunks.append(
            _pack(members[first[:, None] + x[None, :]], members[first[:, None] + y[None, :]])
        )
    return chunks


def _non_root_positions(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The positions of every member but the first of each bucket (``start``, ``size``)."""
    counts = sizes - 1
    offsets = np.repeat(starts + 1 - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return offsets + np.arange(int(counts.sum()))


def _pack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs of ids (< 2³²) packed in one uint64 each, ``a`` in the high half."""
    return (a.astype(np.uint64).reshape(-1) << np.uint64(32)) | b.astype(np.uint64).reshape(-1)


@dataclass(frozen=True)
class PartitionTask:
    """Group the buckets of one partition of band rows and verify its candidate pairs (a pure
    task: reads the partition's Parquet files, writes one of verified pairs)."""

    index: int
    files: tuple[str, ...]
    verifier: Verifier
    out_path: str

    @property
    def label(self) -> str:
        return f"near-duplicate candidates of band partition {self.index}"


def verify_partition(task: PartitionTask) -> int:
    """Run one :class:`PartitionTask`; returns its number of candidate pairs."""
    import duckdb

    table = pa.concat_tables(pq.read_table(path) for path in task.files)
    with duckdb.connect() as con:
        con.execute("SET threads = 1")
        a, b = pairs_in_duckdb(con, table)
    keep, similarity = task.verifier(a, b)
    pq.write_table(
        pa.table({"a": a, "b": b, "verified": keep, "similarity": similarity}), task.out_path
    )
    return len(a)


def pairs_on_engine(
    engine: Engine, work: str, table: pa.Table, verifier: Verifier
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Verified pairs ``(a, b, similarity)`` and the number of candidates, with the band rows
    exchanged by ``(band, h)`` and each partition grouped and verified in a task."""
    os.makedirs(work, exist_ok=True)
    files = []
    for number, start in enumerate(range(0, table.num_rows, BAND_FILE_ROWS)):
        path = os.path.join(work, f"bands-{number:05d}.parquet")
        pq.write_table(table.slice(start, BAND_FILE_ROWS), path)
        files.append(path)
    partitions = max(1, math.ceil(table.num_rows / BAND_PARTITION_ROWS))
    routed = engine.exchange(
        files, key=["band", "h"], partitions=partitions, out_dir=os.path.join(work, "exchanged")
    )
    tasks = [
        PartitionTask(k, tuple(parts), verifier, os.path.join(work, f"pairs-{k:05d}.parquet"))
        for k, parts in enumerate(routed)
        if parts
    ]
    found = sum(engine.map(verify_partition, tasks))
    if found > MAX_PAIRS:
        raise too_many_pairs(found)
    if not tasks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0
    pairs = pa.concat_tables(pq.read_table(task.out_path) for task in tasks)
    a = pairs.column("a").to_numpy()
    b = pairs.column("b").to_numpy()
    # a pair found in several partitions (sharing several bands) is one candidate
    unique = np.unique(np.stack([a, b], axis=1), axis=0, return_index=True)[1]
    verified = unique[pairs.column("verified").to_numpy(zero_copy_only=False)[unique]]
    similarity = pairs.column("similarity").to_numpy()
    return a[verified], b[verified], similarity[verified], len(unique)


def too_many_pairs(count: int) -> DedupError:
    return DedupError(
        f"{count:,} near-duplicate candidate pairs: more than the {MAX_PAIRS:,} that dedup "
        "holds in memory to take their connected components",
        "raise the threshold (e.g. --threshold 0.9), or dedup a smaller store",
    )


def components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component labels of nodes ``0 .. count-1`` linked by the edges ``(a, b)``:
    the labels ``scipy.sparse.csgraph.connected_components`` gives (components numbered in the
    order of their smallest node), by union-find in a compiled kernel (no scipy import)."""
    roots = _union_find(count, np.asarray(a, np.int64), np.asarray(b, np.int64))
    # number the components by their smallest node: the first node of each root, in order
    _unique, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)].astype(np.int32)


def _union_find(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from curator.dedup.minhash import union_find

    return union_find(count, a, b)
