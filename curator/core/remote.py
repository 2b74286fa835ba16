"""Files named by URL (`s3://`, `gs://`, `hf://`, any fsspec protocol), read and written through
fsspec, with credentials and endpoints from the standard environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID`` …).

Only inputs and assembled sets live there; the store itself stays on a POSIX filesystem. A URL
stays a plain string everywhere it travels (tasks, manifests), so it pickles to any engine's
workers; each process opens the filesystem itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from curator.core.errors import InputError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

#: Where each protocol's credentials (and endpoint) come from, for the error that says so.
CREDENTIAL_HINTS: dict[str, str] = {
    "s3": "set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (or `AWS_PROFILE`), and "
    "`AWS_ENDPOINT_URL` for an S3-compatible server other than AWS",
    "gs": "set `GOOGLE_APPLICATION_CREDENTIALS` to a service-account key file",
    "gcs": "set `GOOGLE_APPLICATION_CREDENTIALS` to a service-account key file",
    "hf": "set `HF_TOKEN` to a Hugging Face access token",
}

#: The install line of the fsspec backend of each protocol (S3 is curator's tested extra; gcsfs
#: and huggingface_hub are fsspec's own backends, not tested here).
BACKENDS: dict[str, str] = {
    "s3": "pip install 'curator[s3]'",
    "s3a": "pip install 'curator[s3]'",
    "gs": "pip install gcsfs",
    "gcs": "pip install gcsfs",
    "hf": "pip install huggingface_hub",
}


def is_url(path: object) -> bool:
    """Whether `path` is a URL with a protocol (``s3://bucket/key``), not a local path."""
    return isinstance(path, str) and _URL.match(path) is not None


def protocol_of(url: str) -> str:
    """The protocol of a URL: ``s3`` for ``s3://bucket/key``."""
    return url.split("://", 1)[0].lower()


def credentials_hint(url: str) -> str:
    """How to give credentials for `url`, naming the environment variables to set."""
    return CREDENTIAL_HINTS.get(
        protocol_of(url), "give the credentials the fsspec backend of this protocol reads"
    )


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of `url` and the path within it.

    Raises:
        InputError: fsspec, or the protocol's backend (``s3fs``, ``gcsfs``,
            ``huggingface_hub``), is not installed (the error gives the install line), or the
            protocol is unknown.
    """
    protocol = protocol_of(url)
    install = BACKENDS.get(protocol, "pip install fsspec and the backend of this protocol")
    try:
        import fsspec.core
    except ImportError as exc:
        raise InputError(f"reading `{url}` needs fsspec, which is not installed", install) from exc
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise InputError(
            f"reading `{url}` needs the fsspec backend of `{protocol}://`, which is not "
            f"installed ({exc})",
            install,
        ) from exc
    except ValueError as exc:
        raise InputError(
            f"`{url}`: {exc}", "use a protocol fsspec knows, such as s3://, gs:// or hf://"
        ) from exc
    return fs, str(path)


def url_of(fs: AbstractFileSystem, path: str, like: str) -> str:
    """The URL of `path` on `fs`, spelt with the protocol of `like` (the URL the user gave)."""
    return f"{protocol_of(like)}://{fs._strip_protocol(path)}"


def access_error(url: str, exc: BaseException, missing: bool = True) -> InputError | None:
    """The user-facing error for a failure to reach `url` (missing or refused credentials, and,
    with `missing`, a missing object or bucket), or None when `exc` is not one of those."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if missing and isinstance(exc, FileNotFoundError):
        return InputError(f"`{url}` does not exist", "check the URL (bucket, prefix and key)")
    if isinstance(exc, PermissionError) or names & {
        "NoCredentialsError",
        "PartialCredentialsError",
        "DefaultCredentialsError",
        "LocalTokenNotFoundError",
    }:
        return InputError(
            f"cannot access `{url}`: {type(exc).__name__}: {exc}", credentials_hint(url)
        )
    return None


@contextlib.contextmanager
def reaching(url: str, missing: bool = True) -> Iterator[None]:
    """Turn a failure to reach `url` into an :class:`InputError` naming it (and the environment
    variables to set, for missing credentials); without `missing`, a missing object stays a
    ``FileNotFoundError``."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        error = access_error(url, exc, missing)
        if error is None:
            raise
        raise error from exc


def open_binary(path: str) -> BinaryIO:
    """Open a local path or a URL for streamed binary reading (buffered, with ``peek``).

    Raises:
        FileNotFoundError: nothing is there (as for a local path: a reader makes it a reject).
        InputError: missing or refused credentials, or no backend for the protocol.
    """
    if not is_url(path):
        return open(path, "rb")
    import io

    fs, inner = filesystem(path)
    with reaching(path, missing=False):
        handle = fs.open(inner, "rb")
    return cast(BinaryIO, io.BufferedReader(handle, buffer_size=1 << 20))


def size_of(path: str) -> int:
    """The size in bytes of a local file or of the object at a URL."""
    if not is_url(path):
        import os

        return os.path.getsize(path)
    fs, inner = filesystem(path)
    with reaching(path):
        return int(fs.size(inner))


def sha256_url(url: str, chunk: int = 8 << 20) -> str:
    """The SHA-256 of the object at `url`, streamed."""
    digest = hashlib.sha256()
    with open_binary(url) as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def join_url(base: str, name: str) -> str:
    """`name` inside the prefix `base` (``s3://b/sets/gen-1`` + ``part-0.parquet``)."""
    return base.rstrip("/") + "/" + name


def upload(local_path: str, url: str) -> None:
    """Copy a local file to `url` (one object, streamed)."""
    fs, inner = filesystem(url)
    with reaching(url):
        fs.put_file(local_path, inner)


def listing(url: str) -> list[str]:
    """The URLs of every object under the prefix `url` (none when nothing is there)."""
    fs, inner = filesystem(url)
    fs.invalidate_cache()  # objects may have changed since this process listed them
    with reaching(url):
        try:
            found: Any = fs.find(inner.rstrip("/"))
        except FileNotFoundError:
            return []
    return sorted(url_of(fs, path, url) for path in found)
