"""A small process pool that needs no `if __name__ == "__main__":` guard in the caller.

`multiprocessing`'s spawn start method re-imports the caller's main module in every worker, so a
plain script that calls :meth:`Store.ingest` would run itself again; fork is unsafe once threads
(DuckDB's, Arrow's) exist. These workers are fresh interpreters running ``python -m
curator.engine.local``: they read pickled ``(function, argument)`` calls on stdin and write pickled
results on stdout. They start with ``-P`` and a path without the working directory, so a
``queue.py`` or ``pickle.py`` lying in the directory where curator runs is never imported.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

_HEADER = struct.Struct("<Q")


def _send(stream: BinaryIO, obj: object) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return pickle.loads(payload)


class WorkerDied(RuntimeError):
    pass


def worker_path(path: list[str], cwd: str) -> list[str]:
    """The import path a worker gets: this process's `path` without ``''`` and without the
    working directory `cwd` (where ``python -m`` put it), unless curator itself is imported
    from there."""
    import importlib.util

    spec = importlib.util.find_spec("curator")
    assert spec is not None and spec.origin is not None
    # The directory that holds the `curator` package.
    home = os.path.realpath(os.path.dirname(os.path.dirname(spec.origin)))
    here = os.path.realpath(cwd)
    kept: list[str] = []
    for entry in path:
        if not entry:
            continue
        resolved = os.path.realpath(os.path.join(cwd, entry))
        if resolved == here and resolved != home:
            continue
        if entry not in kept:
            kept.append(entry)
    return kept


def worker_command() -> list[str]:
    """The command that starts a worker: ``-P`` keeps the working directory off its path."""
    return [sys.executable, "-P", "-m", "curator.engine.local"]


def run_in_processes(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    processes: int,
    on_result: Callable[[Any, Any], None],
) -> None:
    """Call ``function(item)`` for every item on `processes` worker interpreters and hand each
    ``(item, result)`` to `on_result` (in the calling thread, in completion order).

    The first exception raised by a call is re-raised here, after the workers are stopped.
    """
    work: queue.Queue[Any] = queue.Queue()
    count = 0
    for item in items:
        work.put(item)
        count += 1
    done: queue.Queue[tuple[str, Any, Any]] = queue.Queue()
    stop = threading.Event()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(worker_path(sys.path, os.getcwd()))}
    workers = [
        subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(processes)
    ]

    def feed(worker: subprocess.Popen[bytes]) -> None:
        assert worker.stdin is not None and worker.stdout is not None
        while not stop.is_set():
            try:
                item = work.get_nowait()
            except queue.Empty:
                break
            try:
                _send(worker.stdin, (function, item))  # type: ignore[arg-type]
                status, value = _receive(worker.stdout)  # type: ignore[arg-type]
            except (EOFError, BrokenPipeError, OSError):
                done.put(
                    ("died", item, WorkerDied(f"a worker process died (exit code {worker.poll()})"))
                )
                return
            done.put((status, item, value))
            if status != "ok":
                return

    threads = [threading.Thread(target=feed, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        remaining = count
        while remaining:
            status, item, value = done.get()
            remaining -= 1
            if status != "ok":
                raise value
            on_result(item, value)
            if not any(t.is_alive() for t in threads) and done.empty() and remaining:
                raise WorkerDied("worker processes stopped before finishing their work")
    finally:
        stop.set()
        for worker in workers:
            try:
                if worker.stdin:
                    worker.stdin.close()
            except OSError:
                pass
        for worker in workers:
            try:
                worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _serve() -> None:
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    # Nothing else may write to the result stream.
    sys.stdout = sys.stderr
    while True:
        try:
            function, item = _receive(stdin)
        except EOFError:
            return
        try:
            _send(stdout, ("ok", function(item)))
        except BaseException as exc:
            try:
                _send(stdout, ("error", exc))
            except Exception:
                _send(stdout, ("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
            if isinstance(exc, KeyboardInterrupt):
                return


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        _serve()
