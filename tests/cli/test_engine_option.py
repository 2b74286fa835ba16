"""`--engine` (env CURATOR_ENGINE) and `--ray-address` (env RAY_ADDRESS) on the five commands
that run their work on an engine."""

from __future__ import annotations

import json

import pytest

from curator.engine.base import EngineError
from curator.engine.registry import get_engine
from tests.conftest import invoke

POLICY = """
name = "small"
seed = 1
[target]
rows = 20
[constraints]
min_real_fraction = 0.5
[output]
shard_rows = 10
"""


@pytest.fixture(autouse=True)
def _no_engine_in_the_environment(monkeypatch):
    monkeypatch.delenv("CURATOR_ENGINE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture
def made(runner, tmp_path, write_jsonl):
    """A store with 40 real samples, an input file and a policy: the arguments of each command
    after its name."""
    store = tmp_path / "store"
    assert invoke(runner, "init", str(store)).exit_code == 0
    path = write_jsonl("a.jsonl", [{"text": f"sample number {i}"} for i in range(40)])
    (tmp_path / "p.toml").write_text(POLICY)
    at = ["--store", str(store)]
    return {
        "store": store,
        "ingest": [str(path), *at, "--source", "web", "--origin", "real"],
        "tag": [
            str(path),
            "--out",
            str(tmp_path / "tagged"),
            "--source",
            "web",
            "--origin",
            "real",
        ],
        "dedup": at,
        "infer": at,
        "assemble": [*at, "--policy", str(tmp_path / "p.toml"), "--out", str(tmp_path / "set")],
    }


COMMANDS = ["ingest", "tag", "dedup", "infer", "assemble"]


def _error(exc: EngineError) -> str:
    return f"Error: {exc.message}\nHint: {exc.hint}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_engine_is_an_error_naming_it(runner, made, command):
    with pytest.raises(EngineError) as expected:
        get_engine("nosuch")
    result = invoke(runner, command, *made[command], "--engine", "nosuch")
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown engine `nosuch`; the engines are: local")
    assert result.output == _error(expected.value)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_engine_from_the_environment_says_so(runner, made, command, monkeypatch):
    monkeypatch.setenv("CURATOR_ENGINE", "nosuch")
    with pytest.raises(EngineError) as expected:
        get_engine(None)
    result = invoke(runner, command, *made[command], env={"CURATOR_ENGINE": "nosuch"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown engine `nosuch` (from CURATOR_ENGINE)")
    assert result.output == _error(expected.value)


def test_a_failed_engine_leaves_the_store_as_it_was(runner, made, tmp_path):
    result = invoke(runner, "ingest", *made["ingest"], "--engine", "nosuch")
    assert result.exit_code == 1
    out = invoke(runner, "sql", "SELECT count(*) AS n FROM runs", "--store", str(made["store"]))
    assert out.output == "n\n-\n0\n(1 row)\n"
    assert invoke(runner, "tag", *made["tag"], "--engine", "nosuch").exit_code == 1
    assert not (tmp_path / "tagged").exists()


@pytest.mark.parametrize("command", ["ingest", "assemble"])
def test_a_ray_address_needs_the_ray_engine(runner, made, command):
    result = invoke(runner, command, *made[command], "--ray-address", "ray://head:10001")
    assert result.exit_code == 1
    assert result.output == (
        "Error: `--ray-address` needs `--engine ray`\n"
        "Hint: pass --engine ray, or drop --ray-address (Python: `address`)\n"
    )


def test_every_command_runs_on_the_local_engine(runner, made, tmp_path):
    # RAY_ADDRESS is Ray's own variable: set for other tools, it does not stop the local engine.
    env = {"RAY_ADDRESS": "ray://head:10001"}
    outputs = {}
    for command in COMMANDS:
        result = invoke(runner, command, *made[command], "--engine", "local", "--json", env=env)
        assert result.exit_code == 0, (command, result.output)
        outputs[command] = json.loads(result.output)
    assert outputs["ingest"]["ingested"] == 40
    assert outputs["tag"]["written"] == 40
    assert (outputs["infer"]["examined"], outputs["infer"]["relabelled"]) == (40, 0)
    manifest = outputs["assemble"]
    assert manifest["composition"]["overall"]["rows"] == 20
    out = tmp_path / "set"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "manifest.json",
    ]


def test_the_engine_from_the_environment_is_used(runner, made):
    result = invoke(runner, "ingest", *made["ingest"], env={"CURATOR_ENGINE": "local"})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[3].startswith("  ingested             40")
