"""Row-level ledgers as Parquet files: ``usage`` (which samples each manifest used),
``duplicates`` (near-duplicate clusters), ``label_events`` (every label change) and
``label_conflicts`` (declared labels a signal contradicts).

What grows with the data lives in files under ``STORE/ledgers/<ledger>/``; the catalog holds one
row per file (table ``ledger_files``) and a view of the ledger's name over its live files, so SQL
is the same as when the ledgers were tables, and ``duckdb catalog.duckdb`` started inside the
store answers ``SELECT count(*) FROM usage`` (the paths are relative to the store, like the
``samples`` view's). A commit registers files, not rows: it costs the same for a thousand rows as
for a billion.

Each file has a *scope*, what a newer file of the same ledger replaces: the manifest (``usage``),
the method (``duplicates``), the run (``label_events``: never replaced), or ``all``
(``label_conflicts``: each infer run's list replaces the last). A replaced file stays on disk,
no longer live, like a replaced shard.

The steps, in the order of the commit protocol: :func:`write_ledger` stages a file in the run's
work directory (outside the lock if the caller likes); under the write lock,
:func:`place_ledgers` records and moves the files into ``ledgers/``; inside the caller's catalog
transaction, :func:`register_ledger` registers them and redefines the views. A run killed before
its transaction leaves no registered file; the files it placed are named in its work
directory's placement record, for recovery to remove.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import duckdb

#: Where the ledger files live, relative to the store.
LEDGERS_DIR = "ledgers"
#: Prefix of the work directory of a catalog migration (under ``STORE/.staging/``).
MIGRATION_PREFIX = "ledgers-"

#: Each ledger's columns and their SQL types: the columns of the catalog tables they were.
LEDGER_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "usage": (
        ("manifest_id", "VARCHAR"),
        ("content_hash", "VARCHAR"),
        ("origin", "VARCHAR"),
        ("fresh", "BOOLEAN"),
        ("sample_id", "VARCHAR"),
        ("source", "VARCHAR"),
        ("generation", "SMALLINT"),
        ("model", "VARCHAR"),
    ),
    "duplicates": (
        ("sample_id", "VARCHAR"),  # a live sample that has a copy
        ("cluster_id", "VARCHAR"),  # '<method>:<smallest content_hash of the cluster>'
        ("cluster_size", "BIGINT"),
        ("kept", "BOOLEAN"),  # the one kept by the provenance-aware rule
        ("method", "VARCHAR"),  # minhash | phash
        ("similarity", "DOUBLE"),  # to its closest verified neighbour (1 for exact copies)
        ("run_id", "VARCHAR"),
    ),
    "label_events": (
        ("run_id", "VARCHAR"),  # the `curator infer` run
        ("sample_id", "VARCHAR"),
        ("old_origin", "VARCHAR"),
        ("old_generation", "SMALLINT"),
        ("old_model", "VARCHAR"),
        ("old_evidence", "VARCHAR"),
        ("old_confidence", "DOUBLE"),
        ("new_origin", "VARCHAR"),
        ("new_generation", "SMALLINT"),
        ("new_model", "VARCHAR"),
        ("new_evidence", "VARCHAR"),
        ("new_confidence", "DOUBLE"),
        ("reason", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("evidence_detail", "JSON"),  # what the evidence said beyond the label
    ),
    "label_conflicts": (
        ("run_id", "VARCHAR"),  # the latest `curator infer` run that saw it
        ("sample_id", "VARCHAR"),
        ("declared_origin", "VARCHAR"),
        ("declared_evidence", "VARCHAR"),
        ("signal_origin", "VARCHAR"),
        ("signal_evidence", "VARCHAR"),
        ("confidence", "DOUBLE"),
        ("reason", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
    ),
}
#: The column whose value is a file's scope when a table is migrated (None: one scope, `all`).
SCOPE_COLUMN: dict[str, str | None] = {
    "usage": "manifest_id",
    "duplicates": "method",
    "label_events": "run_id",
    "label_conflicts": None,
}

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BOOLEAN": pa.bool_(),
    "SMALLINT": pa.int16(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}

DDL = """
CREATE TABLE IF NOT EXISTS ledger_files (
    path VARCHAR PRIMARY KEY,           -- relative to the store: ledgers/<ledger>/<file>.parquet
    ledger VARCHAR NOT NULL,            -- usage | duplicates | label_events | label_conflicts
    scope VARCHAR NOT NULL,             -- what a newer file replaces: manifest, method, run or 'all'
    run_id VARCHAR NOT NULL,            -- the run (or manifest) that wrote it; 'migrated' for a table's rows
    rows BIGINT NOT NULL,
    file_bytes BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    live BOOLEAN NOT NULL               -- false once a newer file of its scope replaced it
);
"""


def ledger_schema(name: str) -> pa.Schema:
    """The Arrow schema of ledger `name`'s files.

    >>> ledger_schema("usage").names[:2]
    ['manifest_id', 'content_hash']
    """
    return pa.schema([(column, _ARROW_TYPES[sql]) for column, sql in LEDGER_COLUMNS[name]])


@dataclass(frozen=True)
class StagedLedger:
    """A complete ledger file in a run's work directory, not yet in the store."""

    ledger: str
    scope: str
    run_id: str
    path: str  # absolute, in the work directory
    rows: int
    file_bytes: int
    sha256: str

    @property
    def relative(self) -> str:
        """Its path in the store: ``ledgers/<ledger>/<file>``."""
        return f"{LEDGERS_DIR}/{self.ledger}/{os.path.basename(self.path)}"


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", value) or "_"


def write_ledger(
    directory: str,
    name: str,
    data: pa.Table | Iterable[pa.RecordBatch] | pa.RecordBatchReader,
    *,
    scope: str,
    run_id: str,
) -> StagedLedger:
    """Write the rows of ledger `name` (a table, or record batches, with the ledger's columns)
    into a Parquet file in the work directory `directory`, under a temporary name renamed when
    complete.

    Args:
        directory: the run's work directory (on the store's filesystem, so placing is a rename).
        name: ``usage``, ``duplicates``, ``label_events`` or ``label_conflicts``.
        data: the rows; columns are selected by name and cast to :func:`ledger_schema`.
        scope: what the file replaces when registered (see the module docstring).
        run_id: the run writing it; with `scope`, it names the file.

    Returns:
        The staged file, for :func:`place_ledgers` and :func:`register_ledger`.

    Raises:
        KeyError: `name` is not a ledger, or the data lack one of its columns.
    """
    from curator.store.shards import sha256_file

    schema = ledger_schema(name)
    file_name = _slug(run_id) if scope == run_id else f"{_slug(run_id)}-{_slug(scope)}"
    os.makedirs(os.path.join(directory, name), exist_ok=True)
    final = os.path.join(directory, name, f"{file_name}.parquet")
    tmp = final + ".tmp"
    batches: Iterable[pa.RecordBatch] = data.to_batches() if isinstance(data, pa.Table) else data
    rows = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches:
            if not batch.num_rows:
                continue
            columns = [
                batch.column(column).cast(schema.field(column).type) for column in schema.names
            ]
            writer.write_batch(pa.record_batch(columns, schema=schema), row_group_size=1 << 20)
            rows += batch.num_rows
    os.replace(tmp, final)
    return StagedLedger(
        name, scope, run_id, final, rows, os.path.getsize(final), sha256_file(final)
    )


def place_ledgers(root: str, work: str, staged: list[StagedLedger]) -> None:
    """Under the write lock, before the catalog transaction: write down in the work directory
    `work` which store paths the run creates, then move the staged files there (the same
    placement as shards: :func:`curator.store.locking.record_placement` and ``place_file``).
    All ledger placement goes through here."""
    from curator.store.locking import place_file, record_placement

    if not staged:
        return
    record_placement(work, [s.relative for s in staged])
    for ledger in staged:
        target = os.path.join(root, *ledger.relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        place_file(ledger.path, target)


@dataclass
class Registration:
    """Set `committed` once the transaction that registers placed ledger files has committed."""

    committed: bool = False


@contextlib.contextmanager
def withdrawn_unless_committed(root: str, work: str) -> Iterator[Registration]:
    """Around the catalog transaction that registers the ledger files :func:`place_ledgers`
    placed from the work directory `work`: if the block raises before it set
    ``committed``, take the files back (the catalog does not know them); once committed, drop
    the placement record.

    >>> with withdrawn_unless_committed(root, work) as registration:  # doctest: +SKIP
    ...     ...  # BEGIN, register_ledger(…), COMMIT
    ...     registration.committed = True
    """
    from curator.store.locking import forget_placement, undo_placement

    registration = Registration()
    try:
        yield registration
    except BaseException:
        if not registration.committed:
            with contextlib.suppress(Exception):
                undo_placement(root, work, set())
        raise
    forget_placement(work)


def commit_ledgers(
    root: str,
    work: str,
    staged: list[StagedLedger],
    connect: Callable[[], contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]],
) -> None:
    """Under the write lock: place the staged files and register them in one transaction of
    their own (on a connection from `connect`), for a run whose commit is only ledger files."""
    place_ledgers(root, work, staged)
    with withdrawn_unless_committed(root, work) as registration, connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for ledger in staged:
                register_ledger(con, ledger)
            con.execute("COMMIT")
            registration.committed = True
        except BaseException:
            con.execute("ROLLBACK")
            raise


def register_ledger(
    con: duckdb.DuckDBPyConnection, staged: StagedLedger, *, created_at: datetime | None = None
) -> None:
    """Inside the caller's transaction, after :func:`place_ledgers`: register the file, retire
    the live files of the same ledger and scope, and point the ledger's view at the live files."""
    con.execute(
        "UPDATE ledger_files SET live = false WHERE ledger = ? AND scope = ? AND live",
        [staged.ledger, staged.scope],
    )
    con.execute(
        "INSERT INTO ledger_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, true)",
        [staged.relative, staged.ledger, staged.scope, staged.run_id, staged.rows,
         staged.file_bytes, staged.sha256, created_at or datetime.now(UTC)],
    )  # fmt: skip
    rebuild_view(con, staged.ledger)


def retire_scope(con: duckdb.DuckDBPyConnection, name: str, scope: str) -> None:
    """Inside the caller's transaction: no file of `name` and `scope` is live any more (a
    ledger emptied for that scope, e.g. a dedup run that found no clusters)."""
    con.execute(
        "UPDATE ledger_files SET live = false WHERE ledger = ? AND scope = ? AND live",
        [name, scope],
    )
    rebuild_view(con, name)


def empty_select(name: str) -> str:
    """A query with the columns and types of ledger `name` and no rows."""
    return (
        "SELECT "
        + ", ".join(f"NULL::{sql} AS {column}" for column, sql in LEDGER_COLUMNS[name])
        + " WHERE false"
    )


def view_select(name: str, paths: list[str]) -> str:
    """The query behind view `name` over the ledger files `paths` (relative to the store, or
    absolute), with the columns and types of the table it replaces."""
    if not paths:
        return empty_select(name)
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    columns = ", ".join(f"{column}::{sql} AS {column}" for column, sql in LEDGER_COLUMNS[name])
    return f"SELECT {columns} FROM read_parquet([{listed}])"


def live_paths(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "SELECT path FROM ledger_files WHERE live AND ledger = ? ORDER BY created_at, path",
            [name],
        ).fetchall()
    ]


def rebuild_view(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Point view `name` at its live files (inside the caller's transaction).

    Raises:
        StoreError: a registered path leads out of the store (see
            :func:`curator.store.catalog.store_path`).
    """
    from curator.store.paths import store_path

    paths = live_paths(con, name)
    root = con.execute("SELECT current_setting('file_search_path')").fetchall()[0][0]
    if root:
        for path in paths:
            store_path(root, path, "ledger")
    con.execute(f"CREATE OR REPLACE VIEW {name} AS " + view_select(name, paths))


def registered_paths(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every ledger file the catalog registers, live or not (none in a catalog from before
    ledger files). Recovery never removes these."""
    if not _has_table(con, "ledger_files"):
        return set()
    return {row[0] for row in con.execute("SELECT path FROM ledger_files").fetchall()}


def query_views(con: duckdb.DuckDBPyConnection, root: str) -> tuple[list[str], list[str]]:
    """For a connection that attached the catalog and may read only named files: the statements
    that define each ledger as a temporary view over its live files by absolute path, and those
    files. A catalog from before ledger files (tables) needs neither."""
    from curator.store.paths import store_path

    if not _has_table(con, "ledger_files"):
        return [], []
    statements, files = [], []
    for name in LEDGER_COLUMNS:
        paths = [store_path(root, path, "ledger") for path in live_paths(con, name)]
        statements.append(f"CREATE TEMP VIEW {name} AS " + view_select(name, paths))
        files += paths
    return statements, files


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
            "AND table_type = 'BASE TABLE' AND table_schema = 'main' AND table_catalog = current_database()",
            [name],
        ).fetchall()[0][0]
    )


def create(con: duckdb.DuckDBPyConnection) -> None:
    """In a new catalog: the file registry and an empty view per ledger."""
    con.execute(DDL)
    for name in LEDGER_COLUMNS:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS " + empty_select(name))


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the ledgers of any catalog up to date: create the registry and the views a new
    catalog has, and migrate the ledgers of a catalog from before ledger files (tables) to
    files, in one transaction (the caller's, if it has one open). Idempotent.

    The connection's ``file_search_path`` is the store (as :meth:`curator.Store.connect` sets
    it); call it under the store's write lock.
    """
    legacy = [name for name in LEDGER_COLUMNS if _has_table(con, name)]
    missing = [name for name in LEDGER_COLUMNS if not _has_object(con, name)]
    if _has_table(con, "ledger_files") and not legacy and not missing:
        return
    own_transaction = _begin(con)
    try:
        con.execute(DDL)
        if legacy:
            migrate(con, legacy)
        for name in LEDGER_COLUMNS:
            if name not in legacy and not _has_object(con, name):
                con.execute(f"CREATE VIEW {name} AS " + empty_select(name))
        if own_transaction:
            con.execute("COMMIT")
    except BaseException:
        if own_transaction:
            con.execute("ROLLBACK")
        raise


def migrate(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """Inside the caller's transaction: turn the ledger tables `names` into ledger files, one
    per scope (the manifest of `usage`, the method of `duplicates`, the run of
    `label_events`), register them, drop the tables and create the views.

    The files are named after their scope (``ledgers/usage/migrated-<manifest>.parquet``), so a
    migration killed before its commit is redone over the same names; its work directory
    (``.staging/ledgers-…``) carries the placement record for recovery.
    """
    import shutil

    root = con.execute("SELECT current_setting('file_search_path')").fetchall()[0][0]
    if not root:
        raise ValueError("migrating ledgers needs the store as the connection's file_search_path")
    staging = os.path.join(root, ".staging")
    os.makedirs(staging, exist_ok=True)
    work = tempfile.mkdtemp(prefix=MIGRATION_PREFIX, dir=staging)
    now = datetime.now(UTC)
    staged: list[StagedLedger] = []
    for name in names:
        present = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = 'main' AND table_catalog = current_database()",
                [name],
            ).fetchall()
        }
        # A catalog older still lacks some columns (usage before models): they read as null.
        select = ", ".join(
            f"{column}::{'VARCHAR' if sql == 'JSON' else sql} AS {column}"
            if column in present
            else f"NULL::{'VARCHAR' if sql == 'JSON' else sql} AS {column}"
            for column, sql in LEDGER_COLUMNS[name]
        )
        scope_column = SCOPE_COLUMN[name]
        scopes = (
            [
                row[0]
                for row in con.execute(
                    f"SELECT DISTINCT {scope_column} FROM {name} ORDER BY 1"
                ).fetchall()
            ]
            if scope_column
            else ["all"]
        )
        for scope in scopes:
            where = f" WHERE {scope_column} = $scope" if scope_column else ""
            order = ", ".join(column for column, _sql in LEDGER_COLUMNS[name])
            reader = con.sql(
                f"SELECT {select} FROM {name}{where} ORDER BY {order}",
                params={"scope": scope} if scope_column else None,
            ).to_arrow_reader()
            staged.append(write_ledger(work, name, reader, scope=scope, run_id="migrated"))
    place_ledgers(root, work, staged)
    for name in names:
        con.execute(f"DROP TABLE {name}")
    for ledger in staged:
        con.execute(
            "INSERT INTO ledger_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, true)",
            [ledger.relative, ledger.ledger, ledger.scope, ledger.run_id, ledger.rows,
             ledger.file_bytes, ledger.sha256, now],
        )  # fmt: skip
    for name in names:
        rebuild_view(con, name)
    shutil.rmtree(work, ignore_errors=True)


def _has_object(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
            "AND table_schema = 'main' AND table_catalog = current_database()",
            [name],
        ).fetchall()[0][0]
    )


def _begin(con: duckdb.DuckDBPyConnection) -> bool:
    """Open a transaction unless the caller has one open; whether this opened it. (A `BEGIN`
    inside a transaction would abort the caller's; outside one, each statement has a
    transaction of its own, so two in a row have different ids.)"""
    query = "SELECT txid_current()"
    if con.execute(query).fetchall() == con.execute(query).fetchall():
        return False
    con.execute("BEGIN TRANSACTION")
    return True
