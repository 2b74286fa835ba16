"""JSON Lines input: plain, gzip (`.gz`) or Zstandard (`.zst`), one JSON object per line."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import pyarrow as pa

from curator.core.remote import is_url, open_binary, size_of
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
from curator.ingest.readers.tables import records_to_table

_ZSTD_MAGIC = 0xFD2FB528


def _zstd_frames_complete(path: str) -> bool:
    """Whether the Zstandard file at `path` (a local path or a URL) ends exactly at the end of a frame, found by walking
    its frame and block headers (no decompression). Data that is not a Zstandard frame is left to
    the decompressor to report."""
    import zstandard

    size = size_of(path)
    with open_binary(path) as handle:
        pos = 0
        while pos < size:
            handle.seek(pos)
            head = handle.read(18)
            if len(head) < 4:
                return False
            magic = int.from_bytes(head[:4], "little")
            if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame
                if len(head) < 8:
                    return False
                pos += 8 + int.from_bytes(head[4:8], "little")
                continue
            if magic != _ZSTD_MAGIC:
                return True
            try:
                pos += zstandard.frame_header_size(head)
                has_checksum = zstandard.get_frame_parameters(head).has_checksum
            except zstandard.ZstdError:
                return False
            while True:
                handle.seek(pos)
                block = handle.read(3)
                if len(block) < 3:
                    return False
                header = int.from_bytes(block, "little")
                block_type, block_size = (header >> 1) & 3, header >> 3
                pos += 3 + (1 if block_type == 1 else block_size)  # an RLE block holds 1 byte
                if header & 1:  # the last block of the frame
                    break
            if has_checksum:
                pos += 4
        return pos == size


class _ZstdReader(io.RawIOBase):
    """A Zstandard file decompressed across all its frames, with bounded memory, which raises
    ``EOFError`` at the end of the data when the file ends inside a frame (zstandard's stream
    reader just stops there, which would hide a truncation)."""

    def __init__(self, path: str) -> None:
        import zstandard

        self._path = path
        raw = open_binary(path)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=True
        )
        self._complete: bool | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = int(self._reader.readinto(buffer))
        if n == 0:
            if self._complete is None:
                self._complete = _zstd_frames_complete(self._path)
            if not self._complete:
                raise EOFError("Zstandard data ended inside a frame")
        return n

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


def open_maybe_compressed(path: str) -> BinaryIO:
    """Open `path` (a local path, or a URL streamed through fsspec) for binary reading,
    decompressing `.gz` and `.zst` transparently. Reading a truncated compressed file raises
    ``EOFError`` at the cut, after the data before it."""
    if path.endswith(".gz"):
        if not is_url(path):
            return cast(BinaryIO, gzip.open(path, "rb"))
        raw = open_binary(path)
        handle = gzip.GzipFile(fileobj=raw, mode="rb")
        handle.myfileobj = raw  # type: ignore[assignment]  # closed with the gzip stream
        return cast(BinaryIO, handle)
    if path.endswith(".zst") or path.endswith(".zstd"):
        return cast(BinaryIO, io.BufferedReader(_ZstdReader(path), buffer_size=1 << 20))
    return open_binary(path)


_BOM = b"\xef\xbb\xbf"


def _lone_surrogate(value: object) -> str | None:
    """The first lone surrogate (as ``\\udXXX``) in a parsed JSON value, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"\\u{ord(exc.object[exc.start]):04x}"
        return None
    if isinstance(value, list):
        for item in value:
            found = _lone_surrogate(item)
            if found:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key) or _lone_surrogate(item)
            if found:
                return found
    return None


#: The deepest nesting of arrays and objects a record may have, the record itself counting as
#: one. Parquet readers refuse a schema deeper than 100 levels, and an Arrow list takes two of
#: them: a deeper record could be written but never read back.
MAX_NESTING = 32


def _too_deep(record: dict[str, Any], text: str) -> bool:
    """Whether `record` nests arrays and objects more than :data:`MAX_NESTING` deep (walked
    without recursion; a record with few brackets is not walked at all)."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return False
    stack: list[tuple[object, int]] = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        if isinstance(value, dict):
            stack.extend(
                (item, depth + 1) for item in value.values() if isinstance(item, dict | list)
            )
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return False


def read_jsonl(
    file: InputFile,
    options: ReaderOptions,
    renames: dict[str, str],
    reserved: frozenset[str],
) -> Iterator[ReadBatch]:
    """Stream a JSON Lines file in batches of ``options.batch_rows`` records.

    A line that is not valid UTF-8 (or holds a lone surrogate escape such as ``\\ud800``), not
    valid JSON, not an object, lacks the content field, or carries a field named like a provenance
    column is rejected with its line number; the other lines are kept. Blank lines are not records
    and are not counted; a UTF-8 byte order mark at the start is ignored. Renames are applied here,
    once, to every record (the batch says so). When the file cannot be read to its end (a
    truncated `.gz`/`.zst`), the lines before the failure are kept and the failure is one reject.

    A line longer than ``options.max_record_bytes`` is rejected (``record_too_large``) without
    being held in memory, and a record nested more than :data:`MAX_NESTING` arrays or objects
    deep is rejected (``too_deeply_nested``); the lines after either are read as usual. A batch
    ends at ``options.batch_rows`` records or ``options.batch_bytes`` bytes of input.
    """
    content_key = options.image_column or options.text_column
    records: list[dict[str, Any]] = []
    keys: list[str] = []
    positions: list[int | None] = []
    rejects: list[Reject] = []
    batch_bytes = 0

    def flush() -> ReadBatch:
        nonlocal records, keys, positions, rejects, batch_bytes
        table = records_to_table(records) if records else pa.table({})
        batch = ReadBatch(file, table, keys, positions, "line", rejects, renamed=True)
        records, keys, positions, rejects = [], [], [], []
        batch_bytes = 0
        return batch

    def reject(line_no: int, code: str, reason: str, raw: bytes) -> None:
        rejects.append(Reject(file.location, line_no, "line", code, reason, preview(raw)))

    def check(line_no: int, raw: bytes) -> None:
        stripped = raw.strip()
        if not stripped:
            return
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            reject(line_no, "invalid_utf8", f"invalid UTF-8 at byte {exc.start}", raw)
            return
        too_deep = (
            f"the record nests arrays and objects more than {MAX_NESTING} levels deep, "
            "which a Parquet shard cannot hold"
        )
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            reject(
                line_no, "malformed_json", f"malformed JSON: {exc.msg} at column {exc.colno}", raw
            )
            return
        except RecursionError:
            reject(line_no, "too_deeply_nested", too_deep, raw)
            return
        if not isinstance(record, dict):
            reject(
                line_no,
                "not_an_object",
                f"a JSON {type(record).__name__} where an object was expected",
                raw,
            )
            return
        if _too_deep(record, text):
            reject(line_no, "too_deeply_nested", too_deep, raw)
            return
        if "\\u" in text:  # only an escape can make a lone surrogate
            for name, value in record.items():
                surrogate = _lone_surrogate(name) or _lone_surrogate(value)
                if surrogate:
                    shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
                    reject(
                        line_no,
                        "invalid_utf8",
                        f"field `{shown}` holds a lone surrogate escape ({surrogate}), "
                        "which is not valid Unicode",
                        raw,
                    )
                    return
        if renames:
            renamed = {renames.get(k, k): v for k, v in record.items()}
            if len(renamed) < len(record):
                names = [renames.get(k, k) for k in record]
                duplicate = next(n for i, n in enumerate(names) if n in names[:i])
                reject(
                    line_no,
                    "duplicate_column",
                    f"two fields would both be named `{duplicate}` after --rename-column; "
                    "give them distinct names",
                    raw,
                )
                return
            record = renamed
        clash = sorted(reserved.intersection(record))
        if clash:
            reject(
                line_no,
                "reserved_column",
                f"field `{clash[0]}` is a provenance column name; "
                f"rename it with --rename-column {clash[0]}=NEW_NAME (Python: `rename_columns=`)",
                raw,
            )
        elif record.get(content_key) is None:
            reject(
                line_no,
                "missing_content",
                f"no `{content_key}` field (or it is null); name the content field with --text-column (Python: `text_column=`)",
                raw,
            )
        elif options.image_column is None and not isinstance(record[content_key], str):
            reject(
                line_no,
                "content_not_text",
                f"`{content_key}` is a JSON {type(record[content_key]).__name__}, not a string",
                raw,
            )
        else:
            records.append(record)
            keys.append(f"{file.relpath}:{line_no}")
            positions.append(line_no)

    with open_maybe_compressed(file.path) as handle:
        try:
            head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
        except Exception as exc:
            yield ReadBatch(file, pa.table({}), [], [], "line", [read_failure(file, 1, exc)])
            return
        if head.startswith(_BOM):
            head = head[len(_BOM) :]
        if head.lstrip()[:1] == b"[":
            yield ReadBatch(
                file,
                pa.table({}),
                [],
                [],
                "file",
                [
                    Reject(
                        file.location,
                        None,
                        "file",
                        "not_json_lines",
                        "the file is one JSON array, not JSON Lines (one object per line); "
                        "convert it, e.g. with `jq -c '.[]' FILE > FILE.jsonl`",
                    )
                ],
            )
            return
        lines = BoundedLines(handle, options.max_record_bytes)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except LineTooLarge as exc:
                rejects.append(
                    record_too_large(file, exc.line, exc.size, options.max_record_bytes, exc.head)
                )
            except Exception as exc:  # a truncated or corrupt stream: keep what came before
                rejects.append(read_failure(file, lines.line_no + 1, exc))
                break
            else:
                line_no = lines.line_no
                if line_no == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                check(line_no, raw)
                batch_bytes += len(raw)
            if (
                len(records) + len(rejects) >= options.batch_rows
                or batch_bytes >= options.batch_bytes
            ):
                yield flush()
    if records or rejects:
        yield flush()
