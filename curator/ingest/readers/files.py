"""One sample per file: plain-text files and image files (PNG, JPEG, WebP)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa

from curator.core.remote import open_binary
from curator.ingest.readers.base import InputFile, ReadBatch, ReaderOptions, Reject
from curator.ingest.readers.images import ImageRejected, inspect_image
from curator.ingest.readers.tables import may_overflow, string_array

IMAGE_COLUMNS = ("image", "path", "width", "height", "image_format")


def _read_file(file: InputFile, rejects: list[Reject]) -> bytes | None:
    """The file's bytes, or None after recording why it cannot be read."""
    try:
        with open_binary(file.path) as handle:
            return handle.read()
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
        rejects.append(Reject(file.location, None, "file", "unreadable_file", reason))
        return None


def _groups(
    files: Sequence[InputFile], batch_rows: int, batch_bytes: int
) -> Iterator[Sequence[InputFile]]:
    """Consecutive files in groups of at most `batch_rows` files and (but for a group of one
    large file) about `batch_bytes` bytes, by their size on disk."""
    start = 0
    while start < len(files):
        end = start
        total = 0
        while end < len(files) and end - start < batch_rows:
            try:
                size = files[end].size
                if size is None:
                    size = os.path.getsize(files[end].path)
            except OSError:
                size = 0
            if end > start and total + size > batch_bytes:
                break
            total += size
            end += 1
        yield files[start:end]
        start = end


def read_text_files(files: Sequence[InputFile], options: ReaderOptions) -> Iterator[ReadBatch]:
    """Each file is one sample: column `text` (the file decoded as UTF-8) and `path`. A batch
    holds at most ``options.batch_rows`` files and about ``options.batch_bytes`` bytes."""
    for group in _groups(files, options.batch_rows, options.batch_bytes):
        texts: list[str] = []
        paths: list[str] = []
        rejects: list[Reject] = []
        for file in group:
            data = _read_file(file, rejects)
            if data is None:
                continue
            try:
                texts.append(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                rejects.append(
                    Reject(
                        file.location,
                        None,
                        "file",
                        "invalid_utf8",
                        f"invalid UTF-8 at byte {exc.start}",
                    )
                )
                continue
            paths.append(file.relpath)
        table = pa.table({"text": string_array(texts), "path": pa.array(paths, pa.string())})
        yield ReadBatch(group[0], table, list(paths), [None] * len(paths), "file", rejects)


def read_image_files(files: Sequence[InputFile], options: ReaderOptions) -> Iterator[ReadBatch]:
    """Each file is one sample: the image bytes as stored (column `image`), its `path`, `width`,
    `height` and `image_format`. Unreadable, truncated, corrupt and oversized images are rejected.
    """
    batch_rows = max(1, min(options.batch_rows, 256))
    for group in _groups(files, batch_rows, options.batch_bytes):
        columns: dict[str, list[object]] = {name: [] for name in IMAGE_COLUMNS}
        hashes: list[str] = []
        rejects: list[Reject] = []
        for file in group:
            data = _read_file(file, rejects)
            if data is None:
                continue
            try:
                info = inspect_image(data, options.max_image_pixels)
            except ImageRejected as exc:
                rejects.append(Reject(file.location, None, "file", exc.code, exc.reason))
                continue
            columns["image"].append(data)
            columns["path"].append(file.relpath)
            columns["width"].append(info.width)
            columns["height"].append(info.height)
            columns["image_format"].append(info.format)
            hashes.append(info.content_hash)
        table = image_table(columns)
        batch = ReadBatch(
            group[0],
            table,
            [str(p) for p in columns["path"]],
            [None] * len(hashes),
            "file",
            rejects,
        )
        batch.content_hashes = hashes
        yield batch


def image_table(columns: dict[str, list[object]]) -> pa.Table:
    """The reader's image columns (and any text sidecars) as a table; image bytes that may pass
    2 GiB are `large_binary`."""
    types = {
        "image": pa.large_binary() if may_overflow(columns["image"]) else pa.binary(),
        "path": pa.string(),
        "width": pa.int32(),
        "height": pa.int32(),
        "image_format": pa.string(),
    }
    return pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})
