"""The hooks pytest-smoke adds (registered through ``pytest_addhooks``), as pytest-timeout offers
its own. They are the one extension model: a package adds a check type or a rollback handler by
shipping a pytest plugin (a ``pytest11`` entry point, or a conftest.py) that implements them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..checks import CheckFunction
    from ..cluster.rollback import Handler
    from ..model import Decision, RollbackResult, Verdict


@pytest.hookspec(firstresult=True)
def pytest_smoke_check_type(name: str) -> CheckFunction | None:
    """Return the check function for the dependency ``type: name``, or None if it is not yours.

    A check function is ``check(spec, ctx)``: ``spec`` is the config entry, ``ctx`` a
    :class:`pytest_smoke.CheckContext`. It returns a :class:`pytest_smoke.CheckResult` (or a summary
    string) and raises :class:`pytest_smoke.CheckFailed` when the service is unhealthy; any other
    exception means the check could not be evaluated. Called once per type, before any request.
    The built-in types answer last, so a plugin may replace one.
    """


@pytest.hookspec(firstresult=True)
def pytest_smoke_rollback_handler(name: str) -> Handler | None:
    """Return a rollback handler for ``rollback_strategy.type: name``, or None if it is not yours.

    A handler has ``plan(target, strategy)`` (read-only) and ``execute(plan, strategy, timeout,
    progress)``; see :mod:`pytest_smoke.cluster.rollback`. The built-ins answer last.
    """


@pytest.hookspec(firstresult=True)
def pytest_smoke_decision(config: pytest.Config, verdict: Verdict, decision: Decision) -> Decision | None:
    """Veto or adjust the rollback decision before anything is done.

    Return a :class:`pytest_smoke.verdict.Decision` to replace ``decision`` (for example
    ``Decision("vetoed", "change freeze: page the owner instead")``), or None to keep it.
    """


def pytest_smoke_rollback_result(
    config: pytest.Config, verdict: Verdict, decision: Decision, result: RollbackResult | None
) -> Any:
    """Called once per run after the decision was carried out, with the
    :class:`pytest_smoke.cluster.rollback.RollbackResult` (None when no rollback was called for)."""
