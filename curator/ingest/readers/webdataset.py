"""WebDataset-style tar files: members grouped by key, one image each, optional sidecars.

A sample is the members that share a key (the member path up to the first dot of its file name),
wherever they are in the archive: members are grouped by key until the archive ends, or until
more than ``MAX_PENDING_KEYS`` keys are open (the oldest sample is then complete). Its image
(`.png`, `.jpg`, `.jpeg` or `.webp`) becomes column `image`; UTF-8 sidecars become a column named
by their extension (`txt`, `json`, `cls`, …), or `<extension>_sidecar` when the extension is the
name of a provenance column or of a column the reader writes itself (`source` → `source_sidecar`).
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from curator.core.remote import open_binary
from curator.core.schema import RESERVED_NAMES, TEXT_COLUMN
from curator.ingest.readers.base import InputFile, ReadBatch, ReaderOptions, Reject
from curator.ingest.readers.files import IMAGE_COLUMNS, image_table
from curator.ingest.readers.images import IMAGE_EXTENSIONS, ImageRejected, inspect_image

#: Samples whose members are still being collected; past this many, the oldest is complete.
MAX_PENDING_KEYS = 1024

#: Sidecar extensions that would collide with a provenance column, a column of the reader, or the
#: text content column of a store: stored as `<extension>_sidecar`.
_RENAMED_SIDECARS = frozenset(RESERVED_NAMES) | frozenset(IMAGE_COLUMNS) | {TEXT_COLUMN}


def _sidecar_column(extension: str) -> str:
    return f"{extension}_sidecar" if extension in _RENAMED_SIDECARS else extension


def _safe_name(name: str) -> str:
    """A member name that cannot climb out of the archive in a `sample_id`: no leading ``/``,
    no empty or ``.`` parts, and ``..`` parts written ``%2E%2E``."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return "/".join("%2E%2E" if part == ".." else part for part in parts)


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link (to `{member.linkname}`), which is not followed inside an archive"
    if member.ischr():
        return "a character device, not a file"
    if member.isblk():
        return "a block device, not a file"
    if member.isfifo():
        return "a FIFO, not a file"
    return f"a tar member of type {member.type!r}, not a file"


def _split_key(name: str) -> tuple[str, str]:
    directory, base = posixpath.split(name)
    stem, dot, extension = base.partition(".")
    key = posixpath.join(directory, stem) if directory else stem
    return key, extension.lower() if dot else ""


def read_webdataset(file: InputFile, options: ReaderOptions) -> Iterator[ReadBatch]:
    """Stream the samples of one tar file (plain, `.tar.gz` or other compression tarfile knows).

    A hard link member (GNU tar stores a file's second copy that way) reads the data of the
    earlier member it links to. A sample with a symbolic link, a device or a FIFO member is
    rejected (``unsupported_member``), naming the member; directories are not samples. Member
    names are made safe in keys (see :func:`_safe_name`). A batch holds at most 256 samples and
    about ``options.batch_bytes`` bytes.
    """
    batch_rows = max(1, min(options.batch_rows, 256))
    columns: dict[str, list[object]] = {name: [] for name in IMAGE_COLUMNS}
    sidecar_names: list[str] = []
    hashes: list[str] = []
    keys: list[str] = []
    positions: list[int | None] = []
    rejects: list[Reject] = []
    index = 0
    batch_bytes = 0
    #: why a sample cannot be read, by key (a member that is not a file)
    unsupported: dict[str, str] = {}

    def add_sample(key: str, members: dict[str, bytes]) -> None:
        nonlocal index, batch_bytes
        position = index
        index += 1
        problem = unsupported.pop(key, None)
        if problem is not None:
            rejects.append(
                Reject(
                    file.location,
                    position,
                    "sample",
                    "unsupported_member",
                    f"sample `{key}`: {problem}",
                )
            )
            return
        images = [ext for ext in members if "." + ext.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS]
        if not images:
            rejects.append(
                Reject(
                    file.location,
                    position,
                    "sample",
                    "missing_content",
                    f"sample `{key}` has no image member ({', '.join(sorted(members)) or 'no members'})",
                )
            )
            return
        data = members[images[0]]
        try:
            info = inspect_image(data, options.max_image_pixels)
        except ImageRejected as exc:
            rejects.append(
                Reject(file.location, position, "sample", exc.code, f"sample `{key}`: {exc.reason}")
            )
            return
        sidecars: dict[str, str] = {}
        for extension, payload in members.items():
            if extension in images:
                continue
            try:
                sidecars[_sidecar_column(extension)] = payload.decode("utf-8")
            except UnicodeDecodeError:
                rejects.append(
                    Reject(
                        file.location,
                        position,
                        "sample",
                        "invalid_utf8",
                        f"sample `{key}`: sidecar `.{extension}` is not UTF-8",
                    )
                )
                return
        row = len(hashes)
        for name in sidecars:
            if name not in columns:
                columns[name] = [None] * row
                sidecar_names.append(name)
        columns["image"].append(data)
        columns["path"].append(f"{key}.{images[0]}")
        columns["width"].append(info.width)
        columns["height"].append(info.height)
        columns["image_format"].append(info.format)
        for name in sidecar_names:
            columns[name].append(sidecars.get(name))
        hashes.append(info.content_hash)
        keys.append(f"{file.relpath}/{key}")
        positions.append(position)
        batch_bytes += sum(len(payload) for payload in members.values())

    def flush() -> ReadBatch:
        nonlocal columns, sidecar_names, hashes, keys, positions, rejects, batch_bytes
        batch = ReadBatch(file, image_table(columns), keys, positions, "sample", rejects)
        batch.content_hashes = hashes
        columns = {name: [] for name in IMAGE_COLUMNS}
        sidecar_names, hashes, keys, positions, rejects = [], [], [], [], []
        batch_bytes = 0
        return batch

    def full() -> bool:
        return len(hashes) + len(rejects) >= batch_rows or batch_bytes >= options.batch_bytes

    pending: dict[str, dict[str, bytes]] = {}
    #: where each file member's data is in the (uncompressed) archive, for hard links to it
    offsets: dict[str, tuple[int, int]] = {}
    failure: Exception | None = None
    random_access: tarfile.TarFile | None = None
    random_stream: BinaryIO | None = None
    try:
        with open_binary(file.path) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if member.isdir():
                    continue
                key, extension = _split_key(_safe_name(member.name))
                if member.islnk() and member.linkname in offsets:
                    # The stream cannot go back: the linked data is read from a second handle.
                    if random_access is None:
                        random_stream = open_binary(file.path)
                        random_access = tarfile.open(fileobj=random_stream, mode="r:*")  # noqa: SIM115 - closed below
                    offset, size = offsets[member.linkname]
                    assert random_access.fileobj is not None
                    random_access.fileobj.seek(offset)
                    data = random_access.fileobj.read(size)
                    offsets[member.name] = (offset, size)
                elif not member.isfile():
                    if member.islnk():
                        problem = (
                            f"member `{member.name}` is a hard link to `{member.linkname}`, "
                            "which is not an earlier file of the archive"
                        )
                    else:
                        problem = f"member `{member.name}` is {_member_kind(member)}"
                    unsupported.setdefault(key, problem)
                    data = None
                else:
                    try:
                        extracted = tar.extractfile(member)
                        data = extracted.read() if extracted else b""
                    except Exception:
                        # The sample whose member was being read is incomplete: it is lost.
                        pending.pop(key, None)
                        unsupported.pop(key, None)
                        raise
                    offsets[member.name] = (member.offset_data, member.size)
                members = pending.setdefault(key, {})
                if data is not None:
                    members[extension] = data
                if len(pending) > MAX_PENDING_KEYS:
                    oldest = next(iter(pending))
                    add_sample(oldest, pending.pop(oldest))
                    if full():
                        yield flush()
    except Exception as exc:
        failure = exc
    finally:
        if random_access is not None:
            random_access.close()
        if random_stream is not None:
            random_stream.close()
    for key, members in pending.items():
        add_sample(key, members)
        if full():
            yield flush()
    if failure is not None:
        # A truncated or corrupt archive: the sample being read is lost, the samples before it
        # are kept, and the damage is recorded where it happened.
        rejects.append(
            Reject(
                file.location,
                index,
                "sample",
                "corrupt_archive",
                f"tar archive is truncated or corrupt after {index} samples: {failure}",
            )
        )
    if hashes or rejects:
        yield flush()
