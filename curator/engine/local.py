"""The ``local`` engine: a small process pool that needs no `if __name__ == "__main__":` guard in the caller.

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
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar

from curator.engine.base import Engine, name_failed_task

T = TypeVar("T")
R = TypeVar("R")

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


class _Worker:
    """One worker interpreter and the pipes to it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def call(self, function: Callable[[Any], Any], item: Any) -> tuple[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        _send(self.process.stdin, (function, item))  # type: ignore[arg-type]
        return _receive(self.process.stdout)  # type: ignore[arg-type]

    def stop(self) -> None:
        try:
            if self.process.stdin:
                self.process.stdin.close()
        except OSError:
            pass

    def wait(self) -> None:
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class LocalEngine(Engine):
    """The ``local`` engine: tasks run on up to `jobs` worker interpreters on this machine
    (default: all cores), or in this process when there is no parallel work (one task, one job,
    or a caller that says the work is small).

    Workers start on the first parallel :meth:`map` and are reused until :meth:`close`.
    Results come back in task order whatever order the workers finish in.

    >>> with LocalEngine(jobs=2) as engine:  # doctest: +SKIP
    ...     engine.map(abs, [-1, 2, -3])
    [1, 2, 3]
    """

    name = "local"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = (os.cpu_count() or 1) if jobs is None else max(1, jobs)
        self._workers: list[_Worker] = []

    def __repr__(self) -> str:
        return f"LocalEngine(jobs={self.jobs})"

    def map(
        self,
        function: Callable[[T], R],
        tasks: Sequence[T],
        *,
        on_result: Callable[[T, R], None] | None = None,
        small: bool = False,
        threads: bool = False,
    ) -> list[R]:
        tasks = list(tasks)
        processes = min(self.jobs, len(tasks))
        if processes <= 1 or small:
            return self._map_here(function, tasks, on_result)
        if threads:
            return self._map_on_threads(function, tasks, on_result, processes)
        return self._map_on_workers(function, tasks, on_result, processes)

    def _map_on_threads(
        self,
        function: Callable[[T], R],
        tasks: list[T],
        on_result: Callable[[T, R], None] | None,
        threads: int,
    ) -> list[R]:
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        results: list[Any] = [None] * len(tasks)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = {pool.submit(function, task): index for index, task in enumerate(tasks)}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    index = futures[future]
                    error = future.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        name_failed_task(error, index, len(tasks), tasks[index])
                        raise error
                    results[index] = future.result()
                    if on_result is not None:
                        on_result(tasks[index], results[index])
        return results

    def _map_here(
        self,
        function: Callable[[T], R],
        tasks: list[T],
        on_result: Callable[[T, R], None] | None,
    ) -> list[R]:
        results: list[R] = []
        for index, task in enumerate(tasks):
            try:
                result = function(task)
            except Exception as exc:
                name_failed_task(exc, index, len(tasks), task)
                raise
            results.append(result)
            if on_result is not None:
                on_result(task, result)
        return results

    def _map_on_workers(
        self,
        function: Callable[[T], R],
        tasks: list[T],
        on_result: Callable[[T, R], None] | None,
        processes: int,
    ) -> list[R]:
        if len(self._workers) < processes:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(worker_path(sys.path, os.getcwd()))}
            self._workers += [_Worker(env) for _ in range(processes - len(self._workers))]
        work: queue.Queue[int] = queue.Queue()
        for index in range(len(tasks)):
            work.put(index)
        done: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        stop = threading.Event()

        def feed(worker: _Worker) -> None:
            while not stop.is_set():
                try:
                    index = work.get_nowait()
                except queue.Empty:
                    break
                try:
                    status, value = worker.call(function, tasks[index])
                except (EOFError, BrokenPipeError, OSError):
                    code = worker.process.poll()
                    done.put(
                        ("died", index, WorkerDied(f"a worker process died (exit code {code})"))
                    )
                    return
                done.put((status, index, value))
                if status != "ok":
                    return

        threads = [
            threading.Thread(target=feed, args=(w,), daemon=True) for w in self._workers[:processes]
        ]
        for thread in threads:
            thread.start()
        results: dict[int, R] = {}
        try:
            while len(results) < len(tasks):
                try:
                    status, index, value = done.get(timeout=1)
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and done.empty():
                        raise WorkerDied(
                            "worker processes stopped before finishing their work"
                        ) from None
                    continue
                if status != "ok":
                    raise name_failed_task(value, index, len(tasks), tasks[index])
                results[index] = value
                if on_result is not None:
                    on_result(tasks[index], value)
        except BaseException:
            # Workers may be in the middle of a call: they are not reused.
            stop.set()
            self.close()
            raise
        for thread in threads:
            thread.join()
        return [results[index] for index in range(len(tasks))]

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.wait()


def _skip_pyarrow_pandas_probe() -> None:
    """Let PyArrow's "is this a pandas object?" probe find no pandas in this worker.

    The first array PyArrow builds from Python objects imports pandas to ask that (0.3–0.5 s of
    CPU in every worker, measured in docs/profile.md). Curator's tasks never hand PyArrow
    pandas objects, so the worker makes that first probe with pandas hidden. Nothing else
    changes: pandas stays importable, and PyArrow imports it again on the first call that needs
    it (``to_pandas``), after which it is used as usual.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    hidden = _HidePandas()
    sys.meta_path.insert(0, hidden)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(hidden)


class _HidePandas:
    """An import finder under which `import pandas` fails at once."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("hidden from PyArrow's probe", name=name)


def _serve() -> None:
    _skip_pyarrow_pandas_probe()
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
