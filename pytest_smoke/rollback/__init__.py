"""Rollback handlers and the one function that carries a rollback out safely.

A handler has two steps: ``plan`` (read-only: what would be rolled back, to what, and the exact
manual command) and ``execute`` (change the cluster). Dry runs and unconfirmed rollbacks stop
after ``plan``. Built-ins: ``previous-image``, ``rollout-undo``, ``command``. Third-party handlers
register through the ``pytest_smoke.rollback`` entry point group (value: a handler class).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Protocol

from ..kube import KubeError, Target

ENTRY_POINT_GROUP = "pytest_smoke.rollback"
BUILTIN_HANDLERS = {
    "previous-image": "pytest_smoke.rollback.previous_image:PreviousImage",
    "rollout-undo": "pytest_smoke.rollback.rollout_undo:RolloutUndo",
    "command": "pytest_smoke.rollback.command:Command",
}


class RollbackRefused(Exception):
    """Rolling back would be unsafe or impossible (paused Deployment, no earlier revision)."""


class RollbackError(Exception):
    """The rollback was attempted and did not complete."""


@dataclass
class Plan:
    handler: str
    target: Target | None
    manual_command: str
    from_revision: int | None = None
    to_revision: int | None = None
    current_images: dict[str, str] = field(default_factory=dict)
    target_images: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RollbackResult:
    """``status``: completed, failed, refused, dry_run, awaiting_confirmation, not_configured."""

    status: str
    message: str
    plan: Plan | None = None
    attempts: int = 0
    progress: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    confirmation: str = ""
    verification: str = ""


class Handler(Protocol):
    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan: ...

    def execute(self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]) -> None: ...


def get_handler(name: str) -> Handler:
    if name in BUILTIN_HANDLERS:
        module, _, cls = BUILTIN_HANDLERS[name].partition(":")
        return getattr(importlib.import_module(module), cls)()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()()
    known = sorted(set(BUILTIN_HANDLERS) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
    raise RollbackRefused(f"unknown rollback_strategy.type {name!r} (known: {', '.join(known)})")


def target_from(strategy: Mapping[str, Any]) -> Target | None:
    if not strategy.get("deployment"):
        return None
    return Target(
        deployment=strategy["deployment"],
        namespace=strategy.get("namespace", "default"),
        container=strategy.get("container"),
        context=strategy.get("context"),
        kubeconfig=strategy.get("kubeconfig"),
    )


def plan_rollback(strategy: Mapping[str, Any]) -> Plan:
    """Read-only: raises RollbackRefused or KubeError when no safe plan exists."""
    handler = get_handler(strategy.get("type", "previous-image"))
    return handler.plan(target_from(strategy), strategy)


def carry_out(
    action: str,
    strategy: Mapping[str, Any],
    auto_rollback: Mapping[str, Any],
    *,
    confirm: Callable[[Plan], tuple[bool, str]],
    progress: Callable[[str], None] = lambda message: None,
) -> RollbackResult:
    """Plan, confirm if ``action == "confirm"``, then execute with bounded attempts and a deadline."""
    handler_name = strategy.get("type", "previous-image")
    if handler_name != "command" and not strategy.get("deployment"):
        return RollbackResult(
            "not_configured",
            "rollback_strategy.deployment is not set: nothing can be rolled back automatically",
        )
    try:
        handler = get_handler(handler_name)
        plan = handler.plan(target_from(strategy), strategy)
    except RollbackRefused as exc:
        return RollbackResult("refused", f"rollback refused: {exc}")
    except KubeError as exc:
        status = "failed" if action == "rollback" else "refused"
        return RollbackResult(status, f"cannot plan the rollback: {exc}")

    if action == "dry_run":
        return RollbackResult("dry_run", "dry run (--smoke-no-rollback): nothing was changed", plan)
    confirmation = ""
    if action == "confirm":
        approved, confirmation = confirm(plan)
        if not approved:
            return RollbackResult(
                "awaiting_confirmation", f"rollback awaiting ops confirmation ({confirmation})", plan, confirmation=confirmation
            )

    result = RollbackResult("failed", "", plan, started_at=time.time(), confirmation=confirmation)

    def record(message: str) -> None:
        result.progress.append(message)
        progress(message)

    attempts = int(strategy.get("max_rollback_attempts", 1))
    timeout = float(auto_rollback.get("rollback_timeout_seconds", 60))
    deadline = time.monotonic() + timeout
    error = ""
    for attempt in range(1, attempts + 1):
        result.attempts = attempt
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = error or f"no time left within rollback_timeout_seconds ({timeout:g} s)"
            break
        try:
            handler.execute(plan, strategy, remaining, record)
        except (KubeError, RollbackError, RollbackRefused) as exc:
            error = str(exc)
            record(f"attempt {attempt}/{attempts} failed: {error}")
            continue
        result.status = "completed"
        result.message = "rollback complete"
        result.finished_at = time.time()
        return result
    result.finished_at = time.time()
    result.message = f"ROLLBACK FAILED: alert ops team immediately ({error})"
    return result
