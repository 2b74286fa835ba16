"""Near-duplicate clusters: MinHash for text, perceptual hashes for images.

1. Signatures. Each distinct ``content_hash`` of the live shards gets a MinHash signature (text,
   :mod:`curator.dedup.minhash`) or a 64-bit pHash (images, :mod:`curator.dedup.phash`), computed
   by :mod:`curator.dedup.signatures` and kept under ``STORE/indexes/`` keyed by content, so a
   later run computes only new content.
2. Candidates. Text signatures are cut into LSH bands (b × r chosen for the threshold); images'
   64-bit hashes into k + 1 bands (two hashes within Hamming distance k agree on at least one).
   Equal bands are grouped — band by band with numpy sorts on the local engine, by a keyed
   exchange and one task per partition on another engine (:mod:`curator.dedup.candidates`);
   every bucket links its members to its smallest one, and small buckets (≤ 32) link all pairs.
3. Verification (in those tasks on another engine). A text pair is kept when the signatures' estimated Jaccard similarity reaches the
   threshold; an image pair when the Hamming distance is at most k.
4. Clusters: connected components of the verified pairs, plus exact copies (one content, several
   samples). In each cluster one sample is kept by the provenance-aware rule: real before
   synthetic, lower generation, higher confidence, earlier, smaller id.

The ledger ``duplicates`` (sample_id, cluster_id, cluster_size, kept, method, similarity,
run_id; a view over Parquet files, :mod:`curator.store.ledgers`) holds every sample that has a
copy; each run writes one file per method, which replaces the method's earlier file in one
transaction.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from curator.core.arrays import from_numpy, to_numpy
from curator.dedup.candidates import (
    DedupError,
    MinHashVerifier,
    Verifier,
    index_files,
    map_index,
)
from curator.dedup.signatures import MINHASH_SEED, WORK_PREFIX, compute_missing
from curator.store.catalog import store_path

if TYPE_CHECKING:
    import duckdb

    from curator.engine.base import Engine
    from curator.store.base import StoreBase as Store

DEFAULT_THRESHOLD = 0.8
DEFAULT_NUM_PERM = 128
DEFAULT_SHINGLING = "word:5"
#: Image copies: pHashes within this Hamming distance (of 64 bits). Re-encoding, resizing and
#: brightening stay within it on bench/dedup.py's ground truth; see the README.
DEFAULT_HAMMING = 8
DUCKDB_MEMORY_LIMIT = "512MB"

TRUST_ORDER = (
    "CASE origin WHEN 'real' THEN 0 WHEN 'synthetic' THEN 1 ELSE 2 END, generation NULLS LAST, "
    "origin_confidence DESC, collected_at NULLS LAST, sample_id"
)


@dataclass
class MethodResult:
    method: str  # minhash | phash
    parameters: dict[str, Any]
    contents: int = 0  # distinct contents with a signature
    computed: int = 0  # signatures computed by this run (the rest came from the index)
    candidate_pairs: int = 0
    verified_pairs: int = 0
    clusters: int = 0
    duplicate_samples: int = 0  # samples in a cluster but not kept
    seconds: float = 0.0


@dataclass
class DedupResult:
    run_id: str
    methods: list[MethodResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seconds": self.seconds,
            "methods": [asdict(m) for m in self.methods],
        }


def _index_dir(store: Store, name: str) -> str:
    return os.path.join(store.root, "indexes", name)


def _live_paths(con: duckdb.DuckDBPyConnection, root: str, kind: str) -> list[str]:
    return [
        store_path(root, row[0])
        for row in con.execute(
            "SELECT path FROM cat.shards WHERE live AND content_kind = ? ORDER BY path", [kind]
        ).fetchall()
    ]


def _cluster(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    work: str,
    method: str,
    bands: np.ndarray,
    keys: pa.Array,
    verify: Verifier,
    result: MethodResult,
    live: np.ndarray | None = None,
) -> None:
    """Candidates from equal bands, verified pairs, components → temp table `near_<method>`
    (content_hash, component, similarity to its closest verified neighbour).

    On the local engine numpy sorts group each band here; on another engine they are exchanged by
    band and grouped and verified in tasks (:mod:`curator.dedup.candidates`): the same pairs."""
    from curator.dedup import candidates

    n, _b = bands.shape
    rows = np.arange(n, dtype=np.int64) if live is None else np.flatnonzero(live)
    if engine.name == "local":
        # the same pairs as DuckDB's grouping of the band rows, by sorts in this process
        a, b_ = candidates.pairs_in_numpy(bands, rows)
        if len(a) > candidates.MAX_PAIRS:
            raise candidates.too_many_pairs(len(a))
        result.candidate_pairs = len(a)
        keep, similarity = verify(a, b_)
        a, b_, similarity = a[keep], b_[keep], similarity[keep]
    else:
        table = candidates.band_rows(bands, rows)
        a, b_, similarity, result.candidate_pairs = candidates.pairs_on_engine(
            engine, os.path.join(work, f"candidates-{method}"), table, verify
        )
        del table
    result.verified_pairs = len(a)
    if len(a):
        nodes = np.unique(np.concatenate([a, b_]))
        la = np.searchsorted(nodes, a)
        lb = np.searchsorted(nodes, b_)
        labels = candidates.components(len(nodes), la, lb)
        # similarity of each member to its best verified neighbour
        best = np.zeros(len(nodes))
        np.maximum.at(best, la, similarity)
        np.maximum.at(best, lb, similarity)
        member_keys = keys.take(from_numpy(nodes))
        cluster_keys = from_numpy(labels.astype(np.int64))
        sims = from_numpy(best)
    else:
        member_keys, cluster_keys, sims = (
            pa.nulls(0, pa.string()),
            pa.nulls(0, pa.int64()),
            pa.nulls(0, pa.float64()),
        )
    con.register(
        "near_members",
        pa.table({"content_hash": member_keys, "component": cluster_keys, "similarity": sims}),
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE near_{method} AS SELECT * FROM near_members")
    con.unregister("near_members")


def _load_index(
    con: duckdb.DuckDBPyConnection, paths: list[str], column: str, index_dir: str
) -> pa.Table:
    """content_hash and value of every live content with a signature."""
    files = index_files(index_dir)
    if not files or not paths:
        return pa.table({"content_hash": pa.array([], pa.string()), "value": pa.array([])})
    return con.sql(
        "SELECT i.content_hash, any_value(i.value) AS value FROM read_parquet($index) i "
        f"SEMI JOIN (SELECT content_hash FROM read_parquet($paths, union_by_name = true) WHERE {column} IS NOT NULL) s "
        "USING (content_hash) GROUP BY i.content_hash ORDER BY i.content_hash",
        params={"index": files, "paths": paths},
    ).to_arrow_table()


def _load_bands(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    index_dir: str,
    num_perm: int,
    bands: int,
    rows: int,
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The band hashes of every signature of the index (computed batch by batch: the
    signatures themselves are never all in memory), their content hashes, and a mask of those
    that are live."""
    import pyarrow.compute as pc

    from curator.dedup import minhash

    def bands_of(keys: pa.Array, sigs: np.ndarray, _start: int) -> tuple[Any, Any, Any]:
        sigs = np.ascontiguousarray(sigs)
        # band hashes, and the contents without a shingle (all 0xFFFFFFFF)
        return keys, minhash.band_hashes(sigs, bands, rows), minhash.empty_rows(sigs)

    found = map_index(index_dir, num_perm, bands_of)
    keys = [k for k, _b, _e in found]
    parts = [b for _k, b, _e in found]
    empty = [e for _k, _b, e in found]
    key_array = pa.concat_arrays(keys) if keys else pa.nulls(0, pa.string())
    band_matrix = np.concatenate(parts) if parts else np.zeros((0, bands), np.int64)
    live_hashes = (
        con.sql(
            "SELECT DISTINCT content_hash FROM read_parquet($paths, union_by_name = true) WHERE text IS NOT NULL",
            params={"paths": paths},
        )
        .to_arrow_table()
        .column(0)
    )
    live = to_numpy(pc.is_in(key_array, value_set=live_hashes.combine_chunks())).copy()
    if empty:
        live &= ~np.concatenate(empty)
    return key_array, band_matrix, live


def _text_method(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    store: Store,
    work: str,
    run_id: str,
    threshold: float,
    num_perm: int,
    shingling: str,
    progress: Callable[[int], None] | None,
) -> MethodResult:
    from curator.dedup import minhash

    started = time.monotonic()
    params = minhash.lsh_parameters(threshold, num_perm)
    shingle = minhash.Shingling.parse(shingling)
    result = MethodResult(
        "minhash",
        {"threshold": threshold, "num_perm": num_perm, "shingling": str(shingle), **params},
    )
    index_dir = _index_dir(
        store, f"minhash-{shingle.kind}{shingle.size}-p{num_perm}-s{MINHASH_SEED}"
    )
    paths = _live_paths(con, store.root, "text")
    if not paths:
        _cluster(con, engine, work, "minhash", np.zeros((0, 1), np.int64),
                 pa.array([], pa.string()), MinHashVerifier(index_dir, num_perm, threshold),
                 result)  # fmt: skip
        return result

    result.computed = compute_missing(
        con, engine, paths, "text", index_dir, work, run_id, "minhash", num_perm, str(shingle),
        pa.binary(4 * num_perm), progress,
    )  # fmt: skip
    keys, bands, live = _load_bands(
        con, paths, index_dir, num_perm, params["bands"], params["rows"]
    )
    result.contents = int(live.sum())

    # only the signatures of candidate pairs are read back
    verify = MinHashVerifier(index_dir, num_perm, threshold)
    _cluster(con, engine, work, "minhash", bands, keys, verify, result, live)
    result.seconds = time.monotonic() - started
    return result


def _image_method(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    store: Store,
    work: str,
    run_id: str,
    hamming: int,
    progress: Callable[[int], None] | None,
    image_hash: str = "phash",
) -> MethodResult:
    """Image clusters by the image-hash kind `image_hash`
    (:mod:`curator.dedup.imagehash_kinds`); pHash by :mod:`curator.dedup.phash`."""
    from curator.dedup import imagehash_kinds, phash

    started = time.monotonic()
    kind = imagehash_kinds.image_hash_kind(image_hash)
    result = MethodResult(
        kind.method,
        {"hamming": hamming, "bands": hamming + 1, "bits": kind.bits, "kind": kind.name},
    )
    index_dir = _index_dir(store, kind.index_name)
    paths = _live_paths(con, store.root, "image")

    if paths:
        result.computed = compute_missing(
            con, engine, paths, "image", index_dir, work, run_id, kind.method, 0, "",
            kind.value_type, progress,
        )  # fmt: skip
    index = _load_index(con, paths, "image", index_dir)
    keys = index.column("content_hash").combine_chunks()
    if kind.multi:
        _segment_clusters(con, engine, work, kind, index, hamming, result)
        result.seconds = time.monotonic() - started
        return result
    hashes = (
        index.column("value").to_numpy().astype(np.int64).view(np.uint64)
        if index.num_rows
        else np.zeros(0, np.uint64)
    )
    informative = imagehash_kinds.informative(kind, hashes, hamming)
    result.contents = int(informative.sum())
    bands = phash.band_values(hashes, hamming + 1, kind.bits)

    verify = imagehash_kinds.verifier(kind, hashes, hamming)
    _cluster(
        con, engine, work, kind.method, bands, keys, verify, result, informative,
    )  # fmt: skip
    result.seconds = time.monotonic() - started
    return result


def _segment_clusters(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    work: str,
    kind: Any,
    index: pa.Table,
    hamming: int,
    result: MethodResult,
) -> None:
    """Clusters of a multi-segment kind (``crop_resistant``): one band row per informative
    segment, candidate segment pairs verified by Hamming distance, then two images are linked
    when any segment pair of theirs is verified (imagehash's ``matches`` with
    ``region_cutoff=1``); the pair counts are of image pairs."""
    import pyarrow.compute as pc

    from curator.dedup import candidates, imagehash_kinds, phash

    values = (
        index.column("value").combine_chunks() if index.num_rows else pa.array([], kind.value_type)
    )
    segments = np.asarray(pc.list_flatten(values).to_numpy(), np.int64).view(np.uint64)
    owners = np.asarray(pc.list_parent_indices(values).to_numpy(), np.int64)
    live = imagehash_kinds.informative(kind, segments, hamming)
    result.contents = len(np.unique(owners[live]))
    table = candidates.band_rows(phash.band_values(segments, hamming + 1), np.flatnonzero(live))
    verify = imagehash_kinds.verifier(kind, segments, hamming)
    if engine.name == "local":
        a, b = candidates.pairs_in_duckdb(con, table)
        if len(a) > candidates.MAX_PAIRS:
            raise candidates.too_many_pairs(len(a))
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        candidate_images = imagehash_kinds.image_pairs(owners[a], owners[b], np.zeros(len(a)))[0]
        keep, similarity = verify(a, b)
        a, b, similarity = a[keep], b[keep], similarity[keep]
    else:
        a, b, similarity, _count = candidates.pairs_on_engine(
            engine, os.path.join(work, f"candidates-{kind.method}"), table, verify
        )
        candidate_images = None
    del table
    ia, ib, similarity = imagehash_kinds.image_pairs(owners[a], owners[b], similarity)
    result.candidate_pairs = len(ia) if candidate_images is None else len(candidate_images)
    result.verified_pairs = len(ia)
    _components(con, kind.method, ia, ib, similarity, index.column("content_hash").combine_chunks())


def _components(
    con: duckdb.DuckDBPyConnection,
    method: str,
    a: np.ndarray,
    b: np.ndarray,
    similarity: np.ndarray,
    keys: pa.Array,
) -> None:
    """Temp table `near_<method>` from verified pairs of index rows (as :func:`_cluster` ends)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(a):
        nodes = np.unique(np.concatenate([a, b]))
        la = np.searchsorted(nodes, a)
        lb = np.searchsorted(nodes, b)
        graph = coo_matrix((np.ones(len(a)), (la, lb)), shape=(len(nodes), len(nodes)))
        _count, labels = connected_components(graph, directed=False)
        best = np.zeros(len(nodes))
        np.maximum.at(best, la, similarity)
        np.maximum.at(best, lb, similarity)
        members = pa.table(
            {
                "content_hash": keys.take(from_numpy(nodes)),
                "component": from_numpy(labels.astype(np.int64)),
                "similarity": from_numpy(best),
            }
        )
    else:
        members = pa.table(
            {
                "content_hash": pa.array([], pa.string()),
                "component": pa.array([], pa.int64()),
                "similarity": pa.array([], pa.float64()),
            }
        )
    con.register("near_members", members)
    con.execute(f"CREATE OR REPLACE TEMP TABLE near_{method} AS SELECT * FROM near_members")
    con.unregister("near_members")


def dedup(
    store: Store,
    *,
    text: bool = True,
    images: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    num_perm: int = DEFAULT_NUM_PERM,
    shingling: str = DEFAULT_SHINGLING,
    hamming: int = DEFAULT_HAMMING,
    image_hash: str = "phash",
    lock_timeout: float | None = None,
    progress: bool = False,
    engine: str | Engine | None = None,
) -> DedupResult:
    """Find near-duplicate clusters and record them in the ledger `duplicates` (a view).

    `image_hash` is the image-hash kind images are clustered by (``phash``, ``dhash``,
    ``whash``, ``average``, ``colorhash``, ``crop-resistant``;
    :mod:`curator.dedup.imagehash_kinds`): each kind keeps its own index and its own clusters.
    `engine` computes the signatures: ``local`` (default; env `CURATOR_ENGINE`) or an
    :class:`~curator.engine.base.Engine`."""
    from curator.core.progress import Progress
    from curator.dedup.shingling import Shingling
    from curator.engine.registry import using_engine
    from curator.store import catalog
    from curator.store.base import new_run_id
    from curator.store.commit import WorkDir, writing
    from curator.store.session import CatalogSession

    if not 0 < threshold <= 1:
        raise DedupError(
            f"threshold {threshold} is not in (0, 1]",
            "use e.g. --threshold 0.8 (Python: `threshold=0.8`)",
        )
    if not 16 <= num_perm <= 1024:
        raise DedupError(
            f"num_perm {num_perm} is not in 16..1024",
            "use e.g. --num-perm 128 (Python: `num_perm=128`)",
        )
    if not 0 <= hamming <= 31:
        raise DedupError(
            f"hamming distance {hamming} is not in 0..31",
            "use e.g. --hamming 8 (Python: `hamming=8`)",
        )
    try:
        Shingling.parse(shingling)
    except ValueError as exc:
        raise DedupError(
            str(exc), 'use word:K or char:N, e.g. --shingle word:5 (Python: `shingling="word:5"`)'
        ) from None
    from curator.dedup.imagehash_kinds import image_hash_kind

    image_method = image_hash_kind(image_hash).method
    if not (text or images):
        raise DedupError("nothing to do: both --no-text and --no-images", "drop one of them")
    clock = time.monotonic()
    if text:
        _warm_up_text_kernels()
    run_id = new_run_id()
    result = DedupResult(run_id)
    with (
        using_engine(engine) as runner,
        writing(store, "dedup", lock_timeout),
        WorkDir.create(store.root, run_id, prefix=WORK_PREFIX) as work,
    ):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
        session = CatalogSession(store, os.path.join(work.path, "duckdb"))
        con = session.con
        # The signatures live in numpy beside DuckDB: keep DuckDB's share small (it spills).
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        try:
            kinds = [k for k, on in (("text", text), ("image", images)) if on]
            total = int(
                con.execute(
                    "SELECT coalesce(sum(rows), 0) FROM cat.shards WHERE live AND list_contains(?, content_kind)",
                    [kinds],
                ).fetchall()[0][0]
            )
            with Progress("dedup", total=total, unit="rows", enabled=progress) as bar:

                def advance(n: int) -> None:
                    bar.advance(n, rows=n)

                methods = []
                if text:
                    result.methods.append(
                        _text_method(
                            con,
                            runner,
                            store,
                            work.path,
                            run_id,
                            threshold,
                            num_perm,
                            shingling,
                            advance,
                        )
                    )
                    methods.append("minhash")
                if images:
                    result.methods.append(
                        _image_method(
                            con, runner, store, work.path, run_id, hamming, advance, image_hash
                        )
                    )
                    methods.append(image_method)
            for method, method_result in zip(methods, result.methods, strict=True):
                _members(con, store, method, method_result, run_id)
            session.detach()
            _commit(store, con, methods, run_id, work.path)
        finally:
            session.close()
    result.seconds = time.monotonic() - clock
    return result


def _warm_up_text_kernels() -> None:
    """Import numba and load the MinHash kernels from its cache in a thread, while this one
    opens the catalog and DuckDB finds the contents to hash (it releases the GIL): that fixed
    cost (about half a second) then overlaps work instead of preceding it."""
    import threading

    def run() -> None:
        with contextlib.suppress(Exception):  # the real call reports any problem
            from curator.dedup import minhash

            minhash.warm_up()

    threading.Thread(target=run, name="minhash-warm-up", daemon=True).start()


def _members(
    con: duckdb.DuckDBPyConnection, store: Store, method: str, result: MethodResult, run_id: str
) -> None:
    """Temp table `dup_<method>`: every live sample in a cluster, with the kept one marked."""
    kind = "text" if method == "minhash" else "image"
    paths = _live_paths(con, store.root, kind)
    if not paths:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE dup_{method} (sample_id VARCHAR, cluster_id VARCHAR, cluster_size BIGINT, kept BOOLEAN, method VARCHAR, similarity DOUBLE, run_id VARCHAR)"
        )
        return
    column = "text" if kind == "text" else "image"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dup_{method} AS
        WITH s AS (
            SELECT sample_id, content_hash, origin, generation, origin_confidence, collected_at
            FROM read_parquet($paths, union_by_name = true) WHERE {column} IS NOT NULL
        ),
        copies AS (SELECT content_hash FROM s GROUP BY 1 HAVING count(*) > 1),
        grouped AS (
            -- a near cluster is named by its smallest content; an exact-copy group by its content
            SELECT n.content_hash, min(n.content_hash) OVER (PARTITION BY n.component) AS cluster, n.similarity
            FROM near_{method} n
            UNION ALL
            SELECT c.content_hash, c.content_hash, 1.0 FROM copies c ANTI JOIN near_{method} n USING (content_hash)
        ),
        members AS (
            SELECT s.*, g.cluster, g.similarity FROM s JOIN grouped g USING (content_hash)
        )
        SELECT sample_id, '{method}:' || cluster AS cluster_id,
               count(*) OVER (PARTITION BY cluster) AS cluster_size,
               row_number() OVER (PARTITION BY cluster ORDER BY {TRUST_ORDER}) = 1 AS kept,
               '{method}' AS method, similarity, '{run_id}' AS run_id
        FROM members
        """,
        {"paths": paths},
    )
    result.clusters, result.duplicate_samples = (
        int(v or 0)
        for v in con.execute(
            f"SELECT count(DISTINCT cluster_id), count(*) FILTER (WHERE NOT kept) FROM dup_{method}"
        ).fetchall()[0]
    )


def _commit(
    store: Store, con: duckdb.DuckDBPyConnection, methods: list[str], run_id: str, work: str
) -> None:
    """Write each method's clusters as a `duplicates` ledger file (replacing the method's
    earlier file), place them and register them in one transaction."""
    from curator.store import ledgers
    from curator.store.commit import transaction

    staged = [
        ledgers.write_ledger(
            work,
            "duplicates",
            con.sql(f"SELECT * FROM dup_{m}").to_arrow_reader(),
            scope=m,
            run_id=run_id,
        )
        for m in methods
    ]
    ledgers.place_ledgers(store.root, work, staged)
    with ledgers.withdrawn_unless_committed(store.root, work) as registration:
        with transaction(store) as rw:
            for ledger in staged:
                ledgers.register_ledger(rw, ledger)
            rw.execute(
                "INSERT INTO meta VALUES ('last_dedup_run', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [f"{run_id} {datetime.now(UTC).isoformat(timespec='seconds')}"],
            )
        registration.committed = True
