"""Shared fixtures: small inputs written into temp dirs, a fresh store, a CLI runner."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

import curator

os.environ.setdefault("CURATOR_LOCK_TIMEOUT", "20")

# No test may depend on timing: hypothesis's per-example deadline is off for every test (a busy
# 2-core machine makes a first example that imports scipy take a second), and the health check
# that times data generation is off for the same reason.
settings.register_profile(
    "curator",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("curator")


@pytest.fixture(scope="session", autouse=True)
def _warm_slow_imports() -> None:
    """Import the slow libraries once, before any test runs, so no test pays for them."""
    import numba  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.optimize  # noqa: F401


@pytest.fixture
def store(tmp_path: Path) -> curator.Store:
    return curator.init_store(tmp_path / "store")


#: Generations of the small demo that the demo and report tests share.
DEMO_GENERATIONS = 4


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small demo (text and digits, report included) for the whole run, through the CLI as a
    user would run it: its directory, its output and its demo.json."""
    from curator.cli import cli

    directory = tmp_path_factory.mktemp("demo") / "curator-demo"
    result = CliRunner().invoke(
        cli,
        [
            "demo", str(directory), "--generations", str(DEMO_GENERATIONS),
            "--text-rows", "200", "--digit-rows", "100", "--seed", "0",
        ],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((directory / "demo.json").read_text())
    return {"directory": directory, "output": result.output, "data": data}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, records: Iterable[dict[str, Any] | str | bytes]) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for record in records:
                if isinstance(record, bytes):
                    handle.write(record + b"\n")
                elif isinstance(record, str):
                    handle.write(record.encode() + b"\n")
                else:
                    handle.write(json.dumps(record).encode() + b"\n")
        return path

    return write


def png_bytes(
    color: tuple[int, int, int] = (200, 30, 30),
    size: tuple[int, int] = (16, 12),
    fmt: str = "PNG",
    **save: Any,
) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, color)
    # A little structure so that different colours and crops differ in pixels.
    for x in range(min(size[0], 4)):
        image.putpixel((x, 0), (x * 40, 255 - x * 40, 7))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


#: Seconds a test waits for a subprocess (a CLI run, a killed writer) before it fails: far above
#: what any takes on a loaded machine, so that a hang is a failure and never a stuck run.
SUBPROCESS_TIMEOUT = 300


def run_python(code: str, *, cwd: str | os.PathLike[str] | None = None) -> Any:
    """Run `code` in a new Python process of this interpreter, with this checkout importable;
    fails on a non-zero exit. Returns the CompletedProcess (text output captured)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run the CLI in-process and return the click Result."""
    from curator.cli import cli

    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One local Ray (2 CPUs) for the whole run, started when the first ray test asks for it and
    shut down at the end; its address (for subprocesses that join it). The engine uses a Ray
    already initialised in the process, and leaves it running."""
    import logging

    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        if started:
            ray.shutdown()


# -- object storage: one local S3-compatible server for the run ---------------------------------

#: What s3fs and boto read to reach the local server; nothing leaves the machine.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterable[str]:
    """One moto server (S3 API) on 127.0.0.1, on a free port, for the whole run: its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A new, empty bucket on the local server (named after the test), with the environment set
    so that `s3://` URLs reach it: ``AWS_ENDPOINT_URL`` and test credentials."""
    import re

    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:50].strip("-")
    s3fs.S3FileSystem().mkdir(bucket)
    return bucket


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With pytest-xdist (`-n 2 --dist loadgroup`, the README's test command), the tests that
    share an expensive session fixture run on one worker, so it is built once: the small demo,
    and the local Ray."""
    for item in items:
        if "demo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("demo"))
        elif item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


def pytest_configure(config: pytest.Config) -> None:
    """Refuses to spread the groups over workers: two local Rays on two cores crash or stall
    Ray (CI saw both). pytest-xdist groups by suffixing node ids, which pytest 9.2's structured
    node ids silently ignore (pytest-xdist issue #1386)."""
    from packaging.version import Version

    grouping = config.getoption("dist", "no") == "loadgroup"
    if grouping and Version(pytest.__version__).release[:2] >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} breaks pytest-xdist's --dist loadgroup (pytest-xdist "
            "issue #1386), and the Ray tests must share one worker; install the pytest range "
            "pyproject.toml names: pip install -e '.[test]'"
        )
