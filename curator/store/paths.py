"""Paths the catalog holds: every one is relative to the store and resolved inside it, and a
value put into a query as text is quoted. Below the catalog and the ledgers, which both check
the paths they read."""

from __future__ import annotations

import os


def sql_literal(value: str) -> str:
    """`value` as a SQL string literal (single quotes doubled), for queries built as text.

    >>> sql_literal("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def store_path(root: str, relative: str, what: str = "shard") -> str:
    """The filesystem path of `relative`, a path read from the catalog (a shard, a manifest),
    resolved inside the store at `root`. Every path taken from the catalog goes through here
    before it is read or written: a catalog is a file anyone can edit, and a shard path such as
    ``../outside/x.parquet`` or ``/etc/x.parquet`` would make `infer` write outside the store.

    The check is on the path as written (normalised, not following symlinks), so a store whose
    ``shards/`` is a symlink to another disk still works.

    Raises:
        StoreError: the path is absolute, empty, or leads out of the store.

    >>> store_path("/data/store", "shards/web/a.parquet")
    '/data/store/shards/web/a.parquet'
    """
    from curator.core.errors import StoreError

    root = os.path.normpath(root)
    normal = os.path.normpath(os.path.join(root, relative)) if relative else root
    if (
        not relative
        or "\0" in relative
        or os.path.isabs(relative)
        or os.path.splitdrive(relative)[0]
        or normal == root
        or not normal.startswith(root.rstrip(os.sep) + os.sep)
    ):
        raise StoreError(
            f"the catalog of store `{root}` names the {what} path `{relative}`, which is not "
            "inside the store: the catalog looks tampered with",
            "nothing was read or written there; restore `catalog.duckdb` from a backup, or "
            "check how that row got into the catalog",
        )
    return normal
