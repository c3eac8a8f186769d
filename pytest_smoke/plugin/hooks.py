"""Hooks pytest-smoke adds for users (registered through ``pytest_addhooks``)."""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=True)
def pytest_smoke_decision(config, verdict, decision):
    """Veto or adjust the rollback decision before anything is done.

    Return a :class:`pytest_smoke.verdict.Decision` to replace ``decision`` (for example
    ``Decision("vetoed", "change freeze: page the owner instead")``), or None to keep it.
    """


def pytest_smoke_rollback_result(config, verdict, decision, result):
    """Called once per run after the decision was carried out, with the
    :class:`pytest_smoke.rollback.RollbackResult` (None when no rollback was called for)."""
