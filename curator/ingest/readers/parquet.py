"""Parquet input, streamed by row group."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curator.core.remote import is_url, open_binary
from curator.ingest.readers.base import InputFile, ReadBatch, ReaderOptions
from curator.store.shards import batch_rows_within


def _source(path: str) -> contextlib.AbstractContextManager[Any]:
    """A local path as it is (pyarrow reads it natively), a URL as an fsspec stream."""
    return open_binary(path) if is_url(path) else contextlib.nullcontext(path)


def read_parquet(
    file: InputFile, options: ReaderOptions, row_groups: tuple[int, ...] | None
) -> Iterator[ReadBatch]:
    """Stream the given row groups (all when ``None``) in record batches.

    Positions are 0-based row indices within the file, so sample keys are ``<relpath>:<row>``.
    A batch holds at most ``options.batch_rows`` rows and, by the row group's average row size,
    about ``options.batch_bytes`` bytes (at least one row).
    """
    with _source(file.path) as source, pq.ParquetFile(source) as parquet:
        metadata = parquet.metadata
        groups = list(range(metadata.num_row_groups)) if row_groups is None else list(row_groups)
        starts = [0] * (metadata.num_row_groups + 1)
        for g in range(metadata.num_row_groups):
            starts[g + 1] = starts[g] + metadata.row_group(g).num_rows
        for group in groups:
            row = starts[group]
            size = batch_rows_within(
                metadata.row_group(group).num_rows,
                metadata.row_group(group).total_byte_size,
                options.batch_rows,
                options.batch_bytes,
            )
            for batch in parquet.iter_batches(batch_size=size, row_groups=[group]):
                n = batch.num_rows
                positions: list[int | None] = list(range(row, row + n))
                keys = [f"{file.relpath}:{i}" for i in range(row, row + n)]
                row += n
                yield ReadBatch(file, pa.Table.from_batches([batch]), keys, positions, "row")


def row_group_sizes(path: str) -> list[tuple[int, int]]:
    """``(rows, uncompressed bytes)`` of each row group of a Parquet file (a path or a URL)."""
    with _source(path) as source:
        metadata = pq.read_metadata(source)
    return [
        (metadata.row_group(g).num_rows, metadata.row_group(g).total_byte_size)
        for g in range(metadata.num_row_groups)
    ]
