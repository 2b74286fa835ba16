"""Catalog upgrades for models and lineage: a catalog from before generations lacks the
``models`` table, the ``lineage_edges`` view and the usage ledger's sample, source, generation and
model; :func:`ensure_current` adds them once, filling the ledger from each manifest's selection
file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from curator.store.catalog import store_path

if TYPE_CHECKING:
    import duckdb

    from curator.store.base import StoreBase as Store


def _needs_upgrade(store: Store) -> bool:
    with store.connect() as con:
        tables = {
            row[0]
            for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if "models" not in tables or "lineage_edges" not in tables:
            return True
        columns = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'usage'"
            ).fetchall()
        }
        if "sample_id" not in columns:
            return True
        return bool(_stale_manifests(con, store.root))


def _stale_manifests(con: duckdb.DuckDBPyConnection, root: str) -> list[tuple[str, str]]:
    """Manifests whose usage rows predate generations, with the selection file to fill them."""
    import os

    stale = []
    for (manifest_id,) in con.execute(
        "SELECT DISTINCT manifest_id FROM usage WHERE sample_id IS NULL ORDER BY 1"
    ).fetchall():
        selection = os.path.join(
            store_path(root, f"manifests/{manifest_id}", "manifest"), "selection.parquet"
        )
        if os.path.exists(selection):
            stale.append((manifest_id, selection))
    return stale


def _upgrade_usage(store: Store) -> None:
    """Under the write lock: add what a catalog from before generations lacks, and fill the
    usage ledger's sample, source, generation and model from each manifest's selection file: a
    new usage file per manifest replaces the manifest's old one, in one transaction."""
    import os
    import shutil
    import tempfile

    from curator.assembly.manifest import usage_from_selection
    from curator.store import catalog, ledgers

    with store.connect(read_only=False) as rw:
        catalog.ensure(rw)
        stale = _stale_manifests(rw, store.root)
    if not stale:
        return
    staging = os.path.join(store.root, ".staging")
    os.makedirs(staging, exist_ok=True)
    work = tempfile.mkdtemp(prefix=ledgers.MIGRATION_PREFIX, dir=staging)
    try:
        import duckdb

        staged = []
        with duckdb.connect() as mem:
            for manifest_id, selection in stale:
                reader = usage_from_selection(mem, manifest_id, selection)
                staged.append(
                    ledgers.write_ledger(
                        work, "usage", reader, scope=manifest_id, run_id=f"upgraded-{manifest_id}"
                    )
                )
        ledgers.commit_ledgers(store.root, work, staged, lambda: store.connect(read_only=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_current(store: Store, lock_timeout: float | None = None) -> None:
    """Bring a catalog from before models and lineage up to date (once; a no-op after)."""
    from curator.store.locking import write_lock

    if _needs_upgrade(store):
        with write_lock(store.root, "upgrade catalog", lock_timeout):
            _upgrade_usage(store)
