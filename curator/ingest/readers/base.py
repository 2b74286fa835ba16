"""Types shared by the input readers: what a task reads, what it yields, what it rejects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import pyarrow as pa

from curator.core.errors import InputError
from curator.core.remote import is_url

InputFormat = Literal["jsonl", "parquet", "csv", "text", "image", "webdataset"]
INPUT_FORMATS: tuple[str, ...] = ("jsonl", "parquet", "csv", "text", "image", "webdataset")

#: How a reject's position is counted: a 1-based physical line, a 0-based row, or a member of a
#: tar file (0-based sample index), or nothing (one file is one sample).
RowKind = Literal["line", "row", "sample", "file"]


@dataclass(frozen=True)
class InputFile:
    """One input file, with the stable name its sample ids are built from.

    ``relpath`` is the path relative to the directory, prefix or glob root the user named (the
    file name when a file was named directly), so ingesting the same input again gives the same
    ids. ``path`` is an absolute local path or a URL (``s3://bucket/key``), opened through fsspec
    inside the task; ``size`` is known for objects listed at a URL.
    """

    path: str
    relpath: str
    format: str
    size: int | None = None

    @property
    def location(self) -> str:
        """How rejects name the file: its relative path, or its URL when it is remote."""
        return self.path if is_url(self.path) else self.relpath


@dataclass(frozen=True)
class ReadTask:
    """A unit of work for one process: a file (or some of its row groups), or a group of
    one-sample-per-file inputs (text files, images)."""

    index: int
    format: str
    files: tuple[InputFile, ...]
    row_groups: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Reject:
    """An input record that failed validation, with where it was and why."""

    file: str
    position: int | None
    kind: RowKind
    code: str
    reason: str
    record: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"file": self.file}
        if self.kind != "file":
            data[self.kind] = self.position
        data.update(code=self.code, reason=self.reason, record=self.record)
        return data


@dataclass
class ReadBatch:
    """Rows read from one input file: the input's own columns, plus where each row came from.

    ``keys`` are the default sample keys (before the `<source>/` prefix); ``positions`` are the
    1-based line, 0-based row, or sample index of each row, as ``kind`` says.
    """

    file: InputFile
    table: pa.Table
    keys: list[str]
    positions: list[int | None]
    kind: RowKind
    rejects: list[Reject] = field(default_factory=list)
    #: `content_hash` of each row when the reader already decoded the content (images).
    content_hashes: list[str] | None = None
    #: The reader already applied the run's column renames (JSON Lines does, per record).
    renamed: bool = False


#: A batch is flushed once its records hold about this many bytes of input (as well as at
#: ``batch_rows`` records), so a few large documents never make one huge Arrow batch.
BATCH_BYTES = 32 << 20

#: The longest JSON Lines line (or CSV record) read, in bytes; a longer one is rejected as
#: ``record_too_large`` without being held in memory (`--max-record-bytes`).
MAX_RECORD_BYTES = 64 << 20


def _batch_bytes() -> int:
    return BATCH_BYTES


@dataclass(frozen=True)
class ReaderOptions:
    """Options every reader may consult.

    ``batch_bytes`` bounds a batch in input bytes as ``batch_rows`` bounds it in records (the
    default is read from :data:`BATCH_BYTES` when the options are made); ``max_record_bytes``
    is the longest line or CSV record a reader holds in memory.
    """

    text_column: str = "text"
    image_column: str | None = None
    batch_rows: int = 8192
    max_image_pixels: int = 89_478_485
    csv_delimiter: str = ","
    batch_bytes: int = field(default_factory=_batch_bytes)
    max_record_bytes: int = MAX_RECORD_BYTES

    def __post_init__(self) -> None:
        if self.max_record_bytes < 1:
            raise InputError(
                f"`--max-record-bytes` must be at least 1 byte, not {self.max_record_bytes}",
                "give a size such as 64MiB",
            )


def record_too_large(file: InputFile, line: int, size: int, limit: int, head: bytes) -> Reject:
    """The reject for a line (or CSV record) longer than `limit` bytes, of which only the first
    bytes (`head`) were kept in memory."""
    return Reject(
        file.location,
        line,
        "line",
        "record_too_large",
        f"line {line} is {size:,} bytes, over the maximum record size of {limit:,} bytes; "
        "raise it with --max-record-bytes",
        preview(head, limit=1000),
    )


def read_failure(file: InputFile, line: int, exc: BaseException) -> Reject:
    """The reject for a file whose reading failed part-way (a truncated or corrupt compressed
    stream, an I/O error), at the 1-based `line` where reading stopped; the lines before it are
    kept. An end of data before the end of the stream is ``truncated_file``, anything else
    ``unreadable_file``."""
    truncated = isinstance(exc, EOFError)
    what = "is truncated" if truncated else "cannot be read"
    return Reject(
        file.location,
        line,
        "line",
        "truncated_file" if truncated else "unreadable_file",
        f"the file {what} at line {line} ({type(exc).__name__}: {exc}); "
        "the lines before it are kept",
    )


def preview(raw: bytes | str, limit: int = 100_000) -> str:
    """A record kept in a rejects file: the raw text, with invalid UTF-8 escaped; long records are
    kept whole up to `limit` characters."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    if len(raw) > limit:
        return raw[:limit] + f"… [{len(raw) - limit} more characters]"
    return raw


class LineTooLarge(Exception):
    """A line longer than the reader's limit: it was read past (not kept), so reading goes on
    with the next line."""

    def __init__(self, line: int, size: int, head: bytes) -> None:
        super().__init__(f"line {line} is {size} bytes")
        self.line = line
        self.size = size
        self.head = head


class BoundedLines:
    """The physical lines of a binary stream, each with its ending ``\\n``, holding no more than
    `limit` bytes of one line in memory.

    ``next()`` returns a line, or raises :class:`LineTooLarge` for a line whose bytes before its
    ending are more than `limit` (the line is skipped in 1 MiB pieces, so memory stays bounded,
    and the next call returns the line after it). ``line_no`` is the 1-based number of the last
    line returned or skipped. Errors of the stream (a truncated `.gz`) propagate.
    """

    _SKIP_CHUNK = 1 << 20

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        self._handle = handle
        self._limit = max(1, limit)
        self.line_no = 0

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> bytes:
        line = self._handle.readline(self._limit + 1)
        if not line:
            raise StopIteration
        self.line_no += 1
        if len(line) <= self._limit or line.endswith(b"\n"):
            return line
        head = line[:1000]
        size = len(line)
        del line
        while True:
            piece = self._handle.readline(self._SKIP_CHUNK)
            if not piece:
                break
            if piece.endswith(b"\n"):
                size += len(piece) - 1
                break
            size += len(piece)
        raise LineTooLarge(self.line_no, size, head)
