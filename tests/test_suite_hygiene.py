"""The suite's own promises: no test depends on timing."""

from __future__ import annotations

from hypothesis import settings


def test_hypothesis_runs_without_deadlines_everywhere():
    # Loaded in conftest.py before any test module is imported, so every @given inherits it.
    assert settings.default.deadline is None
