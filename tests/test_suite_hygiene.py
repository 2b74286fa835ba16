"""The suite's own promises: no test depends on timing."""

from __future__ import annotations

from hypothesis import settings


def test_hypothesis_runs_without_deadlines_everywhere():
    # Loaded in conftest.py before any test module is imported, so every @given inherits it.
    assert settings.default.deadline is None


def test_curator_asks_arrow_for_jemalloc_on_linux_unless_told_otherwise(monkeypatch):
    """Importing curator picks Arrow's jemalloc pool (assembly and small ingests measured faster
    with it than with the default), unless ARROW_DEFAULT_MEMORY_POOL says otherwise."""
    import sys

    import pytest

    from tests.conftest import run_python

    if not sys.platform.startswith("linux"):
        pytest.skip("curator leaves Arrow's default pool alone off Linux")
    code = "import curator, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    assert run_python(code).stdout.strip() == "jemalloc"
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    assert run_python(code).stdout.strip() == "system"
