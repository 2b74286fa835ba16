"""Engines run an operation's pure per-task functions: locally on a process pool, or elsewhere.

- :mod:`curator.engine.base`: the seam — :class:`~curator.engine.base.Engine` (``map`` and a
  keyed ``exchange``) and what tasks need;
- :mod:`curator.engine.local`: the ``local`` engine, a process pool on this machine;
- :mod:`curator.engine.registry`: :func:`~curator.engine.registry.get_engine` by name
  (``--engine``, env `CURATOR_ENGINE`).

Nothing is imported here: a worker runs ``python -m curator.engine.local``, which must not be
imported before it runs.
"""
