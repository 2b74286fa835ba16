"""The store layer's base: what every operation needs from a store.

```
STORE/
  catalog.duckdb            runs, shards, manifests, usage, models; views `samples` (the live
                            shards) and `lineage_edges`
  shards/<source>/…parquet  immutable; written to a temporary name, then renamed
  indexes/  manifests/      (near-duplicate indexes, assembled training sets)
  rejects/<run>/            input records that failed validation, each with its reason
  .staging/<run>/           a run's work directory (see :mod:`curator.store.commit`)
```

:class:`StoreBase` opens the catalog (:meth:`~StoreBase.connect`), answers read-only SQL over it
(:meth:`~StoreBase.sql`, :meth:`~StoreBase.export`) and reports what the store holds. Operations
(ingest, dedup, infer, assembly, lineage) take a :class:`StoreBase`; the public facade
``curator.Store`` is a :class:`StoreBase` with one delegating method per operation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curator.core.errors import InputError, QueryError, StoreError, StoreLockedError
from curator.core.version import __version__
from curator.store import catalog
from curator.store.locking import lock_timeout

if TYPE_CHECKING:
    import duckdb

CATALOG_FILE = "catalog.duckdb"
STORE_DIRS = ("shards", "indexes", "manifests", "rejects")
STAGING_DIR = ".staging"


def crash_point(name: str) -> None:
    """Test hook: die here, as a killed process would, when `CURATOR_CRASH_AT` names this point."""
    if os.environ.get("CURATOR_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def new_run_id() -> str:
    """A run id that sorts by time: ``20261125T031500Z-1a2b3c``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def create_store(path: str | os.PathLike[str], *, exist_ok: bool = False) -> str:
    """Create a store's layout at `path` (the directories and an empty catalog); returns its
    absolute root. With `exist_ok`, an existing store is left as it is.

    Raises:
        StoreError: a store is already there (and not `exist_ok`), or the directory is not empty.
    """
    root = os.path.abspath(os.fspath(path))
    catalog_path = os.path.join(root, CATALOG_FILE)
    if os.path.exists(catalog_path):
        if exist_ok:
            return root
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
    return root


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


class StoreBase:
    """An open store as the operations see it: its root, its catalog, read-only SQL.

    ``curator.Store`` (made by ``curator.init_store``/``curator.open_store``) adds the
    operations as methods.

    >>> store = StoreBase(create_store("data/store"))  # doctest: +SKIP
    >>> store.sql("SELECT origin, count(*) FROM samples GROUP BY 1")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isfile(self.catalog_path):
            raise StoreError(
                f"no store at `{self.root}` (no {CATALOG_FILE})",
                f"create one with `curator init {self.root}` (Python: `curator.init_store(...)`)",
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"

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
            # The ledgers likewise: temporary views over their live files by absolute path.
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

    def registered_paths(self, timeout: float | None = None) -> set[str]:
        """Every shard and ledger file path the catalog knows (live or not), relative to the
        store: what recovery must never remove."""
        from curator.store import ledgers

        with self.connect(read_only=True, timeout=timeout) as con:
            shards = {row[0] for row in con.execute("SELECT path FROM shards").fetchall()}
            return shards | ledgers.registered_paths(con)

    def live_shards(self) -> list[dict[str, Any]]:
        """The live shards: path (relative to the store), rows, bytes, sha256."""
        with self.connect() as con:
            table = con.sql(
                "SELECT shard_id, path, source, run_id, rows, file_bytes, content_bytes, sha256 "
                "FROM shards WHERE live ORDER BY path"
            ).to_arrow_table()
        return table.to_pylist()

    # -- assembly --------------------------------------------------------------------------


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


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[
            0
        ][0]
    )
