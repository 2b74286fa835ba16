"""The store's write lock: one writing process at a time, others wait with a timeout."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from curator.errors import StoreLockedError

#: Default seconds a writer waits for another writer (env `CURATOR_LOCK_TIMEOUT`).
DEFAULT_LOCK_TIMEOUT = 120.0


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
