"""Samples as ``polars.LazyFrame``s: the store's live shards, or the files of an assembled set.

Nothing is read until the frame is collected; a ``columns`` projection and the filters of the
query are pushed down into the Parquet scan. The live shards are the ones the catalog lists as
live (a shard replaced by `infer` or deleted by `gc` is never scanned); an assembled set's
files are the ones its manifest lists, never a glob of its directory. Files whose columns
differ (sources with their own input columns, text beside image shards) are combined by column
name, a column a file lacks reading as null.

>>> frame = scan_files(["shards/a.parquet", "shards/b.parquet"])  # doctest: +SKIP
>>> frame.filter(pl.col("origin") == "real").select(pl.len()).collect()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.store.paths import store_path

if TYPE_CHECKING:
    import polars as pl

    from curator.store.base import StoreBase

#: The file kinds an assembled set holds rows in; other files (token arrays) are not samples.
SCANNED_SUFFIXES = (".parquet", ".jsonl")


class ScanError(CuratorError):
    """A set or store that cannot be scanned as asked."""


def live_shard_paths(store: StoreBase) -> list[str]:
    """The filesystem paths of the store's live shards, in catalog path order."""
    return [store_path(store.root, row["path"]) for row in store.live_shards()]


def scan_store(store: StoreBase, columns: Sequence[str] | None = None) -> pl.LazyFrame:
    """A LazyFrame over every sample of the store's live shards.

    Args:
        store: the store.
        columns: the columns to keep (default: all of them, union over the shards).

    Raises:
        ScanError: a column in `columns` is in no live shard.

    >>> scan_store(store).group_by("origin").len().collect()  # doctest: +SKIP
    """
    return scan_files(live_shard_paths(store), columns=columns, what=f"store `{store.root}`")


def scan_files(
    locations: Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    what: str = "files",
) -> pl.LazyFrame:
    """A LazyFrame over the rows of Parquet and JSON Lines files (paths or URLs), in order;
    files of other kinds (``.npy`` token arrays) are skipped.

    Args:
        locations: the files.
        columns: the columns to keep (default: all of them).
        storage_options: passed to polars for URLs (``s3://``: key, secret, endpoint_url …).
        what: what the files are, for error messages.

    Raises:
        ScanError: a column in `columns` is in none of the files.
    """
    import polars as pl

    options = dict(storage_options) if storage_options else None
    frames: list[pl.LazyFrame] = []
    for location in locations:
        if location.endswith(".parquet"):
            frames.append(pl.scan_parquet(location, storage_options=options))
        elif location.endswith(".jsonl"):
            frames.append(pl.scan_ndjson(location, storage_options=options))
    if not frames:
        frame = pl.LazyFrame()
    elif len(frames) == 1:
        frame = frames[0]
    else:
        frame = pl.concat(frames, how="diagonal_relaxed")
    if columns is None:
        return frame
    available = frame.collect_schema().names()
    missing = [c for c in columns if c not in available]
    if missing:
        raise ScanError(
            f"no column `{missing[0]}` in {what}",
            "pick from: " + ", ".join(f"`{c}`" for c in available)
            if available
            else "there is nothing to scan yet",
        )
    return frame.select(list(columns))
