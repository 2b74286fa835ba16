"""Every command has help with an example and is in the README; the README's commands are CI's."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from curator.cli import cli
from tests.conftest import SUBPROCESS_TIMEOUT

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
        [sys.executable, str(ROOT / "cli.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert out.stdout.startswith("Usage: curator [OPTIONS] COMMAND [ARGS]...")


# One style for every command's --help (issue 11.10).

COMMANDS = [("", cli), *all_commands()]


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def _context(command: click.Command) -> click.Context:
    # as `curator … --help` makes it: the group's context settings (show_default) apply below it
    return click.Context(
        command, info_name=command.name, parent=click.Context(cli, **cli.context_settings)
    )


def _help_record(command: click.Command, option: click.Option) -> str:
    record = option.get_help_record(_context(command))
    assert record is not None
    return record[1]


@pytest.mark.parametrize(("name", "command"), COMMANDS)
def test_every_command_has_an_examples_block_of_its_own_command(name, command):
    assert command.help, f"`curator {name}` has no help text"
    text = inspect.cleandoc(command.help)
    assert "Example:" not in text, f"`curator {name}`: write `Examples:`"
    _, found, block = text.partition("\b\nExamples:\n")
    assert found, f"`curator {name}` --help has no `Examples:` block"
    lines = [line.strip() for line in block.split("\n\n")[0].splitlines()]
    assert lines, f"`curator {name}` has an empty `Examples:` block"
    own = f"curator {name}".rstrip()
    for line in lines:
        assert line == own or line.startswith(own + " "), (
            f"`curator {name}` example does not run that command: {line}"
        )


@pytest.mark.parametrize(("name", "command"), COMMANDS)
def test_every_option_shows_its_env_var_and_default(name, command):
    for option in _options(command):
        text = _help_record(command, option)
        if option.envvar:
            assert f"env var: {option.envvar}" in text, f"`curator {name}` {option.opts[0]}"
        default = option.get_default(_context(command), call=False)
        unset = default is None or default is getattr(click.core, "UNSET", None)
        has_default = (not unset and default not in (False, (), [])) or isinstance(
            option.show_default, str
        )
        if has_default:
            assert "default: " in text, f"`curator {name}` {option.opts[0]} hides its default"
        # A default goes in click's `[default: …]`, not in the prose.
        assert "(default" not in (option.help or ""), f"`curator {name}` {option.opts[0]}"


@pytest.mark.parametrize(("name", "command"), COMMANDS)
def test_store_is_the_same_first_option_everywhere(name, command):
    options = _options(command)
    stores = [o for o in options if "--store" in o.opts]
    if not stores:
        return
    (store,) = stores
    assert options[0] is store, f"`curator {name}`: --store is not its first option"
    assert (store.help, store.envvar, store.metavar) == (
        "The store directory.",
        "CURATOR_STORE",
        "DIR",
    )


@pytest.mark.parametrize(("name", "command"), COMMANDS)
def test_option_help_names_only_options_the_command_has(name, command):
    own = {opt for option in command.params for opt in option.opts + option.secondary_opts}
    for option in _options(command):
        for mentioned in re.findall(r"(?<![\w-])--[a-z][a-z-]*", option.help or ""):
            assert mentioned in own, f"`curator {name}` {option.opts[0]} mentions {mentioned}"


def test_init_takes_the_store_as_its_argument():
    (argument,) = [p for p in cli.commands["init"].params if isinstance(p, click.Argument)]
    assert argument.envvar == "CURATOR_STORE"
    assert _options(cli.commands["init"]) == []


def test_the_commands_that_run_tasks_take_the_same_engine_options():
    def engine_options(command: click.Command) -> list[tuple[object, ...]]:
        found = [o for o in _options(command) if {"--engine", "--ray-address"} & set(o.opts)]
        return [
            (o.opts, o.metavar, o.envvar, o.get_default(_context(command), call=False), o.help)
            for o in found
        ]

    taking = {name: engine_options(c) for name, c in all_commands() if engine_options(c)}
    assert sorted(taking) == ["assemble", "dedup", "infer", "ingest", "tag", "tokens"]
    (first, *others) = taking.values()
    assert all(options == first for options in others)
    assert [option[:4] for option in first] == [
        (["--engine"], "NAME", "CURATOR_ENGINE", "local"),
        (["--ray-address"], "ADDRESS", "RAY_ADDRESS", getattr(click.core, "UNSET", None)),
    ]
    assert "`pip install 'curator[ray]'`" in str(first[0][4])
