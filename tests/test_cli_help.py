"""`import curator` and every `curator … --help` load none of the heavy libraries (issue 11.6).

Each check runs in a fresh interpreter, so what the test process already imported does not count.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import click

from tests.conftest import run_python

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pyarrow", "numpy", "duckdb", "polars")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return run_python(code)


def _heavy_loaded(after: str) -> list[str]:
    """The heavy modules in sys.modules after running `after` in a fresh interpreter."""
    code = f"""
import json, sys
{after}
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    return json.loads(_run(code).stdout.splitlines()[-1])


def test_import_curator_loads_no_heavy_library():
    assert _heavy_loaded("import curator") == []


def test_the_public_names_still_load_on_first_use():
    code = """
import curator
assert curator.Store.__name__ == "Store" and callable(curator.tag) and callable(curator.init_store)
assert {"Store", "Policy", "Manifest", "ShortfallError", "tag"} <= set(dir(curator))
assert all(hasattr(curator, name) for name in curator.__all__)
try:
    curator.no_such_name
except AttributeError as exc:
    print(exc)
"""
    assert _run(code).stdout == "module 'curator' has no attribute 'no_such_name'\n"


def test_python_m_curator_help_loads_no_heavy_library():
    loaded = _heavy_loaded(
        """
import runpy
sys.argv = ["curator", "--help"]
try:
    runpy.run_module("curator", run_name="__main__")
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""
    )
    assert loaded == []


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append([*prefix, name])
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


def test_every_subcommand_help_loads_no_heavy_library():
    from curator.cli import cli

    paths = _command_paths(cli)
    assert ["ingest"] in paths and ["model", "register"] in paths
    loaded = _heavy_loaded(
        f"""
from curator.cli import main
for path in {paths!r}:
    sys.argv = ["curator", *path, "--help"]
    try:
        main()
    except SystemExit as exc:
        assert exc.code == 0, (path, exc.code)
"""
    )
    assert loaded == []


def test_cli_input_formats_are_the_readers():
    from curator.cli.options import INPUT_FORMATS
    from curator.ingest.readers import INPUT_FORMATS as READER_FORMATS

    assert INPUT_FORMATS == READER_FORMATS
