"""Types shared by the input readers: what a task reads, what it yields, what it rejects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

InputFormat = Literal["jsonl", "parquet", "csv", "text", "image", "webdataset"]
INPUT_FORMATS: tuple[str, ...] = ("jsonl", "parquet", "csv", "text", "image", "webdataset")

#: How a reject's position is counted: a 1-based physical line, a 0-based row, or a member of a
#: tar file (0-based sample index), or nothing (one file is one sample).
RowKind = Literal["line", "row", "sample", "file"]


@dataclass(frozen=True)
class InputFile:
    """One input file, with the stable name its sample ids are built from.

    ``relpath`` is the path relative to the directory or glob root the user named (the file name
    when a file was named directly), so ingesting the same input again gives the same ids.
    """

    path: str
    relpath: str
    format: str


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


@dataclass(frozen=True)
class ReaderOptions:
    """Options every reader may consult."""

    text_column: str = "text"
    image_column: str | None = None
    batch_rows: int = 8192
    max_image_pixels: int = 89_478_485
    csv_delimiter: str = ","


def read_failure(file: InputFile, line: int, exc: BaseException) -> Reject:
    """The reject for a file whose reading failed part-way (a truncated or corrupt compressed
    stream, an I/O error), at the 1-based `line` where reading stopped; the lines before it are
    kept. An end of data before the end of the stream is ``truncated_file``, anything else
    ``unreadable_file``."""
    truncated = isinstance(exc, EOFError)
    what = "is truncated" if truncated else "cannot be read"
    return Reject(
        file.relpath,
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
