"""The ``ray`` engine: tasks run as Ray remote tasks, on a Ray cluster or a local Ray.

Ray is an optional dependency (``pip install 'curator[ray]'``), imported only when the engine
first runs work. The per-task functions are curator's own (its readers, its signature code): a
malformed input line stays a reject with its line number, never a failed job. Tasks read and
write Parquet under the store's staging directory, which every node must see at the same path
(a shared POSIX filesystem); only this process, the driver, opens the catalog and commits.

Where Ray runs:

- Ray already initialised in this process (a notebook, a test session): it is used as it is
  and left running;
- an address (``--ray-address``, else Ray's own `RAY_ADDRESS`): the driver joins that cluster;
  the nodes need curator installed (the same version);
- neither: a local Ray is started for the command with the machine's cores, quietly (no
  dashboard, workers' output not forwarded), and shut down when the engine closes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from curator.engine.base import Engine, EngineError, name_failed_task

T = TypeVar("T")
R = TypeVar("R")

#: Ray's environment variable for the cluster to join.
RAY_ADDRESS_ENV = "RAY_ADDRESS"
#: How often Ray runs a task again when its worker process died (killed, out of memory, node
#: lost). An exception raised by the task itself is not retried: it is the task's answer.
MAX_RETRIES = 3
INSTALL_HINT = "pip install 'curator[ray]'"


def import_ray() -> Any:
    """The `ray` module, or an :class:`EngineError` with the install line."""
    try:
        import ray
    except ImportError:
        raise EngineError(
            "the `ray` engine needs Ray, which is not installed", INSTALL_HINT
        ) from None
    return ray


def run_task(function: Callable[[Any], Any], task: Any) -> tuple[str, Any]:
    """The body of every remote task: ``("ok", result)``, or ``("error", exception)`` so that
    the driver re-raises the task's own exception (type, message, hint) rather than Ray's
    wrapper of it."""
    try:
        return "ok", function(task)
    except Exception as exc:
        import pickle

        try:
            pickle.dumps(exc)
        except Exception:
            return "error", RuntimeError(f"{type(exc).__name__}: {exc}")
        return "error", exc


class RayEngine(Engine):
    """The ``ray`` engine.

    Args:
        address: the Ray cluster to join (``ray://…`` or ``host:port``); default Ray's
            `RAY_ADDRESS`, else a local Ray started for this engine.
        num_cpus: CPUs of a local Ray this engine starts (default: the machine's cores).

    Ray is connected on the first :meth:`map` that dispatches work, not before: a command
    whose work is small (``small=True``) runs it in this process and never starts Ray.

    >>> with RayEngine(num_cpus=2) as engine:  # doctest: +SKIP
    ...     engine.map(abs, [-1, 2, -3])
    [1, 2, 3]
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import_ray()  # fail now, with the install line, rather than in the middle of a run
        self.address = address or os.environ.get(RAY_ADDRESS_ENV) or None
        self.num_cpus = num_cpus
        self._started = False
        self._remote: Any = None

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else f"num_cpus={self.num_cpus}"
        return f"RayEngine({where})"

    def _connect(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
            if self.address:
                try:
                    ray.init(address=self.address, **quiet)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise EngineError(
                        f"cannot join the Ray cluster at `{self.address}`: {exc}",
                        "check --ray-address (or RAY_ADDRESS), or drop it to start a local Ray",
                    ) from None
            else:
                # "local": a new Ray even when another one runs on this machine (Ray would
                # otherwise join the last cluster started here, someone else's perhaps).
                ray.init(
                    address="local",
                    num_cpus=self.num_cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    **quiet,
                )
            self._started = True
        if self._remote is None:
            self._remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(run_task)
        return ray

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
        if small or not tasks:
            from curator.engine.local import LocalEngine

            return LocalEngine(jobs=1).map(function, tasks, on_result=on_result)
        ray = self._connect()
        refs = [self._remote.remote(function, task) for task in tasks]
        index_of = {ref: index for index, ref in enumerate(refs)}
        results: dict[int, Any] = {}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    index = index_of[ref]
                    try:
                        status, value = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        # the task could not run to the end: its worker died more often
                        # than it is retried, or the cluster lost it
                        raise name_failed_task(exc, index, len(tasks), tasks[index]) from None
                    if status != "ok":
                        raise name_failed_task(value, index, len(tasks), tasks[index])
                    results[index] = value
                    if on_result is not None:
                        on_result(tasks[index], value)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            raise
        return [results[index] for index in range(len(tasks))]

    def close(self) -> None:
        """Disconnect from Ray if this engine connected (which stops a local Ray it started)."""
        if self._started:
            self._started = False
            self._remote = None
            ray = import_ray()
            ray.shutdown()
