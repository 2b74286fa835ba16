"""The store's write lock (one writing process at a time, others wait with a timeout), and the
records that let recovery prove which leftovers of a killed run are curator's own.

A run works in a directory under ``STORE/.staging/`` that it marks as its own (:func:`claim_work_dir`,
``owner.json``). Before it moves files into the store it writes down, in that directory, the exact
store paths it is about to create (:func:`record_placement`, ``placing.json``). Recovery, under the
write lock, removes those listed paths that the catalog does not know, once the owning process is
gone (:func:`recover_work_dir`), and nothing else: a file no record names is never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime

from curator.core.errors import StoreLockedError

#: Default seconds a writer waits for another writer (env `CURATOR_LOCK_TIMEOUT`).
DEFAULT_LOCK_TIMEOUT = 120.0
#: In a run's work directory: which process owns it.
OWNER_FILE = "owner.json"
#: In a run's work directory: the store paths the run is about to create.
PLACEMENT_FILE = "placing.json"


def lock_timeout(value: float | None = None) -> float:
    if value is not None:
        return value
    env = os.environ.get("CURATOR_LOCK_TIMEOUT")
    return float(env) if env else DEFAULT_LOCK_TIMEOUT


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def write_lock(root: str, command: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the store's exclusive write lock (an OS file lock, released if the process dies).

    Raises:
        StoreLockedError: another process held it for longer than `timeout` seconds.
    """
    timeout = lock_timeout(timeout)
    lock_path = os.path.join(root, ".curator.lock")
    owner_path = os.path.join(root, ".curator.lock.owner")
    handle = open(lock_path, "a+")  # noqa: SIM115 - closed in finally
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"another process holds the write lock of store `{root}` "
                        f"({describe_owner(owner_path)}); waited {timeout:g} s",
                        "wait for it to finish, or raise the wait with --lock-timeout SECONDS "
                        "(env CURATOR_LOCK_TIMEOUT)",
                    ) from None
                if not announced and timeout >= 2:
                    import sys

                    print(
                        f"waiting for the write lock of `{root}` ({describe_owner(owner_path)})…",
                        file=sys.stderr,
                    )
                    announced = True
                time.sleep(0.05)
        with open(owner_path, "w", encoding="utf-8") as owner:
            json.dump(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "command": command,
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                owner,
            )
        yield
    finally:
        handle.close()


def describe_owner(owner_path: str) -> str:
    try:
        with open(owner_path, encoding="utf-8") as handle:
            owner = json.load(handle)
        return f"pid {owner['pid']}, `curator {owner['command']}`, since {owner['since']}"
    except (OSError, ValueError, KeyError):
        return "owner unknown"


def claim_work_dir(directory: str, run_id: str) -> None:
    """Mark the work directory `directory` as this process's (``owner.json``: pid, host, run).

    Recovery touches a work directory only when it carries this mark and the process is gone.
    """
    with open(os.path.join(directory, OWNER_FILE), "w", encoding="utf-8") as owner:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id}, owner)


def record_placement(directory: str, relative_paths: Iterable[str]) -> None:
    """Write down, in the run's work directory, the store paths (relative to the store, with
    ``/``) the run is about to create, before it creates any of them.

    The record is written aside, flushed to disk and renamed, so it is complete or absent. After a
    crash, :func:`recover_work_dir` removes exactly these paths when the catalog does not know
    them. Infer, dedup or any other run that moves files into the store uses the same record; a
    second call adds its paths to those already recorded.

    >>> record_placement(work, ["shards/web/20261125T031500Z-1a2b3c-00000-000.parquet"])  # doctest: +SKIP
    """
    paths = [_checked_relative(path) for path in relative_paths]
    # A run may record more than once (shards, then ledger files): the record only grows.
    earlier = recorded_placement(directory)
    paths = earlier + [path for path in paths if path not in set(earlier)]
    target = os.path.join(directory, PLACEMENT_FILE)
    with open(target + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"paths": paths}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(target + ".tmp", target)


def recorded_placement(directory: str) -> list[str]:
    """The store paths the run of `directory` recorded before placing them (none when it wrote
    no record, or the record is unreadable)."""
    try:
        with open(os.path.join(directory, PLACEMENT_FILE), encoding="utf-8") as handle:
            paths = json.load(handle)["paths"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [path for path in paths if isinstance(path, str) and _is_relative(path)]


def undo_placement(root: str, directory: str, known: Collection[str]) -> list[str]:
    """Remove the files the run of `directory` recorded placing into the store at `root` that
    the catalog does not know (`known`: every path of the `shards` table), then its record.

    Only regular files at exactly the recorded paths (or the ``<path>.tmp`` that :func:`place_file`
    copies through) are removed: never a symbolic link, never a directory. Returns the removed
    paths, relative to the store.
    """
    removed = []
    for relative in recorded_placement(directory):
        if relative in known:
            continue
        # `<path>.tmp` is the name `place_file` copies through when the store spans disks.
        for candidate in (relative, relative + ".tmp"):
            path = os.path.join(root, *candidate.split("/"))
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(candidate)
    forget_placement(directory)
    return removed


def forget_placement(directory: str) -> None:
    """Drop the placement record of `directory` once the catalog knows every path it names."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(directory, PLACEMENT_FILE))


def owner_gone(directory: str) -> bool:
    """Whether `directory` carries curator's ``owner.json`` and its process, on this host, has
    ended. A directory without a readable mark, or owned on another host, is not curator's to
    judge: it is left alone."""
    try:
        with open(os.path.join(directory, OWNER_FILE), encoding="utf-8") as handle:
            owner = json.load(handle)
        return owner["host"] == socket.gethostname() and not pid_alive(int(owner["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def recover_work_dir(root: str, directory: str, known: Collection[str]) -> list[str]:
    """Under the write lock: undo what the killed run of `directory` left in the store at `root`
    (:func:`undo_placement`) and remove the directory, when it is curator's and its process is
    gone (:func:`owner_gone`). Returns the removed store paths."""
    if os.path.islink(directory) or not os.path.isdir(directory) or not owner_gone(directory):
        return []
    removed = undo_placement(root, directory, known)
    shutil.rmtree(directory, ignore_errors=True)
    return removed


def _is_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not os.path.isabs(path) and ".." not in parts and "" not in parts


def _checked_relative(path: str) -> str:
    path = path.replace(os.sep, "/")
    if not _is_relative(path):
        raise ValueError(f"`{path}` is not a path inside the store")
    return path


def place_file(source: str, target: str) -> None:
    """Move `source` to `target`, atomically: a rename, or, when `target` is on another
    filesystem (a store whose ``shards/`` links to another disk), a copy to ``<target>.tmp``
    made durable and then renamed."""
    try:
        os.replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = target + ".tmp"
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    os.remove(source)
