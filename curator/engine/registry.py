"""Choosing an engine by name: ``--engine``, env `CURATOR_ENGINE`, or ``local``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from curator.engine.base import DEFAULT_ENGINE, ENGINE_ENV, ENGINES, NOT_YET, Engine, EngineError
from curator.engine.local import LocalEngine


def get_engine(
    name: str | None = None, *, jobs: int | None = None, address: str | None = None
) -> Engine:
    """The engine called `name` (default: env `CURATOR_ENGINE`, else ``local``).

    Args:
        name: ``local`` (a process pool on this machine).
        jobs: worker processes of the local engine (default: all cores).
        address: the Ray cluster to join (``--ray-address``, env `RAY_ADDRESS`); only with ``ray``.

    Raises:
        EngineError: an unknown name, an engine that is not available yet (``ray``), or an
            `address` with the local engine.

    >>> get_engine("local", jobs=2)  # doctest: +SKIP
    LocalEngine(jobs=2)
    """
    chosen = name if name is not None else os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE
    chosen = chosen.strip().lower()
    if chosen == "local":
        if address is not None:
            raise EngineError(
                "`--ray-address` needs `--engine ray`",
                "pass --engine ray, or drop --ray-address (Python: `address`)",
            )
        return LocalEngine(jobs=jobs)
    if chosen == "ray":
        # a local Ray, when one is started, gets `jobs` CPUs
        from curator.engine.ray import RayEngine

        return RayEngine(address=address, num_cpus=jobs)
    if chosen in NOT_YET:
        raise EngineError(NOT_YET[chosen], "use --engine local (the default)")
    source = f" (from {ENGINE_ENV})" if name is None else ""
    raise EngineError(
        f"unknown engine `{chosen}`{source}; the engines are: {', '.join(ENGINES)}",
        "use --engine local (the default)" + (f", or unset {ENGINE_ENV}" if name is None else ""),
    )


@contextmanager
def using_engine(engine: str | Engine | None, *, jobs: int | None = None) -> Iterator[Engine]:
    """The engine an operation runs on: `engine` itself when it is an :class:`Engine` (the
    caller closes it), else :func:`get_engine` of the name, closed when the block ends."""
    if isinstance(engine, Engine):
        yield engine
        return
    made = get_engine(engine, jobs=jobs)
    try:
        yield made
    finally:
        made.close()
