"""The store: a directory of immutable Parquet shards with a DuckDB catalog beside them.

```
STORE/
  catalog.duckdb            runs, shards, manifests, usage, models; views `samples` (the live
                            shards) and `lineage_edges`
  shards/<source>/…parquet  immutable; written to a temporary name, then renamed
  indexes/  manifests/      (near-duplicate indexes, assembled training sets)
  rejects/<run>/            input records that failed validation, each with its reason
```
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curator.core.errors import (
    IngestFailed,
    InputError,
    ProvenanceError,
    QueryError,
    StoreError,
    StoreLockedError,
)
from curator.core.provenance import ProvenanceSpec
from curator.core.schema import MAX_GENERATION
from curator.core.version import __version__
from curator.store import catalog
from curator.store.locking import (
    claim_work_dir,
    forget_placement,
    lock_timeout,
    owner_gone,
    place_file,
    record_placement,
    recorded_placement,
    recover_work_dir,
    undo_placement,
    write_lock,
)

if TYPE_CHECKING:
    import duckdb

    from curator.assembly.assemble import Assembly
    from curator.assembly.manifest import Manifest
    from curator.assembly.policy import Policy
    from curator.dedup.clusters import DedupResult
    from curator.infer.inference import InferResult
    from curator.ingest.pipeline import TaskResult
    from curator.lineage.models import Model
    from curator.lineage.tree import LineageNode
    from curator.store.shards import WrittenShard

CATALOG_FILE = "catalog.duckdb"
STORE_DIRS = ("shards", "indexes", "manifests", "rejects")
STAGING_DIR = ".staging"


def _crash_point(name: str) -> None:
    """Test hook: die here, as a killed process would, when `CURATOR_CRASH_AT` names this point."""
    if os.environ.get("CURATOR_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def new_run_id() -> str:
    """A run id that sorts by time: ``20261125T031500Z-1a2b3c``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def init_store(path: str | os.PathLike[str], *, exist_ok: bool = False) -> Store:
    """Create a store at `path`: the directory layout and an empty catalog.

    Args:
        path: directory to create (it may exist if empty).
        exist_ok: return the existing store instead of failing when one is already there.

    Raises:
        StoreError: a store is already there (and not `exist_ok`), or the directory is not empty.

    >>> store = init_store(tmp_path / "store")  # doctest: +SKIP
    """
    root = os.path.abspath(os.fspath(path))
    catalog_path = os.path.join(root, CATALOG_FILE)
    if os.path.exists(catalog_path):
        if exist_ok:
            return Store(root)
        raise StoreError(f"a store already exists at `{root}`", "use it, or pick another directory")
    if os.path.isdir(root) and any(not n.startswith(".") for n in os.listdir(root)):
        raise StoreError(
            f"`{root}` is not empty and holds no store",
            "pick a new or empty directory for the store",
        )
    os.makedirs(root, exist_ok=True)
    for name in STORE_DIRS:
        os.makedirs(os.path.join(root, name), exist_ok=True)
    import duckdb

    tmp = catalog_path + ".init"
    if os.path.exists(tmp):
        os.remove(tmp)
    con = duckdb.connect(tmp)
    try:
        catalog.create(con, __version__)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, catalog_path)
    return Store(root)


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    """Open an existing store; `path` defaults to env `CURATOR_STORE`.

    Raises:
        StoreError: no path given and no `CURATOR_STORE`, or no store at the path.
    """
    if path is None:
        path = os.environ.get("CURATOR_STORE")
        if not path:
            raise StoreError(
                "no store given",
                "pass --store DIR or set CURATOR_STORE (create one with `curator init DIR`)",
            )
    return Store(path)


@dataclass
class IngestResult:
    """What one ingest run did. ``rows_read == ingested + skipped + rejected`` always."""

    run_id: str
    status: str
    source: str
    rows_read: int = 0
    ingested: int = 0
    skipped: int = 0
    rejected: int = 0
    content_bytes: int = 0
    shards: int = 0
    seconds: float = 0.0
    reject_codes: dict[str, int] = field(default_factory=dict)
    skip_codes: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    #: reject code → its first rejected record: "`file` line N: reason"
    first_rejects: dict[str, str] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)
    files: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatsRow:
    origin: str
    generation: int | None
    source: str
    rows: int
    content_bytes: int


@dataclass(frozen=True)
class Stats:
    """Rows and content bytes by origin × generation × source over the live shards."""

    rows: tuple[StatsRow, ...]

    @property
    def total_rows(self) -> int:
        return sum(r.rows for r in self.rows)

    @property
    def total_bytes(self) -> int:
        return sum(r.content_bytes for r in self.rows)

    def by_origin(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for row in self.rows:
            result[row.origin] = result.get(row.origin, 0) + row.rows
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "total_rows": self.total_rows,
            "total_content_bytes": self.total_bytes,
            "by_origin": self.by_origin(),
            "rows": [r.__dict__ for r in self.rows],
        }


class Store:
    """An open store. Create one with :func:`init_store`, open one with :func:`open_store`.

    >>> store = open_store("data/store")  # doctest: +SKIP
    >>> store.ingest(["corpus.jsonl"], source="web-2021", origin="real")  # doctest: +SKIP
    >>> store.sql("SELECT origin, count(*) FROM samples GROUP BY 1")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isfile(self.catalog_path):
            raise StoreError(
                f"no store at `{self.root}` (no {CATALOG_FILE})",
                f"create one with `curator init {self.root}`",
            )

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    @property
    def catalog_path(self) -> str:
        return os.path.join(self.root, CATALOG_FILE)

    # -- catalog access ---------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(
        self, *, read_only: bool = True, timeout: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection to the catalog, with shard paths resolving inside the store.

        DuckDB lets one process at a time open the file for writing, and none open it while a
        writer has it; writers hold it only for the moment of a commit, so this retries until
        `timeout` seconds (default: the lock timeout) have passed.
        """
        import duckdb

        con = self._open_catalog(
            lambda: duckdb.connect(self.catalog_path, read_only=read_only), timeout
        )
        try:
            con.execute("SET file_search_path = '" + self.root.replace("'", "''") + "'")
            con.execute("SET enable_progress_bar = false")  # DuckDB's bar writes to stdout
            yield con
        finally:
            con.close()

    def _open_catalog(
        self, open_catalog: Callable[[], duckdb.DuckDBPyConnection], timeout: float | None
    ) -> duckdb.DuckDBPyConnection:
        """`open_catalog()`, retried while another process holds the catalog."""
        import duckdb

        timeout = lock_timeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return open_catalog()
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise StoreError(
                        f"cannot open the catalog `{self.catalog_path}`: {exc}"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"the catalog `{self.catalog_path}` is held by another process; "
                        f"waited {timeout:g} s",
                        "wait for the other curator or duckdb process to finish "
                        "(a `duckdb` shell left open on the catalog holds it too)",
                    ) from exc
                time.sleep(0.05)

    # -- queries ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def query_connection(
        self, *, timeout: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection for the user's queries: it reads the catalog and the live shards,
        and nothing else.

        A database of its own (DuckDB's settings belong to a database, and curator's connections
        keep theirs) attaches the catalog read-only; `samples` is pointed (a temporary view) at
        the live shards by absolute path; external access is turned off with only those files
        allowed, and the configuration is locked, so no statement reads or writes another file,
        loads an extension, attaches a database or turns any of this back. Statements that are
        not queries are refused before they get here (see :meth:`sql_batches`).
        """
        import duckdb

        from curator.store import ledgers

        def open_catalog() -> duckdb.DuckDBPyConnection:
            con = duckdb.connect(":memory:")
            try:
                con.execute(
                    f"ATTACH {catalog.sql_literal(self.catalog_path)} AS catalog (READ_ONLY)"
                )
            except BaseException:
                con.close()
                raise
            return con

        con = self._open_catalog(open_catalog, timeout)
        try:
            con.execute("USE catalog")
            con.execute("SET enable_progress_bar = false")  # DuckDB's bar writes to stdout
            # Spill where a connection to the catalog file would, not into the working directory.
            con.execute(f"SET temp_directory = {catalog.sql_literal(self.catalog_path + '.tmp')}")
            shard_files = [
                catalog.store_path(self.root, row[0])
                for row in con.execute(
                    "SELECT path FROM shards WHERE live ORDER BY path"
                ).fetchall()
            ]
            # The catalog's `samples` names shards relative to the store, which DuckDB checks
            # against the allowed files as if relative to the working directory.
            view = catalog.samples_view_sql(shard_files)
            prefix = "CREATE OR REPLACE VIEW samples AS "
            assert view.startswith(prefix), view
            con.execute("CREATE TEMP VIEW samples AS " + view[len(prefix) :])
            ledger_views, ledger_files = ledgers.query_views(con, self.root)
            for statement in ledger_views:
                con.execute(statement)
            con.execute(
                "SET allowed_paths = ["
                + ", ".join(catalog.sql_literal(path) for path in shard_files + ledger_files)
                + "]"
            )
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()

    def sql(self, query: str) -> pa.Table:
        """Run a read-only SQL query over the catalog (`samples`, `shards`, `runs`, …) and
        return the whole result.

        Raises:
            QueryError: the query failed (the message is DuckDB's), or it is not one read-only
                query (a `COPY`, `EXPORT`, `ATTACH`, `SET`, … or several statements).

        >>> store.sql("SELECT origin, count(*) AS n FROM samples GROUP BY 1").to_pylist()  # doctest: +SKIP
        [{'origin': 'real', 'n': 1000}]
        """
        with self.sql_batches(query) as reader:
            return reader.read_all()

    @contextlib.contextmanager
    def sql_batches(self, query: str) -> Iterator[pa.RecordBatchReader]:
        """Stream the result of a read-only query as Arrow record batches (memory bounded by
        the batch, not the result). An error while streaming raises :class:`QueryError` too.

        `query` must be one query (``SELECT``, ``WITH``, ``FROM``, ``DESCRIBE``, ``SHOW``,
        ``SUMMARIZE`` …); it runs on :meth:`query_connection`, which reads only the catalog and
        the live shards.

        >>> with store.sql_batches("SELECT * FROM samples") as reader:  # doctest: +SKIP
        ...     for batch in reader: ...
        """
        import duckdb

        _check_read_only(query)
        with self.query_connection() as con:
            try:
                reader = con.sql(query).to_arrow_reader()
            except duckdb.Error as exc:
                raise QueryError(f"query failed: {exc}", _query_hint(con, exc)) from exc

            def batches() -> Iterator[pa.RecordBatch]:
                try:
                    yield from reader
                except (duckdb.Error, pa.ArrowException, OSError) as exc:
                    hint = _query_hint(con, exc) if isinstance(exc, duckdb.Error) else None
                    raise QueryError(f"query failed: {exc}", hint) from exc

            try:
                yield pa.RecordBatchReader.from_batches(reader.schema, batches())
            finally:
                reader.close()

    def export(self, query: str, path: str | os.PathLike[str]) -> int:
        """Stream the result of a read-only query into a Parquet file (written by pyarrow under a
        temporary name, then renamed). Returns the number of rows written.

        Raises:
            QueryError: as :meth:`sql`.
            InputError: `path` is inside the store.

        >>> store.export("SELECT * FROM samples WHERE origin = 'real'", "real.parquet")  # doctest: +SKIP
        """
        import pyarrow.parquet as pq

        target = self.outside_store(path)
        tmp = target + ".tmp"
        rows = 0
        try:
            with (
                self.sql_batches(query) as reader,
                pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer,
            ):
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        os.replace(tmp, target)
        return rows

    def outside_store(self, path: str | os.PathLike[str]) -> str:
        """`path` when it lies outside the store (links followed, including a `shards/` that
        links to another disk): a query result written there cannot replace a shard or the
        catalog.

        Raises:
            InputError: `path` is inside the store.
        """
        target = os.fspath(path)
        real = os.path.realpath(target)
        for top in (self.root, *(os.path.join(self.root, n) for n in (*STORE_DIRS, STAGING_DIR))):
            inside = os.path.realpath(top)
            if real == inside or real.startswith(inside.rstrip(os.sep) + os.sep):
                raise InputError(
                    f"`{target}` is inside the store `{self.root}`; a query result is not "
                    "written there",
                    "write it to a path outside the store directory",
                )
        return target

    def stats(self) -> Stats:
        """Rows and content bytes by origin × generation × source, from the catalog (no shard
        is read)."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT origin, generation, source, rows, content_bytes FROM composition "
                "ORDER BY origin, generation NULLS LAST, source"
            ).fetchall()
        return Stats(tuple(StatsRow(o, g, s, int(r), int(b)) for o, g, s, r, b in rows))

    def live_shards(self) -> list[dict[str, Any]]:
        """The live shards: path (relative to the store), rows, bytes, sha256."""
        with self.connect() as con:
            table = con.sql(
                "SELECT shard_id, path, source, run_id, rows, file_bytes, content_bytes, sha256 "
                "FROM shards WHERE live ORDER BY path"
            ).to_arrow_table()
        return table.to_pylist()

    # -- assembly --------------------------------------------------------------------------

    def plan(
        self, policy: Policy | str | os.PathLike[str], *, lineage: str | None = None
    ) -> Assembly:
        """Plan an assembly without writing anything: what each pool holds and what would be
        taken. ``print(store.plan(policy).describe())`` shows it.

        Raises:
            ShortfallError: the target cannot be met and the policy says ``on_shortfall = "error"``.
        """
        from curator.assembly.assemble import plan_only

        return plan_only(self, _policy(policy), lineage=lineage)

    def assemble(
        self,
        policy: Policy | str | os.PathLike[str],
        out: str | os.PathLike[str],
        *,
        lineage: str | None = None,
        name: str | None = None,
        lock_timeout: float | None = None,
    ) -> Manifest:
        """Assemble a training set under `policy` into the new or empty directory `out`: Parquet
        (or JSON Lines) shards and `manifest.json`. The content it uses is recorded in the
        freshness ledger of `lineage` (default: the policy's `freshness.lineage`, else
        ``default``).

        Raises:
            PolicyError: the policy is invalid for this store.
            ShortfallError: the target cannot be met under ``on_shortfall = "error"``; nothing
                was written.

        >>> manifest = store.assemble("gen-2.toml", "train/gen-2", lineage="main")  # doctest: +SKIP
        >>> manifest.verify()
        []
        """
        from curator.assembly.assemble import assemble

        return assemble(
            self, _policy(policy), out, lineage=lineage, name=name, lock_timeout=lock_timeout
        )

    def manifests(self) -> list[dict[str, Any]]:
        """Every manifest of the store (id, name, lineage, sequence, rows …), by lineage."""
        from curator.assembly.assemble import manifests_of

        return manifests_of(self)

    def manifest(self, ident: str) -> Manifest:
        """A manifest by id, by name (the latest of that name) or by path."""
        from curator.assembly.assemble import find_manifest

        return find_manifest(self, ident)

    # -- near-duplicates ----------------------------------------------------------------------

    def dedup(
        self,
        *,
        text: bool = True,
        images: bool = True,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingling: str = "word:5",
        hamming: int = 8,
        lock_timeout: float | None = None,
        progress: bool = False,
    ) -> DedupResult:
        """Find near-duplicate clusters (MinHash LSH for text, pHash bands for images) and
        record them in the catalog table ``duplicates``; see :mod:`curator.dedup.clusters`.

        >>> result = store.dedup(threshold=0.8)  # doctest: +SKIP
        >>> store.sql("SELECT cluster_id, sample_id, kept FROM duplicates")  # doctest: +SKIP
        """
        from curator.dedup.clusters import dedup

        return dedup(
            self,
            text=text,
            images=images,
            threshold=threshold,
            num_perm=num_perm,
            shingling=shingling,
            hamming=hamming,
            lock_timeout=lock_timeout,
            progress=progress,
        )

    def infer(
        self,
        *,
        cutoff: date | datetime | None = None,
        time_prior_confidence: float = 0.6,
        detector: Any = None,
        detector_threshold: float = 0.9,
        apply: bool = True,
        lock_timeout: float | None = None,
        progress: bool = False,
        c2pa_trust_anchors: str | os.PathLike[str] | None = None,
    ) -> InferResult:
        """Label samples of unknown origin from the signals they carry (C2PA, IPTC, generator
        metadata), their near-duplicates, a time prior (`cutoff`, default 2022-11-30) and an
        optional detector; report conflicts with declared labels. ``apply=False`` changes
        nothing. `c2pa_trust_anchors`: a PEM file of trusted C2PA signers' CAs (default: env
        ``CURATOR_C2PA_TRUST_ANCHORS``). See :mod:`curator.infer.inference`."""
        from curator.infer.inference import DEFAULT_CUTOFF, infer

        return infer(
            self,
            cutoff=cutoff or DEFAULT_CUTOFF,
            time_prior_confidence=time_prior_confidence,
            detector=detector,
            detector_threshold=detector_threshold,
            apply=apply,
            lock_timeout=lock_timeout,
            progress=progress,
            c2pa_trust_anchors=c2pa_trust_anchors,
        )

    def contamination(self, source: str) -> dict[str, Any]:
        """How much of `source` near-duplicates known synthetic samples, by generation and model."""
        from curator.infer.inference import contamination

        return contamination(self, source)

    # -- models and lineage -------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        *,
        trained_on: str | None = None,
        generation: int | None = None,
        notes: str | None = None,
        metrics: Mapping[str, float] | None = None,
        lock_timeout: float | None = None,
    ) -> Model:
        """Register the model `name`, trained on the manifest `trained_on` (id, name or path):
        its generation is the deepest generation among that manifest's samples. A model
        trained outside curator is registered with `generation` declared instead. `metrics`
        (``{"perplexity": 41.2}``) record what the model scored; reports plot them per generation.

        Raises:
            ModelError: the name is taken, the manifest is not in this store, or the manifest
                contains the model's own output (a cycle).

        >>> store.register_model("ngram-1", trained_on="gen-1")  # doctest: +SKIP
        Model(name='ngram-1', generation=0, declared=False, trained_on='…', …)
        """
        from curator.lineage.models import register_model

        return register_model(
            self,
            name,
            trained_on=trained_on,
            generation=generation,
            notes=notes,
            metrics=metrics,
            lock_timeout=lock_timeout,
        )

    def models(self) -> list[Model]:
        """Every registered model, oldest first."""
        from curator.lineage.models import list_models

        return list_models(self)

    def model(self, name: str) -> Model:
        """The registered model `name` (a :class:`ModelError` lists the registered ones)."""
        from curator.lineage.models import get_model

        return get_model(self, name)

    def lineage(self, ident: str, *, max_depth: int = 64) -> LineageNode:
        """Where a sample, model or manifest came from, as a tree (``.to_json()`` for JSON);
        nodes with parents beyond `max_depth` levels are marked ``truncated``."""
        from curator.lineage.tree import lineage_tree

        return lineage_tree(self, ident, max_depth=max_depth)

    def lineage_report(self, lineage: str) -> dict[str, Any]:
        """The generation audit of `lineage`: per manifest, in order, the fractions of real,
        fresh real, synthetic by generation and unknown, the deepest generation, and each
        constraint with whether it held and its margin."""
        from curator.lineage.audit import lineage_report

        return lineage_report(self, lineage)

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        inputs: Sequence[str | os.PathLike[str]],
        *,
        source: str,
        origin: str | None = None,
        generation: int | None = None,
        model: str | None = None,
        generated_by: str | None = None,
        confidence: float = 1.0,
        collected_at: datetime | date | None = None,
        collected_at_column: str | None = None,
        id_column: str | None = None,
        text_column: str = "text",
        image_column: str | None = None,
        parent_id_column: str | None = None,
        rename_columns: dict[str, str] | None = None,
        input_format: str = "auto",
        strict: bool = False,
        allow_empty: bool = False,
        jobs: int | None = None,
        shard_bytes: int | None = None,
        max_image_pixels: int = 89_478_485,
        batch_rows: int = 8192,
        max_record_bytes: int = 64 << 20,
        lock_timeout: float | None = None,
        progress: bool = False,
    ) -> IngestResult:
        """Read inputs, tag every record with provenance and add them to the store.

        Records that fail validation go to ``rejects/<run>/rejects.jsonl`` with their file,
        line or row and reason; the rest are committed. Rows whose ``sample_id`` is already in
        the store with the same ``content_hash`` are skipped; with different content they are
        rejected, naming both. With `strict`, any reject fails the run and nothing is committed.
        A run that keeps nothing (no record read, or every record rejected), or in which whole
        files or batches are rejected for a missing column, fails and commits nothing unless
        `allow_empty`; a run whose records are all already in the store succeeds.

        Args:
            inputs: files, directories and globs (JSONL, Parquet, CSV, text, images, tar).
            source, origin, generation, model, confidence, collected_at, collected_at_column,
            id_column, text_column, image_column, parent_id_column: see :class:`ProvenanceSpec`.
            generated_by: a registered model that made every sample: origin ``synthetic``,
                generation = the model's generation + 1, evidence ``model-lineage``,
                confidence 1 (instead of `origin`, `generation` and `model`).
            rename_columns: ``{old: new}`` renames applied to input columns first.
            input_format: ``auto`` (by file name) or one of ``jsonl``, ``parquet``, ``csv``,
                ``text``, ``image``, ``webdataset``.
            strict: fail the whole run on any reject.
            allow_empty: commit a run that keeps nothing, or that rejects whole files for a
                missing column, instead of failing it.
            jobs: worker processes (default: all cores).
            shard_bytes: target content bytes per shard (default 256 MiB).
            max_record_bytes: a longer JSON Lines line or CSV record is rejected as
                ``record_too_large`` without being held in memory (default 64 MiB).
            lock_timeout: seconds to wait for another writer (default 120, env
                `CURATOR_LOCK_TIMEOUT`).
            progress: draw a progress bar on a terminal.

        Returns:
            An :class:`IngestResult` with the counts; ``rows_read == ingested + skipped + rejected``.

        Raises:
            InputError, ProvenanceError: bad inputs or flags, before anything is read.
            IngestFailed: `strict` and some record was rejected, or (unless `allow_empty`) no
                record was kept or a column was missing; nothing was committed. The message and
                hint give the first rejected record of each reason.
            StoreLockedError: another writer held the store for longer than `lock_timeout`.

        >>> store.ingest(["corpus.jsonl"], source="web-2021", origin="real",
        ...              collected_at=date(2021, 6, 1))  # doctest: +SKIP
        IngestResult(run_id='…', status='committed', rows_read=1000, ingested=1000, …)
        """
        from curator.ingest.pipeline import TaskConfig, run_tasks
        from curator.ingest.readers import ReaderOptions, discover, plan_tasks
        from curator.store.shards import DEFAULT_SHARD_BYTES

        evidence = "declared"
        if generated_by is not None:
            origin, generation, model = self._generated_by(
                generated_by, origin, generation, model, confidence
            )
            evidence = "model-lineage"
        elif origin is None:
            raise ProvenanceError(
                "no origin given", "pass --origin real|synthetic|unknown, or --generated-by MODEL"
            )
        elif model is not None:
            self._check_declared_model(model, generation)
        spec = ProvenanceSpec(
            source=source,
            origin=origin,
            generation=generation,
            model=model,
            confidence=confidence,
            evidence=evidence,
            collected_at=collected_at
            if collected_at is None or isinstance(collected_at, datetime)
            else datetime(collected_at.year, collected_at.month, collected_at.day),
            collected_at_column=collected_at_column,
            id_column=id_column,
            text_column=text_column,
            image_column=image_column,
            parent_id_column=parent_id_column,
            renames=tuple(sorted((rename_columns or {}).items())),
        )
        started = datetime.now(UTC)
        clock = time.monotonic()
        files, ignored = discover([os.fspath(i) for i in inputs], input_format)
        if not files:
            raise InputError(
                "no input files found"
                + (f" ({len(ignored)} files of unknown format ignored)" if ignored else ""),
                "name JSONL, Parquet, CSV, text, image or tar files, or pass --format",
            )
        tasks = plan_tasks(files)
        run_id = new_run_id()
        staging = os.path.join(self.root, STAGING_DIR, run_id)
        os.makedirs(staging)
        claim_work_dir(staging, run_id)
        config = TaskConfig(
            spec=spec,
            options=ReaderOptions(
                text_column=spec.text_column,
                image_column=spec.image_column,
                batch_rows=batch_rows,
                max_record_bytes=max_record_bytes,
                max_image_pixels=max_image_pixels,
            ),
            staging_dir=staging,
            ingest_id=run_id,
            curator_version=__version__,
            layout="store",
            shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES,
        )
        args = {
            "inputs": [f.path for f in files],
            "format": input_format,
            "strict": strict,
            "allow_empty": allow_empty,
            "provenance": spec.to_json(),
        }
        try:
            results = run_tasks(tasks, config, jobs=jobs, progress=progress)
            _crash_point("staged")
            result = self._commit_ingest(
                run_id, spec, results, args, started, strict, allow_empty, lock_timeout, staging
            )
        finally:
            # A placement record still there means placed shards could not be taken back: the
            # directory stays for the recovery of the next write.
            if not recorded_placement(staging):
                shutil.rmtree(staging, ignore_errors=True)
        result.seconds = time.monotonic() - clock
        result.ignored_files = ignored
        result.files = len(files)
        return result

    def _check_declared_model(self, model: str, generation: int | None) -> None:
        """`--model NAME` naming a registered model must agree with its generation."""
        from curator.lineage.models import list_models

        registered = {m.name: m for m in list_models(self)}
        if model in registered and generation != registered[model].generation + 1:
            g = registered[model].generation
            raise ProvenanceError(
                f"`--model {model}` names a registered model of generation {g}, whose samples "
                f"are generation {g + 1}, but `--generation {generation}` was given",
                f"use --generated-by {model} (it sets origin, generation and model)",
            )

    def _generated_by(
        self,
        name: str,
        origin: str | None,
        generation: int | None,
        model: str | None,
        confidence: float,
    ) -> tuple[str, int, str]:
        """Origin, generation and model of samples made by the registered model `name`."""
        from curator.lineage.models import get_model

        registered = get_model(self, name)
        derived = registered.generation + 1
        if origin not in (None, "synthetic"):
            raise ProvenanceError(
                f"`--generated-by {name}` makes the samples synthetic, but `--origin {origin}` was given",
                "drop --origin",
            )
        if generation is not None and generation != derived:
            raise ProvenanceError(
                f"`--generation {generation}` contradicts `--generated-by {name}`: model `{name}` "
                f"is generation {registered.generation}, so its samples are generation {derived}",
                "drop --generation",
            )
        if model is not None and model != name:
            raise ProvenanceError(
                f"`--model {model}` contradicts `--generated-by {name}`", "drop --model"
            )
        if confidence != 1.0:
            raise ProvenanceError(
                "`--confidence` does not apply with `--generated-by`: a registered model's "
                "samples are labelled with confidence 1",
                "drop --confidence",
            )
        if derived > MAX_GENERATION:
            raise ProvenanceError(f"generation {derived} exceeds the maximum of {MAX_GENERATION}")
        return "synthetic", derived, name

    def _recover(self, timeout: float | None = None) -> None:
        """Under the write lock: undo what killed runs left behind, and only that.

        A killed run leaves its work directory `.staging/<run>/`, marked with its owner
        (``owner.json``); one killed between moving its shards into `shards/` and committing the
        catalog has also written there which store paths it was placing (``placing.json``). When
        the owner process is gone, those recorded paths that the catalog does not know are
        removed, then the work directory. Nothing else is touched: not a file in `shards/` that
        no record names, not a directory without curator's mark, not what a link points to.
        """
        staging_root = os.path.join(self.root, STAGING_DIR)
        if not os.path.isdir(staging_root):
            return
        candidates = sorted(
            path
            for path in (os.path.join(staging_root, n) for n in os.listdir(staging_root))
            if not os.path.islink(path) and owner_gone(path)
        )
        if not candidates:
            return
        known = self._known_shard_paths(timeout)
        for path in candidates:
            recover_work_dir(self.root, path, known)

    def _known_shard_paths(self, timeout: float | None = None) -> set[str]:
        with self.connect(read_only=True, timeout=timeout) as con:
            return {row[0] for row in con.execute("SELECT path FROM shards").fetchall()}

    def _commit_ingest(
        self,
        run_id: str,
        spec: ProvenanceSpec,
        results: list[TaskResult],
        args: dict[str, Any],
        started: datetime,
        strict: bool,
        allow_empty: bool,
        timeout: float | None,
        staging: str,
    ) -> IngestResult:
        from curator.ingest.readers import Reject

        result = IngestResult(run_id=run_id, status="committed", source=spec.source)
        staged: list[WrittenShard] = [shard for r in results for shard in r.shards]
        for r in results:
            result.rows_read += r.rows_read
            result.rejected += r.rejected
            for code, count in r.reject_codes.items():
                result.reject_codes[code] = result.reject_codes.get(code, 0) + count
        with write_lock(self.root, "ingest", timeout):
            self._recover(timeout)
            extra_rejects: list[Reject] = []
            if staged:
                extra_rejects, skipped = self._drop_known(spec.source, staged, result, timeout)
            else:
                skipped = 0
            result.skipped = skipped
            result.rejected += len(extra_rejects)
            for reject in extra_rejects:
                result.reject_codes[reject.code] = result.reject_codes.get(reject.code, 0) + 1
            staged = [s for s in staged if s.rows > 0]
            try:
                new_columns = self._reconcile_columns(staged, timeout)
            except IngestFailed as exc:
                result.status = "failed"
                result.ingested = sum(s.rows for s in staged)
                self._record_run(result, args, started, [], exc.message)
                raise
            result.ingested = sum(s.rows for s in staged)
            result.content_bytes = sum(s.content_bytes for s in staged)
            assert result.rows_read == result.ingested + result.skipped + result.rejected, result
            result.rejects_path = self._keep_rejects(run_id, results, extra_rejects, result)
            result.first_rejects = first_rejects(result.rejects_path, result.reject_codes)
            if strict and result.rejected:
                result.status = "failed"
                message = (
                    f"--strict: {result.rejected:,} of {result.rows_read:,} records were rejected "
                    f"({_codes(result.reject_codes)}); nothing was committed"
                )
                self._record_run(result, args, started, [], message)
                raise IngestFailed(
                    message,
                    f"see {result.rejects_path} for each record and its reason; fix them, or "
                    "run without --strict to keep the good records",
                )
            kept_nothing = (
                None
                if allow_empty
                else kept_nothing_error(
                    files=len(args["inputs"]),
                    rows_read=result.rows_read,
                    kept=result.ingested,
                    skipped=result.skipped,
                    reject_codes=result.reject_codes,
                    first=result.first_rejects,
                    rejects_path=result.rejects_path,
                    outcome="committed",
                )
            )
            if kept_nothing is not None:
                result.status = "failed"
                self._record_run(result, args, started, [], kept_nothing.message)
                raise kept_nothing
            try:
                placed = self._place_shards(spec.source, staged, staging)
                _crash_point("renamed")
                self._record_run(result, args, started, placed, None, new_columns)
            except BaseException:
                # Not committed: take back the shards this run placed (the ones the catalog
                # does not know). If even that fails, the record stays for the next recovery.
                with contextlib.suppress(Exception):
                    undo_placement(self.root, staging, self._known_shard_paths(timeout))
                raise
            _crash_point("committed")
            forget_placement(staging)
        result.shards = len(staged)
        return result

    def _drop_known(
        self,
        source: str,
        staged: list[WrittenShard],
        result: IngestResult,
        timeout: float | None = None,
    ) -> tuple[list[Any], int]:
        """Find staged rows whose `sample_id` is already in the store or earlier in this run:
        skip them when the content is the same, reject them when it differs. Rewrites the
        staged shards that lose rows."""
        import duckdb
        import pyarrow.parquet as pq

        from curator.ingest.readers import Reject
        from curator.store.shards import LOCATIONS_SUFFIX, drop_rows

        with self.connect(read_only=True, timeout=timeout) as con:
            existing = [
                row[0]
                for row in con.execute(
                    "SELECT path FROM shards WHERE live AND source = ? ORDER BY path", [source]
                ).fetchall()
            ]
        staged_paths = [s.path for s in staged]
        mem = duckdb.connect()
        try:
            mem.execute("SET file_search_path = '" + self.root.replace("'", "''") + "'")
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
                    os.path.relpath(existing_file, self.root)
                    if os.path.isabs(existing_file)
                    else existing_file
                )
                decisions.append(
                    (
                        file,
                        int(row),
                        "sample_id_conflict",
                        f"`{sample_id}` is already in the store with different content "
                        f"(content_hash {existing_hash} in `{where}`; this record has {content_hash}); "
                        "give it another id (--id-column) or ingest it under another --source",
                    )
                )
            elif first_hash == content_hash:
                skipped += 1
                result.skip_codes["duplicate_in_run"] = (
                    result.skip_codes.get("duplicate_in_run", 0) + 1
                )
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

    def _reconcile_columns(
        self, staged: list[WrittenShard], timeout: float | None
    ) -> dict[str, str]:
        """One Arrow type per input column across the store, so `samples` stays readable.

        A column whose type differs between the new shards, or from the store, is rewritten in the
        new shards as JSON text when the store has it as text (or not at all); when the store has
        it with another type, the run fails, naming the column. Returns the new columns' types.
        """
        import pyarrow.parquet as pq

        from curator.core.errors import IngestFailed
        from curator.core.schema import CONTENT_COLUMNS, PROVENANCE_NAMES
        from curator.store.shards import compatible_types, rewrite_shard

        fixed = set(PROVENANCE_NAMES) | set(CONTENT_COLUMNS)
        with self.connect(read_only=True, timeout=timeout) as con:
            known = (
                dict(con.execute("SELECT name, arrow_type FROM columns").fetchall())
                if _has_table(con, "columns")
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
                        f"rename it with --rename-column {name}=NEW_NAME, or convert it to {store_type}",
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

    def _keep_rejects(
        self, run_id: str, results: list[TaskResult], extra: list[Any], result: IngestResult
    ) -> str | None:
        if not result.rejected:
            return None
        directory = os.path.join(self.root, "rejects", run_id)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "rejects.jsonl")
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            for r in results:
                if r.rejects_path:
                    with open(r.rejects_path, encoding="utf-8") as handle:
                        shutil.copyfileobj(handle, out)
            for reject in extra:
                out.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
        os.replace(path + ".tmp", path)
        with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as handle:
            json.dump(
                {"run_id": run_id, "rejected": result.rejected, "by_reason": result.reject_codes},
                handle,
                indent=2,
                sort_keys=True,
            )
        return path

    def _place_shards(
        self, source: str, staged: list[WrittenShard], staging: str
    ) -> list[tuple[WrittenShard, str]]:
        """Move the staged shards into `shards/<source>/`, after recording in the run's staging
        directory exactly which paths it creates (see :func:`curator.store.locking.record_placement`)."""
        directory = os.path.join(self.root, "shards", source)
        os.makedirs(directory, exist_ok=True)
        planned = [(shard, f"shards/{source}/{os.path.basename(shard.path)}") for shard in staged]
        record_placement(staging, [relative for _shard, relative in planned])
        for shard, relative in planned:
            place_file(shard.path, os.path.join(self.root, *relative.split("/")))
        return planned

    def _record_run(
        self,
        result: IngestResult,
        args: dict[str, Any],
        started: datetime,
        placed: list[tuple[WrittenShard, str]],
        message: str | None,
        new_columns: dict[str, str] | None = None,
    ) -> None:
        """One catalog transaction: the run, its shards and their composition, and the
        `samples` view over the new set of live shards."""
        finished = datetime.now(UTC)
        rejects_rel = (
            os.path.relpath(result.rejects_path, self.root) if result.rejects_path else None
        )
        with self.connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "INSERT INTO runs VALUES (?, 'ingest', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        result.run_id,
                        result.status,
                        started,
                        finished,
                        (finished - started).total_seconds(),
                        result.source,
                        json.dumps(args, sort_keys=True, default=str),
                        result.rows_read,
                        result.ingested if result.status == "committed" else 0,
                        result.skipped,
                        result.rejected,
                        result.content_bytes if result.status == "committed" else 0,
                        len(placed),
                        rejects_rel,
                        __version__,
                        message,
                    ],
                )
                for shard, relative in placed:
                    catalog.register_shard(
                        con, shard, relative, result.source, result.run_id, finished
                    )
                if placed:
                    catalog.ensure(con)
                    for name, arrow_type in sorted((new_columns or {}).items()):
                        con.execute(
                            "INSERT INTO columns VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [name, arrow_type],
                        )
                    catalog.rebuild_samples_view(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise


def _codes(codes: Mapping[str, int]) -> str:
    return ", ".join(f"{code}: {codes[code]:,}" for code in _by_count(codes))


def _by_count(codes: Mapping[str, int]) -> list[str]:
    """Reject codes, most frequent first."""
    return sorted(codes, key=lambda code: (-codes[code], code))


def first_rejects(path: str | None, codes: Mapping[str, int]) -> dict[str, str]:
    """The first rejected record of each code in the rejects file `path` (JSON Lines), as
    ``"`file` line N: reason"``, most frequent code first. Reading stops once every code of
    `codes` is found.

    >>> first_rejects("store/rejects/RUN/rejects.jsonl", {"missing_column": 300})  # doctest: +SKIP
    {'missing_column': '`a.jsonl` line 1: no content column `text` (columns: prompt, completion); name it with --text-column'}
    """
    found: dict[str, str] = {}
    if not path or not codes:
        return found
    # The code is written before the reason and the record, so this text only matches there.
    markers = {
        code: '"code": ' + json.dumps(code, ensure_ascii=False) + ', "reason": ' for code in codes
    }
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            code = next((c for c, m in markers.items() if c not in found and m in line), None)
            if code is None:
                continue
            record = json.loads(line)
            if record.get("code") != code:
                continue
            where = f"`{record.get('file')}`"
            for kind in ("line", "row", "sample"):
                if record.get(kind) is not None:
                    where += f" {kind} {record[kind]}"
            found[code] = f"{where}: {record.get('reason')}"
            if len(found) == len(markers):
                break
    return {code: found[code] for code in _by_count(codes) if code in found}


def kept_nothing_error(
    *,
    files: int,
    rows_read: int,
    kept: int,
    skipped: int,
    reject_codes: Mapping[str, int],
    first: Mapping[str, str],
    rejects_path: str | None,
    outcome: str,
) -> IngestFailed | None:
    """The error of a run (ingest or tag) that keeps nothing, or in which whole files or
    batches are rejected for a missing column; None when the run did something useful (records
    kept, or all already in the store). `outcome` is what did not happen: committed, written."""
    rejected = sum(reject_codes.values())
    missing = reject_codes.get("missing_column", 0)
    if rows_read == 0:
        message = f"no record was read from the {files:,} input file{'s' if files != 1 else ''}"
    elif kept == 0 and skipped == 0:
        message = (
            f"no record was kept: all {rejected:,} records read were rejected "
            f"({_codes(reject_codes)})"
        )
    elif missing:
        message = (
            f"{missing:,} of {rows_read:,} records were rejected because a column is missing "
            "(a whole file or batch without it)"
        )
    else:
        return None
    lines = []
    if first:
        lines.append("fix what the first rejected record of each reason says, then run again:")
        lines += [f"  {code}: {reason}" for code, reason in first.items()]
        lines.append(f"Every rejected record is in {rejects_path}.")
    else:
        lines.append("check that the inputs hold records.")
    lines.append("--allow-empty (Python: allow_empty=True) accepts such a run.")
    return IngestFailed(f"{message}; nothing was {outcome}", "\n".join(lines))


#: The statements `curator sql` runs: queries (DuckDB parses DESCRIBE, SHOW, SUMMARIZE, FROM …
#: and WITH … as SELECT).
_READ_STATEMENTS = ("SELECT",)


def _check_read_only(query: str) -> None:
    """Refuse anything but one query, by the statement types DuckDB's parser gives."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {exc}") from exc
    kinds = [statement.type.name for statement in statements]
    if not kinds:
        raise QueryError(
            "the query is empty", "e.g. SELECT origin, count(*) FROM samples GROUP BY 1"
        )
    refused = next((kind for kind in kinds if kind not in _READ_STATEMENTS), None)
    if refused is not None:
        writes = refused in ("COPY", "EXPORT", "COPY_DATABASE")
        raise QueryError(
            f"`{refused}` statements are refused: SQL over the store only reads "
            "(SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE)",
            "to write a result to a file, use `curator sql QUERY --format parquet -o FILE` "
            "(Python: Store.export)"
            if writes
            else "run a query; to change the store, use the curator command made for it",
        )
    if len(kinds) > 1:
        raise QueryError(
            f"the query holds {len(kinds)} statements; one is run at a time",
            "run them one by one",
        )


def _query_hint(con: duckdb.DuckDBPyConnection, exc: BaseException) -> str | None:
    """For an unknown table or column: every table and view of the catalog (read from it)."""
    import duckdb

    text = str(exc)
    unknown = isinstance(exc, duckdb.CatalogException) and "Table with name" in text
    unknown = unknown or (
        isinstance(exc, duckdb.BinderException)
        and ("Referenced column" in text or "Referenced table" in text)
    )
    if not unknown:
        return None
    try:
        names = [
            row[0]
            for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT internal "
                "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
            ).fetchall()
        ]
    except duckdb.Error:
        return None
    return "tables and views: " + ", ".join(names)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[
            0
        ][0]
    )


def _policy(policy: Policy | str | os.PathLike[str]) -> Policy:
    from curator.assembly.policy import Policy

    return policy if isinstance(policy, Policy) else Policy.from_toml(os.fspath(policy))
