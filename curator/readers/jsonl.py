"""JSON Lines input: plain, gzip (`.gz`) or Zstandard (`.zst`), one JSON object per line."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import pyarrow as pa

from curator.readers.base import InputFile, ReadBatch, ReaderOptions, Reject, preview
from curator.readers.tables import records_to_table


def open_maybe_compressed(path: str) -> BinaryIO:
    """Open `path` for binary reading, decompressing `.gz` and `.zst` transparently."""
    if path.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    if path.endswith(".zst") or path.endswith(".zstd"):
        import zstandard

        raw = open(path, "rb")  # noqa: SIM115 - closed with the reader below
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)
    return open(path, "rb")


def read_jsonl(
    file: InputFile,
    options: ReaderOptions,
    renames: dict[str, str],
    reserved: frozenset[str],
) -> Iterator[ReadBatch]:
    """Stream a JSON Lines file in batches of ``options.batch_rows`` records.

    A line that is not valid UTF-8, not valid JSON, not an object, lacks the content field, or
    carries a field named like a provenance column is rejected with its line number; the other
    lines are kept. Blank lines are not records and are not counted.
    """
    content_key = options.image_column or options.text_column
    records: list[dict[str, Any]] = []
    keys: list[str] = []
    positions: list[int | None] = []
    rejects: list[Reject] = []

    def flush() -> ReadBatch:
        nonlocal records, keys, positions, rejects
        table = records_to_table(records) if records else pa.table({})
        batch = ReadBatch(file, table, keys, positions, "line", rejects)
        records, keys, positions, rejects = [], [], [], []
        return batch

    def reject(line_no: int, code: str, reason: str, raw: bytes) -> None:
        rejects.append(Reject(file.relpath, line_no, "line", code, reason, preview(raw)))

    with open_maybe_compressed(file.path) as handle:
        head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
        if head.lstrip()[:1] == b"[":
            yield ReadBatch(
                file,
                pa.table({}),
                [],
                [],
                "file",
                [
                    Reject(
                        file.relpath,
                        None,
                        "file",
                        "not_json_lines",
                        "the file is one JSON array, not JSON Lines (one object per line); "
                        "convert it, e.g. with `jq -c '.[]' FILE > FILE.jsonl`",
                    )
                ],
            )
            return
        for line_no, raw in enumerate(handle, start=1):
            stripped = raw.strip()
            if not stripped:
                continue
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as exc:
                reject(line_no, "invalid_utf8", f"invalid UTF-8 at byte {exc.start}", raw)
            else:
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    reject(
                        line_no,
                        "malformed_json",
                        f"malformed JSON: {exc.msg} at column {exc.colno}",
                        raw,
                    )
                else:
                    if not isinstance(record, dict):
                        reject(
                            line_no,
                            "not_an_object",
                            f"a JSON {type(record).__name__} where an object was expected",
                            raw,
                        )
                    else:
                        if renames:
                            record = {renames.get(k, k): v for k, v in record.items()}
                        clash = sorted(reserved.intersection(record))
                        if clash:
                            reject(
                                line_no,
                                "reserved_column",
                                f"field `{clash[0]}` is a provenance column name; "
                                f"rename it with --rename-column {clash[0]}=NEW_NAME",
                                raw,
                            )
                        elif record.get(content_key) is None:
                            reject(
                                line_no,
                                "missing_content",
                                f"no `{content_key}` field (or it is null); "
                                "name the content field with --text-column",
                                raw,
                            )
                        elif options.image_column is None and not isinstance(
                            record[content_key], str
                        ):
                            reject(
                                line_no,
                                "content_not_text",
                                f"`{content_key}` is a JSON {type(record[content_key]).__name__}, "
                                "not a string",
                                raw,
                            )
                        else:
                            records.append(record)
                            keys.append(f"{file.relpath}:{line_no}")
                            positions.append(line_no)
            if len(records) + len(rejects) >= options.batch_rows:
                yield flush()
    if records or rejects:
        yield flush()
