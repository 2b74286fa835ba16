"""One sample per file: plain-text files and image files (PNG, JPEG, WebP)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from curator.readers.base import InputFile, ReadBatch, ReaderOptions, Reject
from curator.readers.images import ImageRejected, inspect_image

IMAGE_COLUMNS = ("image", "path", "width", "height", "image_format")


def _read_file(file: InputFile, rejects: list[Reject]) -> bytes | None:
    """The file's bytes, or None after recording why it cannot be read."""
    try:
        with open(file.path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
        rejects.append(Reject(file.relpath, None, "file", "unreadable_file", reason))
        return None


def read_text_files(files: Sequence[InputFile], options: ReaderOptions) -> Iterator[ReadBatch]:
    """Each file is one sample: column `text` (the file decoded as UTF-8) and `path`."""
    for start in range(0, len(files), options.batch_rows):
        texts: list[str] = []
        paths: list[str] = []
        rejects: list[Reject] = []
        group = files[start : start + options.batch_rows]
        for file in group:
            data = _read_file(file, rejects)
            if data is None:
                continue
            try:
                texts.append(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                rejects.append(
                    Reject(
                        file.relpath,
                        None,
                        "file",
                        "invalid_utf8",
                        f"invalid UTF-8 at byte {exc.start}",
                    )
                )
                continue
            paths.append(file.relpath)
        table = pa.table(
            {"text": pa.array(texts, pa.string()), "path": pa.array(paths, pa.string())}
        )
        yield ReadBatch(group[0], table, list(paths), [None] * len(paths), "file", rejects)


def read_image_files(files: Sequence[InputFile], options: ReaderOptions) -> Iterator[ReadBatch]:
    """Each file is one sample: the image bytes as stored (column `image`), its `path`, `width`,
    `height` and `image_format`. Unreadable, truncated, corrupt and oversized images are rejected.
    """
    batch_rows = max(1, min(options.batch_rows, 256))
    for start in range(0, len(files), batch_rows):
        group = files[start : start + batch_rows]
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
                rejects.append(Reject(file.relpath, None, "file", exc.code, exc.reason))
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
    types = {
        "image": pa.binary(),
        "path": pa.string(),
        "width": pa.int32(),
        "height": pa.int32(),
        "image_format": pa.string(),
    }
    return pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})
