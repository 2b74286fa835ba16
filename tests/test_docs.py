"""Every command has help with an example and is in the README; the README's commands are CI's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from curator.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def all_commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        found.append((full, command))
        if isinstance(command, click.Group):
            found += all_commands(command, full + " ")
    return found


@pytest.mark.parametrize(("name", "command"), all_commands())
def test_every_command_has_help_with_an_example(name, command):
    assert command.help and "Example" in command.help, f"`curator {name}` --help has no example"


@pytest.mark.parametrize(("name", "command"), all_commands())
def test_every_command_is_in_the_readme(name, command):
    assert f"curator {name}" in README, f"`curator {name}` is not documented in README.md"


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", README, re.S)
    setup_and_demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "curator demo" in setup_and_demo
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, "the README's test command and .ci/run have drifted apart"


def test_cli_shim_runs_from_a_checkout():
    out = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--help"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("Usage: curator [OPTIONS] COMMAND [ARGS]...")
