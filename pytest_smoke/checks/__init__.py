"""Check types and the one function that runs any check.

Built-in dependency types are imported lazily by name so a run only loads the clients it uses.
Third-party types register through the ``pytest_smoke.checks`` entry point group (value: a
``check(spec, ctx)`` callable) or at run time with :func:`register_check_type`.
"""

from __future__ import annotations

import importlib
import time
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Union

from .base import CheckContext, CheckFailed, CheckResult, CheckTimeout, Deadline, run_with_deadline

CheckFunction = Callable[[Mapping[str, Any], CheckContext], Union[CheckResult, str, None]]

ENTRY_POINT_GROUP = "pytest_smoke.checks"
BUILTIN_TYPES = {
    "postgres": "pytest_smoke.checks.postgres",
    "redis": "pytest_smoke.checks.redis",
    "http": "pytest_smoke.checks.http",
    "amqp": "pytest_smoke.checks.amqp",
    "tcp": "pytest_smoke.checks.tcp",
}
# Slack past a check's own timeout before the outer guard gives up on a misbehaving check type.
GUARD_GRACE_SECONDS = 0.5

_registered: dict[str, CheckFunction] = {}

__all__ = [
    "CheckContext",
    "CheckFailed",
    "CheckResult",
    "CheckTimeout",
    "Deadline",
    "register_check_type",
    "resolve_check_type",
    "run_check",
]


def register_check_type(name: str, func: CheckFunction) -> None:
    """Make ``type: name`` usable in ``dependency_checks`` (e.g. from a conftest.py)."""
    _registered[name] = func


def known_types() -> list[str]:
    names = set(BUILTIN_TYPES) | set(_registered)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def resolve_check_type(name: str) -> CheckFunction:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_TYPES:
        return importlib.import_module(BUILTIN_TYPES[name]).check
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            func = ep.load()
            _registered[name] = func
            return func
    raise KeyError(name)


def run_check(kind: str, spec: Mapping[str, Any], ctx: CheckContext, budget: Deadline | None = None) -> CheckResult:
    """Run one configured check; raise CheckFailed if its target is unhealthy.

    ``budget`` is the whole run's deadline: a check still running when it runs out, or not yet
    started, is recorded as a timeout.
    """
    timeout = float(spec.get("timeout_seconds", 5))
    started = time.monotonic()
    grace = GUARD_GRACE_SECONDS
    if kind == "health":
        from .health import check as func
    elif kind == "critical_path":
        from ..paths import CLEANUP_SECONDS, run_path as func

        grace += CLEANUP_SECONDS if spec.get("cleanup") else 0
    else:
        func = resolve_check_type(spec["type"])
    # Built-ins keep their own deadline; the guard makes custom types keep it too.
    guard = Deadline(timeout + grace)
    budget_cut = budget is not None and budget.remaining() < guard.remaining()
    if budget_cut:
        guard = Deadline(budget.remaining())  # type: ignore[union-attr]
    try:
        if budget_cut and guard.expired:
            raise CheckTimeout(0)
        result = run_with_deadline(lambda: func(spec, ctx), guard, what=spec.get("name", kind))
    except CheckTimeout:
        if budget_cut and guard.expired:
            raise CheckFailed(
                f"{spec.get('name', kind)}: timed out: the run budget of {budget.seconds:g} s ran out",  # type: ignore[union-attr]
                kind="timeout",
            ) from None
        if guard.expired:  # the check overran its own timeout: report the configured one
            raise CheckTimeout(timeout, spec.get("name", kind)) from None
        raise
    if not isinstance(result, CheckResult):
        result = CheckResult(summary=str(result) if result else "OK")
    result.facts.setdefault("elapsed_ms", round((time.monotonic() - started) * 1000, 1))
    return result
