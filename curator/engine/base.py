"""The engine seam: where an operation's tasks run, kept apart from what they do.

An operation plans its heavy work as *tasks* and a *per-task function* that is pure: its input and
its result are plain picklable values, and it reads and writes only Parquet (or other files) under
the store's staging directory or the output — never the catalog. An :class:`Engine` runs the
function over the tasks and hands the results back to the driver, which commits them; only the
driver opens the catalog.

Two primitives are enough for curator's operations:

- :meth:`Engine.map` — one call per task, results in task order;
- :meth:`Engine.exchange` — a keyed shuffle between Parquet files: every row is routed to the
  partition its key hashes to, so that a reducer task (an ordinary :meth:`Engine.map`) sees all the
  rows of one key. Near-duplicate band grouping and routing rows to output shards have this shape.

An engine for another place to run (a Ray cluster) implements :meth:`Engine.map` and, if it can
shuffle better than one map over the input files, :meth:`Engine.exchange`.

>>> from curator.engine.registry import get_engine
>>> with get_engine("local", jobs=1) as engine:
...     engine.map(abs, [-1, 2, -3])
[1, 2, 3]
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from curator.core.errors import CuratorError

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")
R = TypeVar("R")

#: The environment variable that names the engine when no `engine` argument (or `--engine`) does.
ENGINE_ENV = "CURATOR_ENGINE"
DEFAULT_ENGINE = "local"
#: Engine names a user can give.
ENGINES = ("local", "ray")
#: Engine names that are known but not available yet, with what to tell the user.
NOT_YET: dict[str, str] = {}


class EngineError(CuratorError):
    """An engine name that is not known, or an engine that is not available."""


def task_label(task: object) -> str:
    """A short name of a task for error messages: its ``label`` attribute, else its repr."""
    label = getattr(task, "label", None)
    if isinstance(label, str):
        return label
    text = repr(task)
    return text if len(text) <= 200 else text[:197] + "..."


def name_failed_task(exc: BaseException, index: int, count: int, task: object) -> BaseException:
    """`exc` (of the same type, with the same message) with a note naming the task it came
    from, so that the traceback says which task failed; a user-facing CuratorError keeps its
    message for the CLI."""
    exc.add_note(f"in task {index + 1} of {count}: {task_label(task)}")
    return exc


class Engine(ABC):
    """Runs pure per-task functions. Use it as a context manager (or call :meth:`close`): an
    engine may hold workers between calls, which are reused within one command."""

    #: the name users give with ``--engine`` / `CURATOR_ENGINE`
    name: str = ""

    @abstractmethod
    def map(
        self,
        function: Callable[[T], R],
        tasks: Sequence[T],
        *,
        on_result: Callable[[T, R], None] | None = None,
        small: bool = False,
        threads: bool = False,
    ) -> list[R]:
        """Call ``function(task)`` for every task and return the results in task order.

        Args:
            function: a picklable, pure function (a module-level function or a
                :func:`functools.partial` of one with picklable arguments).
            tasks: picklable inputs.
            on_result: called in this process with ``(task, result)`` as each task completes,
                in completion order (for progress only: what is committed must come from the
                returned list, whose order does not depend on timing).
            small: the caller knows the work is too small to be worth dispatching: it may run
                in this process.
            threads: the function spends its time outside the GIL (numba kernels, Arrow
                compression): an engine on this machine may run the tasks on threads of this
                process instead of worker processes (no interpreters to start, no memory to
                copy). Engines that spread work over machines ignore it.

        Raises:
            The first exception a task raised, with a note naming the task; the remaining tasks
            are abandoned.
        """

    def exchange(
        self,
        files: Sequence[str],
        *,
        key: Sequence[str],
        partitions: int,
        out_dir: str,
    ) -> list[list[str]]:
        """Route the rows of Parquet `files` to `partitions` partitions by a hash of the `key`
        columns, so that all rows with one key land in one partition.

        Each input file is one mapper task that writes ``out_dir/<partition>/<file no>.parquet``;
        rows keep their input order within each output file.

        Returns:
            For each partition, its files in input order (a reducer reads them as one table).
        """
        tasks = [
            ExchangeTask(index, path, tuple(key), partitions, out_dir)
            for index, path in enumerate(files)
        ]
        written = self.map(partition_file, tasks)
        return [
            [path for parts in written if (path := parts[k]) is not None] for k in range(partitions)
        ]

    def close(self) -> None:  # noqa: B027 - most engines hold nothing
        """Release what the engine holds (worker processes, connections)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class ExchangeTask:
    """One mapper of :meth:`Engine.exchange`: split one Parquet file by key."""

    index: int
    path: str
    key: tuple[str, ...]
    partitions: int
    out_dir: str

    @property
    def label(self) -> str:
        return f"exchange of `{self.path}`"


def partition_of(table: pa.Table, key: Sequence[str], partitions: int) -> Any:
    """The partition (0 … `partitions` - 1) of every row of `table`, as a numpy array: a hash of
    the key columns that is the same in every process and on every machine running this
    version of curator (and of polars, whose row hash it is)."""
    import numpy as np
    import polars as pl

    frame = pl.from_arrow(table.select(list(key)))
    assert isinstance(frame, pl.DataFrame)
    hashes = frame.hash_rows(seed=0).to_numpy()
    return (hashes % np.uint64(partitions)).astype(np.int64)


def partition_file(task: ExchangeTask) -> list[str | None]:
    """Mapper of :meth:`Engine.exchange` (pure: reads one Parquet file, writes Parquet files)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(task.path)
    routes = partition_of(table, task.key, task.partitions)
    order = np.argsort(routes, kind="stable")
    routes = routes[order]
    table = table.take(pa.array(order))
    bounds = np.searchsorted(routes, np.arange(task.partitions + 1))
    written: list[str | None] = []
    for k in range(task.partitions):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi == lo:
            written.append(None)
            continue
        directory = os.path.join(task.out_dir, f"{k:05d}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{task.index:05d}.parquet")
        pq.write_table(table.slice(lo, hi - lo), path)
        written.append(path)
    return written
