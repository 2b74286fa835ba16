"""CSV input with a header row; values are kept as strings, as CSV has no types."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from curator.ingest.readers.base import (
    BoundedLines,
    InputFile,
    LineTooLarge,
    ReadBatch,
    ReaderOptions,
    Reject,
    preview,
    read_failure,
    record_too_large,
)
from curator.ingest.readers.jsonl import open_maybe_compressed
from curator.ingest.readers.tables import string_array

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _has_surrogates(values: list[str]) -> bool:
    return any(not v.isascii() and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


_BOM = b"\xef\xbb\xbf"


class _RecordLines:
    """Decoded lines for `csv.reader`, none longer than `limit` bytes, and no record (the lines
    read since :meth:`start_record`) longer than `limit` bytes in all: either raises
    :class:`LineTooLarge` (the too-long line itself is skipped; `csv.reader` starts a new
    record on the next call). Lines end at ``\n``, ``\r\n`` or a lone ``\r``, as in a file
    opened with ``newline=""``. Invalid UTF-8 is kept as surrogate escapes, to be rejected."""

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        self.lines = BoundedLines(handle, limit)
        self.limit = limit
        self.line_no = 0
        self.record_bytes = 0
        self.record_start = 1
        self._pending: list[bytes] = []  # the rest of a physical line holding a lone `\r`

    def start_record(self) -> None:
        self.record_bytes = 0
        self.record_start = self.line_no + 1

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        if not self._pending:
            try:
                raw = next(self.lines)
            except LineTooLarge as exc:
                self.line_no += 1
                raise LineTooLarge(
                    self.record_start, self.record_bytes + exc.size, exc.head
                ) from None
            if self.lines.line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            self._pending = raw.splitlines(keepends=True) if b"\r" in raw.rstrip(b"\r\n") else [raw]
            self._pending.reverse()
        raw = self._pending.pop()
        self.line_no += 1
        self.record_bytes += len(raw)
        if self.record_bytes > self.limit:
            raise LineTooLarge(self.record_start, self.record_bytes, raw[:1000])
        return raw.decode("utf-8", errors="surrogateescape")


def read_csv(file: InputFile, options: ReaderOptions) -> Iterator[ReadBatch]:
    """Stream a CSV file. The header is the first non-blank line (a UTF-8 byte order mark before
    it is ignored). A record with more or fewer fields than the header (a ragged row), or with
    invalid UTF-8, is rejected with the line it starts on; the others are kept. A record longer
    than ``options.max_record_bytes`` is rejected (``record_too_large``) without being held in
    memory. When the file cannot be read to its end (a truncated `.gz`/`.zst`), the rows before
    the failure are kept and the failure is one reject."""
    limit = options.max_record_bytes
    with open_maybe_compressed(file.path) as raw:
        lines = _RecordLines(raw, limit)
        reader = csv.reader(lines, delimiter=options.csv_delimiter)
        header: list[str] = []
        while not any(name.strip() for name in header):
            lines.start_record()
            try:
                header = next(reader)
            except StopIteration:
                return
            except LineTooLarge as exc:
                # Without its header the file cannot be read: one reject says why.
                reject = record_too_large(file, exc.line, exc.size, limit, exc.head)
                yield ReadBatch(file, pa.table({}), [], [], "line", [reject])
                return
        width = len(header)
        columns: list[list[str]] = [[] for _ in header]
        keys: list[str] = []
        positions: list[int | None] = []
        rejects: list[Reject] = []
        batch_bytes = 0

        def flush() -> ReadBatch:
            nonlocal columns, keys, positions, rejects, batch_bytes
            table = pa.Table.from_arrays([string_array(c) for c in columns], names=header)
            batch = ReadBatch(file, table, keys, positions, "line", rejects)
            columns, keys, positions, rejects = [[] for _ in header], [], [], []
            batch_bytes = 0
            return batch

        while True:
            lines.start_record()
            line = lines.record_start
            try:
                record = next(reader)
            except StopIteration:
                break
            except LineTooLarge as exc:
                rejects.append(record_too_large(file, exc.line, exc.size, limit, exc.head))
                record = None
            except Exception as exc:  # a truncated or corrupt stream: keep what came before
                rejects.append(read_failure(file, line, exc))
                break
            batch_bytes += lines.record_bytes
            if record is None:
                pass
            elif not record:
                continue
            elif len(record) != width:
                rejects.append(
                    Reject(
                        file.location,
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
                        file.location,
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
            if len(keys) + len(rejects) >= options.batch_rows or batch_bytes >= options.batch_bytes:
                yield flush()
        if keys or rejects:
            yield flush()
