"""The one exception hierarchy of curator.

Every error a user can cause is a :class:`CuratorError` whose message names the offending file,
column, row or constraint in backticks and whose ``hint`` says how to fix it. The CLI prints
``Error: <message>`` and ``Hint: <hint>`` and exits 1; anything else is a bug.
"""

from __future__ import annotations


class CuratorError(Exception):
    """Base class of every user-facing error.

    Args:
        message: what is wrong, naming the file, column, row or constraint in backticks.
        hint: how to fix it (printed after ``Hint:``), or ``None``.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message


class StoreError(CuratorError):
    """The store is missing, malformed, or of an incompatible version."""


class StoreLockedError(StoreError):
    """Another process holds the store's write lock (or the catalog) for longer than the timeout."""


class InputError(CuratorError):
    """An input cannot be used at all (missing path, unknown format, conflicting options)."""


class ProvenanceError(CuratorError):
    """Provenance flags contradict each other or the provenance schema."""


class IngestFailed(CuratorError):
    """A run failed as a whole (for example ``--strict`` with rejected records); nothing was committed."""


class QueryError(CuratorError):
    """A SQL query given to ``curator sql`` failed."""


def did_you_mean(name: str, names: list[str]) -> str:
    """``"did you mean `x`? "`` for the closest of `names` to a mistyped `name`, else ``""``:
    the start of a hint."""
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""
