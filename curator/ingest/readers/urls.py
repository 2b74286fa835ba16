"""Inputs named by URL (`s3://bucket/in/`, `gs://…/*.parquet`, `hf://datasets/…/**/*.jsonl`):
expanded through fsspec into objects with the names their sample ids are built from, as local
files, directories and globs are."""

from __future__ import annotations

import glob
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curator.core.errors import InputError
from curator.core.remote import filesystem, reaching, url_of

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


@dataclass(frozen=True)
class FoundObject:
    """One object found at a URL: its URL, its name relative to the prefix or glob root the user
    named (its base name when named directly), whether it was named directly, and its size."""

    url: str
    relpath: str
    named: bool
    size: int | None


def _hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/"))


def _walk_order(relpath: str) -> tuple[tuple[int, str], ...]:
    """The order in which a local directory walk visits a file: in each directory its files by
    name, then its subdirectories by name."""
    *directories, name = relpath.split("/")
    return (*((1, d) for d in directories), (0, name))


def _files_below(fs: AbstractFileSystem, root: str, url: str) -> list[FoundObject]:
    found = fs.find(root, detail=True)
    objects = []
    for path, info in found.items():
        if info.get("type") == "directory" or path.endswith("/"):
            continue
        relpath = posixpath.relpath(path, root)
        if _hidden(relpath):
            continue
        objects.append(FoundObject(url_of(fs, path, url), relpath, False, info.get("size")))
    return sorted(objects, key=lambda o: _walk_order(o.relpath))


def expand_url(url: str) -> list[FoundObject]:
    """The objects a URL names: the object itself, every object below a prefix (walked in name
    order, as a local directory is), or every object a glob (``*``, ``**``) matches.

    Raises:
        InputError: nothing is there, the bucket does not exist, credentials are missing or
            refused (naming the environment variables to set), or the backend is not installed.
    """
    fs, path = filesystem(url)
    fs.invalidate_cache()  # objects may have changed since this process listed them
    with reaching(url):
        if glob.has_magic(path):
            parts = path.split("/")
            static = []
            for part in parts:
                if glob.has_magic(part):
                    break
                static.append(part)
            root = "/".join(static)
            matches = fs.glob(path, detail=True)
            objects: list[FoundObject] = []
            for match, info in sorted(matches.items()):
                if info.get("type") == "directory":
                    for inner in _files_below(fs, match, url):
                        objects.append(
                            FoundObject(
                                inner.url,
                                posixpath.relpath(f"{match}/{inner.relpath}", root),
                                False,
                                inner.size,
                            )
                        )
                else:
                    relpath = posixpath.relpath(match, root)
                    if not _hidden(relpath):
                        objects.append(
                            FoundObject(url_of(fs, match, url), relpath, False, info.get("size"))
                        )
            if not objects:
                raise InputError(f"`{url}` matches no object", "check the pattern and quote it")
            return list({o.url: o for o in objects}.values())
        stripped = path.rstrip("/")
        if fs.isdir(stripped):
            return _files_below(fs, stripped, url)
        if fs.isfile(stripped):
            return [
                FoundObject(
                    url_of(fs, stripped, url),
                    posixpath.basename(stripped),
                    True,
                    fs.size(stripped),
                )
            ]
    raise InputError(f"input `{url}` does not exist", "check the URL (bucket, prefix and key)")
