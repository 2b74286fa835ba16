"""Engines run an operation's pure per-task functions: locally on a process pool, or elsewhere.

See :mod:`curator.engine.base` for the seam (:class:`Engine`, :func:`get_engine`) and
:mod:`curator.engine.local` for the ``local`` engine.
"""

from curator.engine.base import Engine, EngineError
from curator.engine.registry import get_engine, using_engine

__all__ = ["Engine", "EngineError", "get_engine", "using_engine"]
