"""Input readers: find the input files, plan them into tasks, and stream each task's records.

Formats: JSON Lines (plain, `.gz`, `.zst`), Parquet (files, globs, directories), CSV, plain-text
files (one sample per file), image folders (PNG, JPEG, WebP) and WebDataset-style tar files.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator, Sequence

from curator.core.errors import InputError
from curator.core.remote import is_url
from curator.ingest.readers.base import (
    INPUT_FORMATS,
    InputFile,
    ReadBatch,
    ReaderOptions,
    ReadTask,
    Reject,
)
from curator.ingest.readers.images import IMAGE_EXTENSIONS
from curator.ingest.readers.urls import expand_url

__all__ = [
    "INPUT_FORMATS",
    "InputFile",
    "ReadBatch",
    "ReadTask",
    "ReaderOptions",
    "Reject",
    "detect_format",
    "discover",
    "plan_tasks",
    "read_task",
]

_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".jsonl", "jsonl"),
    (".jsonl.gz", "jsonl"),
    (".jsonl.zst", "jsonl"),
    (".ndjson", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".ndjson.zst", "jsonl"),
    (".json", "jsonl"),
    (".json.gz", "jsonl"),
    (".json.zst", "jsonl"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv", "csv"),
    (".csv.gz", "csv"),
    (".csv.zst", "csv"),
    (".txt", "text"),
    (".md", "text"),
    (".tar", "webdataset"),
    (".tar.gz", "webdataset"),
    (".tgz", "webdataset"),
    *((ext, "image") for ext in IMAGE_EXTENSIONS),
)

#: A task holds at most this many files, or about this many input bytes.
FILES_PER_TASK = 256
TASK_BYTES = 64 << 20


def detect_format(path: str) -> str | None:
    """The input format a file name implies, or ``None``."""
    lower = path.lower()
    best: tuple[int, str] | None = None
    for suffix, fmt in _SUFFIXES:
        if lower.endswith(suffix) and (best is None or len(suffix) > best[0]):
            best = (len(suffix), fmt)
    return best[1] if best else None


def _glob_root(pattern: str) -> str:
    parts = pattern.split(os.sep)
    static: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        static.append(part)
    root = os.sep.join(static)
    return root or "."


def _recursive_dirs(base: str) -> Iterator[str]:
    """`base` and every directory below it that a glob's ``**`` matches (names not starting
    with ``.``), in sorted order. Directory symlinks are followed, except into a directory that
    is already one of the path's own ancestors: a symlink loop is walked once, not forever."""
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [(base, frozenset())]
    while stack:
        directory, ancestors = stack.pop()
        try:
            info = os.stat(directory or os.curdir)
        except OSError:
            continue
        identity = (info.st_dev, info.st_ino)
        if identity in ancestors:
            continue  # a symlink back into its own ancestry
        yield directory
        try:
            with os.scandir(directory or os.curdir) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith(".") and _is_dir(e))
        except OSError:
            continue
        inner = ancestors | {identity}
        stack.extend((os.path.join(directory, name), inner) for name in reversed(names))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _glob(pattern: str) -> list[str]:
    """What ``glob.glob(pattern, recursive=True)`` gives, but a ``**`` that meets a directory
    symlink loop does not follow it round (glob's own ``**`` would never end)."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    at = parts.index("**")
    prefix = os.sep.join(parts[:at]) or (os.sep if at else "")
    rest = os.sep.join(parts[at + 1 :])
    if not prefix:
        bases = [""]
    elif glob.has_magic(prefix):
        bases = [path for path in glob.glob(prefix) if os.path.isdir(path)]
    else:
        bases = [prefix] if os.path.isdir(prefix) else []
    matches: list[str] = []
    for base in bases:
        for directory in _recursive_dirs(base):
            if rest:
                matches.extend(_glob(os.path.join(glob.escape(directory), rest)))
                continue
            # A trailing `**` matches every directory and file below, as glob's does.
            if directory:
                matches.append(os.path.join(directory, "") if directory == base else directory)
            with contextlib.suppress(OSError), os.scandir(directory or os.curdir) as entries:
                matches.extend(
                    os.path.join(directory, e.name)
                    for e in entries
                    if not e.name.startswith(".") and not _is_dir(e)
                )
    return matches


def discover(
    inputs: Sequence[str], input_format: str = "auto"
) -> tuple[list[InputFile], list[str]]:
    """Expand files, directories and globs into input files with stable relative names.

    An input may also be a URL (``s3://bucket/in/``, ``gs://…``, ``hf://…``, any fsspec
    protocol): an object, a prefix (walked as a directory is) or a glob; see
    :func:`curator.ingest.readers.urls.expand_url`.

    Returns:
        ``(files, ignored)``: the input files in a deterministic order, and the files found in
        directories whose format could not be told from their name (skipped, and reported).

    Raises:
        InputError: a path that does not exist, a glob that matches nothing, a named file whose
            format cannot be told, or two inputs that would give the same sample ids.
    """
    if input_format != "auto" and input_format not in INPUT_FORMATS:
        raise InputError(
            f"unknown `--format` {input_format!r}",
            f"use one of: auto, {', '.join(INPUT_FORMATS)}",
        )
    if not inputs:
        raise InputError("no input given", "name at least one file, directory or glob")
    found: list[InputFile] = []
    ignored: list[str] = []

    def add(path: str, relpath: str, named: bool, size: int | None = None) -> None:
        fmt = input_format if input_format != "auto" else detect_format(path)
        if fmt is None:
            if named:
                raise InputError(
                    f"cannot tell the format of `{path}` from its name",
                    f"pass --format (Python: `input_format=`) with one of: {', '.join(INPUT_FORMATS)}",
                )
            ignored.append(path)
            return
        if size is not None:  # an object at a URL
            found.append(InputFile(path, relpath, fmt, size))
            return
        found.append(InputFile(os.path.abspath(path), relpath.replace(os.sep, "/"), fmt))

    def walk(root: str) -> None:
        for directory, subdirs, names in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = os.path.join(directory, name)
                add(path, os.path.relpath(path, root), named=False)

    for item in inputs:
        item = os.fspath(item)
        if is_url(item):
            for found_object in expand_url(item):
                size = found_object.size if found_object.size is not None else 0
                add(found_object.url, found_object.relpath, found_object.named, size)
        elif glob.has_magic(item) and not os.path.exists(item):
            matches = sorted(set(_glob(item)))
            if not matches:
                raise InputError(f"`{item}` matches no file", "check the pattern and quote it")
            root = _glob_root(item)
            for match in matches:
                if os.path.isdir(match):
                    walk(match)
                else:
                    add(match, os.path.relpath(match, root), named=False)
        elif os.path.isdir(item):
            walk(item)
        elif os.path.exists(item):
            add(item, os.path.basename(item), named=True)
        else:
            raise InputError(f"input `{item}` does not exist", "check the path")
    seen: dict[str, str] = {}
    for file in found:
        if file.relpath in seen and seen[file.relpath] != file.path:
            raise InputError(
                f"inputs `{seen[file.relpath]}` and `{file.path}` would get the same sample ids "
                f"(both are named `{file.relpath}`)",
                "ingest them under different --source names (Python: `source=`), or name their common parent directory",
            )
        seen[file.relpath] = file.path
    # One file named twice (a glob and a path) is read once.
    unique = list({file.path: file for file in found}.values())
    return unique, ignored


def plan_tasks(files: Sequence[InputFile]) -> list[ReadTask]:
    """Split the input into tasks for a pool of processes.

    Consecutive files of one format are packed into a task until it holds about
    ``TASK_BYTES`` (or ``FILES_PER_TASK`` files), so many small files make few shards; a large
    Parquet file is split into tasks of a few row groups each.
    """
    from curator.ingest.readers.parquet import row_group_sizes

    tasks: list[ReadTask] = []
    group: list[InputFile] = []
    group_bytes = 0

    def flush() -> None:
        nonlocal group, group_bytes
        if group:
            tasks.append(ReadTask(len(tasks), group[0].format, tuple(group)))
        group, group_bytes = [], 0

    for file in files:
        try:
            size = file.size if file.size is not None else os.path.getsize(file.path)
        except OSError:
            size = 0
        if file.format == "parquet" and size > TASK_BYTES:
            try:
                sizes = row_group_sizes(file.path)
            except Exception:
                sizes = []  # unreadable: the task reports it as a reject
            if len(sizes) > 1:
                flush()
                current: list[int] = []
                current_bytes = 0
                for index, (_rows, nbytes) in enumerate(sizes):
                    current.append(index)
                    current_bytes += nbytes
                    if current_bytes >= TASK_BYTES:
                        tasks.append(ReadTask(len(tasks), "parquet", (file,), tuple(current)))
                        current, current_bytes = [], 0
                if current:
                    tasks.append(ReadTask(len(tasks), "parquet", (file,), tuple(current)))
                continue
        if group and (
            group[0].format != file.format
            or group_bytes >= TASK_BYTES
            or len(group) >= FILES_PER_TASK
        ):
            flush()
        group.append(file)
        group_bytes += size
    flush()
    return tasks


def read_task(
    task: ReadTask,
    options: ReaderOptions,
    renames: dict[str, str],
    reserved: frozenset[str],
) -> Iterator[ReadBatch]:
    """Stream the records of one task.

    A file that cannot be opened or read becomes one reject (``unreadable_file``) counted as one
    record; the records read from it before the failure are kept.
    """
    from curator.ingest.readers.csv import read_csv
    from curator.ingest.readers.files import read_image_files, read_text_files
    from curator.ingest.readers.jsonl import read_jsonl
    from curator.ingest.readers.parquet import read_parquet
    from curator.ingest.readers.webdataset import read_webdataset

    if task.format == "text":
        yield from read_text_files(task.files, options)
        return
    if task.format == "image":
        yield from read_image_files(task.files, options)
        return
    for file in task.files:
        try:
            if task.format == "jsonl":
                yield from read_jsonl(file, options, renames, reserved)
            elif task.format == "parquet":
                yield from read_parquet(file, options, task.row_groups)
            elif task.format == "csv":
                yield from read_csv(file, options)
            elif task.format == "webdataset":
                yield from read_webdataset(file, options)
            else:  # pragma: no cover - discover() validates formats
                raise InputError(f"unknown format {task.format!r}")
        except InputError:
            raise
        except Exception as exc:
            import pyarrow as pa

            reason = f"cannot read {task.format} file: {type(exc).__name__}: {exc}"
            yield ReadBatch(
                file,
                pa.table({}),
                [],
                [],
                "file",
                [Reject(file.location, None, "file", "unreadable_file", reason)],
            )
