"""CSV input with a header row; values are kept as strings, as CSV has no types."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator

import pyarrow as pa

from curator.readers.base import (
    InputFile,
    ReadBatch,
    ReaderOptions,
    Reject,
    preview,
    read_failure,
)
from curator.readers.jsonl import open_maybe_compressed

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _has_surrogates(values: list[str]) -> bool:
    return any(not v.isascii() and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


def read_csv(file: InputFile, options: ReaderOptions) -> Iterator[ReadBatch]:
    """Stream a CSV file. The header is the first non-blank line (a UTF-8 byte order mark before
    it is ignored). A record with more or fewer fields than the header (a ragged row), or with
    invalid UTF-8, is rejected with the line it starts on; the others are kept. When the file
    cannot be read to its end (a truncated `.gz`/`.zst`), the rows before the failure are kept
    and the failure is one reject."""
    with open_maybe_compressed(file.path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text, delimiter=options.csv_delimiter)
        header: list[str] = []
        while not any(name.strip() for name in header):
            try:
                header = next(reader)
            except StopIteration:
                return
        width = len(header)
        columns: list[list[str]] = [[] for _ in header]
        keys: list[str] = []
        positions: list[int | None] = []
        rejects: list[Reject] = []

        def flush() -> ReadBatch:
            nonlocal columns, keys, positions, rejects
            table = pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns], names=header)
            batch = ReadBatch(file, table, keys, positions, "line", rejects)
            columns, keys, positions, rejects = [[] for _ in header], [], [], []
            return batch

        start_line = reader.line_num + 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except Exception as exc:  # a truncated or corrupt stream: keep what came before
                rejects.append(read_failure(file, start_line, exc))
                break
            line = start_line
            start_line = reader.line_num + 1
            if not record:
                continue
            if len(record) != width:
                rejects.append(
                    Reject(
                        file.relpath,
                        line,
                        "line",
                        "ragged_row",
                        f"{len(record)} fields where the header has {width}",
                        preview(",".join(record).encode("utf-8", "surrogateescape")),
                    )
                )
            elif _has_surrogates(record):
                rejects.append(
                    Reject(
                        file.relpath,
                        line,
                        "line",
                        "invalid_utf8",
                        "invalid UTF-8",
                        preview(",".join(record).encode("utf-8", "surrogateescape")),
                    )
                )
            else:
                for column, value in zip(columns, record, strict=True):
                    column.append(value)
                keys.append(f"{file.relpath}:{line}")
                positions.append(line)
            if len(keys) + len(rejects) >= options.batch_rows:
                yield flush()
        if keys or rejects:
            yield flush()
