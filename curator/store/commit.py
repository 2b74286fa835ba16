"""The one commit protocol of every command that writes into a store (ingest, infer, dedup, and
assembly's staging).

1. **Stage.** The run works in a directory of its own, ``STORE/.staging/<name>/``, marked as its
   own (:meth:`WorkDir.create`, ``owner.json``: process, host, run). Ingest stages its shards
   there before it takes the lock; infer and dedup stage under the lock.
2. **Take the lock** and 3. **recover**: :func:`writing` holds the store's write lock and first
   undoes what killed runs left (:func:`recover`): in every work directory whose owner process
   is gone, the store paths its run recorded (step 4) that the catalog does not know, then the
   directory itself. Nothing else is removed: not a file no record names, not a directory
   without curator's mark, not one owned on another host, not what a link points to.
4. **Register.** Before the first file appears at its place in the store, the run writes down
   exactly which store paths it creates (:meth:`WorkDir.record`, ``placing.json``, written
   whole or not at all).
5. **Place** (:meth:`WorkDir.place`: a rename, or a copy made durable and renamed when the store
   spans disks) and 6. **one transaction** (:func:`transaction`): a file is in place before the
   catalog names it, so the catalog never names a missing file. If the transaction fails, the
   run takes back what it placed (:meth:`WorkDir.take_back`); once it is committed, the record is
   dropped (:meth:`WorkDir.committed`) and the work directory removed (:meth:`WorkDir.close`).

A run killed anywhere leaves the old state or the new one: killed before the commit, its placed
files are unknown to the catalog and the next writer's recovery removes them; killed after, they
are the store's.

>>> with writing(store, "infer", timeout=None):  # doctest: +SKIP
...     with WorkDir.create(store.root, run_id, prefix="infer-") as work:
...         work.record(["shards/web/a~RUN.parquet"])
...         ...  # write or place the files
...         with transaction(store) as con:
...             ...  # one catalog transaction
...         work.committed()
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING

from curator.store.base import STAGING_DIR
from curator.store.locking import (
    claim_work_dir,
    forget_placement,
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

    from curator.store.base import StoreBase


class WorkDir:
    """A run's own directory under ``STORE/.staging/`` (see the module docstring).

    Use it as a context manager: on leaving, the directory is removed, unless it still holds a
    placement record (files placed that could not be taken back): then it stays for the next
    writer's recovery.
    """

    def __init__(self, root: str, path: str, run_id: str) -> None:
        self.root = root
        self.path = path
        self.run_id = run_id

    @classmethod
    def create(cls, root: str, run_id: str, *, prefix: str = "") -> WorkDir:
        """Make and claim ``STORE/.staging/<prefix><run_id>/``."""
        path = os.path.join(root, STAGING_DIR, prefix + run_id)
        os.makedirs(path)
        claim_work_dir(path, run_id)
        return cls(root, path, run_id)

    def __enter__(self) -> WorkDir:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def record(self, relative_paths: Iterable[str]) -> None:
        """Register: write down the store paths (relative, with ``/``) this run is about to
        create, before the first of them exists."""
        record_placement(self.path, relative_paths)

    def recorded(self) -> list[str]:
        """The store paths recorded and not yet committed or taken back."""
        return recorded_placement(self.path)

    def place(self, staged: str, relative: str) -> None:
        """Move the complete file `staged` to the store path `relative` (recorded before)."""
        place_file(staged, os.path.join(self.root, *relative.split("/")))

    def take_back(self, known: Collection[str]) -> list[str]:
        """Remove the recorded files the catalog does not know (`known`: every path of the
        `shards` table), then the record. Returns the removed store paths."""
        return undo_placement(self.root, self.path, known)

    def committed(self) -> None:
        """The catalog now knows every recorded path: drop the record."""
        forget_placement(self.path)

    def close(self) -> None:
        """Remove the directory, unless a placement record is still there."""
        if not recorded_placement(self.path):
            shutil.rmtree(self.path, ignore_errors=True)


def recover(store: StoreBase, timeout: float | None = None) -> list[str]:
    """Under the write lock: undo what killed runs left behind, and only that (see the module
    docstring). Returns the store paths removed."""
    staging_root = os.path.join(store.root, STAGING_DIR)
    if not os.path.isdir(staging_root):
        return []
    candidates = sorted(
        path
        for path in (os.path.join(staging_root, n) for n in os.listdir(staging_root))
        if not os.path.islink(path) and os.path.isdir(path) and owner_gone(path)
    )
    if not candidates:
        return []
    known = store.registered_paths(timeout)
    removed: list[str] = []
    for path in candidates:
        removed += recover_work_dir(store.root, path, known)
    return removed


@contextlib.contextmanager
def writing(store: StoreBase, command: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the store's write lock, after recovering what killed runs left.

    Raises:
        StoreLockedError: another writer held the lock for longer than `timeout` seconds.
    """
    with write_lock(store.root, command, timeout):
        recover(store, timeout)
        yield


@contextlib.contextmanager
def transaction(
    store: StoreBase, timeout: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable catalog connection inside one transaction: committed when the block ends,
    rolled back when it raises."""
    with store.connect(read_only=False, timeout=timeout) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
