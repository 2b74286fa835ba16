"""The `curator` command line: a thin layer over the Python API.

Each command parses its options, calls one library function and prints the result. The group
and its error handling are in :mod:`curator.cli.app`, the shared options in
:mod:`curator.cli.options`, the output helpers in :mod:`curator.cli.output`; each command group
has its own module, imported here so that its commands register on :data:`cli`.
"""

from __future__ import annotations

# Importing a command module registers its commands on `cli`.
from curator.cli import (  # noqa: F401
    assemble,
    dedup,
    demo,
    export,
    infer,
    ingest,
    lineage,
    simulate,
    store,
    tokens,
)
from curator.cli.app import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="curator")


if __name__ == "__main__":  # pragma: no cover
    main()
