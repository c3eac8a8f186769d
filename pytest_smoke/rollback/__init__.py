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

import os
import socket
import uuid

from ..kube import REJECTED, REJECTED_AT, REJECTED_REASON, DeploymentState, Kube, KubeError, LeaseHeld, Target, revision_of

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


class RollbackInterrupted(BaseException):
    """SIGTERM or SIGINT arrived while deciding or rolling back (raised by the controller's handler).

    A BaseException, like KeyboardInterrupt: no ``except Exception`` on the way may swallow it."""


FAILED_PREFIX = "ROLLBACK FAILED: alert ops team immediately"
HOLDER = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
LEASE_MARGIN_SECONDS = 30.0


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
    """``status``: completed, still_failing (rolled back, verification failed), failed, superseded
    (the Deployment changed since the checks: stood down), refused, dry_run,
    awaiting_confirmation, not_configured."""

    status: str
    message: str
    plan: Plan | None = None
    attempts: int = 0
    progress: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    confirmation: str = ""
    verification: str = ""
    notes: list[str] = field(default_factory=list)  # marks left on the cluster (rejected revision)


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
    return Target.from_settings(strategy)


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
    tested: DeploymentState | None = None,
    reason: str = "",
) -> RollbackResult:
    """Plan, confirm if ``action == "confirm"``, then execute with bounded attempts and a deadline.

    ``tested`` is what was deployed when the checks started: the rollback acts only while the
    Deployment still runs that pod template, so a fix deployed meanwhile is never reverted. Before
    changing anything it takes a lease on the Deployment, so a second smoke run that decides to
    roll back at the same time stands down instead of rolling back twice. The revision rolled away
    from is marked rejected (``reason``), so no later run rolls forward to it.
    """
    handler_name = strategy.get("type", "previous-image")
    if handler_name != "command" and not strategy.get("deployment"):
        return RollbackResult(
            "not_configured",
            "rollback_strategy.deployment is not set: nothing can be rolled back automatically",
        )
    timeout = float(auto_rollback.get("rollback_timeout_seconds", 60))
    target = target_from(strategy)
    if target is not None:
        target.request_timeout = min(target.request_timeout, timeout)
    try:
        handler = get_handler(handler_name)
        plan = handler.plan(target, strategy)
        moved_on = _moved_on(target, tested)
    except RollbackRefused as exc:
        return RollbackResult("refused", f"rollback refused: {exc}")
    except KubeError as exc:
        # A rollback is due (now or once confirmed) and the API cannot even be read: a human must
        # act, whether or not confirmation was configured. Only a dry run just reports it.
        if action == "dry_run":
            return RollbackResult("refused", f"cannot plan the rollback: {exc}")
        return RollbackResult("failed", f"{FAILED_PREFIX} (cannot plan the rollback: {exc})")
    if moved_on:
        return RollbackResult("superseded", moved_on, plan)

    if action == "dry_run":
        return RollbackResult("dry_run", "dry run (--smoke-no-rollback): nothing was changed", plan)
    confirmation = ""
    if action == "confirm":
        try:
            approved, confirmation = confirm(plan)
        except RollbackInterrupted as exc:
            approved, confirmation = False, f"{exc} while waiting for confirmation; nothing was rolled back"
        if not approved:
            return RollbackResult(
                "awaiting_confirmation", f"rollback awaiting ops confirmation ({confirmation})", plan, confirmation=confirmation
            )

    lease = None
    try:
        if target is not None:
            lease = Kube(target)
            lease.acquire_lease(HOLDER, timeout + LEASE_MARGIN_SECONDS)
    except LeaseHeld as exc:
        return RollbackResult("refused", f"standing down: {exc}", plan, confirmation=confirmation)
    except KubeError as exc:
        now = time.time()
        return RollbackResult("failed", f"{FAILED_PREFIX} ({exc})", plan, attempts=1, started_at=now, finished_at=now, confirmation=confirmation)
    try:
        result = _execute(handler, plan, strategy, timeout, confirmation, progress, target, tested)
        if result.plan is not None and result.plan.details.get("written"):
            note = _reject(result.plan, reason)
            if note:
                result.notes.append(note)
        return result
    finally:
        if lease is not None:
            try:
                lease.release_lease(HOLDER)
            except KubeError:
                pass  # it expires on its own


def _moved_on(target: Target | None, tested: DeploymentState | None) -> str:
    """Why the Deployment is no longer what the checks tested, or ""."""
    if target is None or tested is None:
        return ""
    now = Kube(target).state()
    if now.template == tested.template:
        return ""
    cause = f" ({now.change_cause})" if now.change_cause else ""
    return (
        f"standing down: {target.ref} changed since the checks started: {tested.describe()} -> "
        f"{now.describe()}{cause}; the checks tested {tested.describe()}, not what runs now"
    )


def _reject(plan: Plan, reason: str) -> str:
    """Mark the revision rolled away from, so no later run rolls forward to it."""
    if plan.target is None or plan.from_revision is None:
        return ""
    try:
        kube = Kube(plan.target)
        for replicaset in kube.replicasets(kube.deployment()):
            if revision_of(replicaset) == plan.from_revision:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                kube.annotate_replicaset(
                    replicaset["metadata"]["name"],
                    {REJECTED: "true", REJECTED_AT: stamp, REJECTED_REASON: (reason or "smoke checks failed")[:250]},
                )
                return f"marked revision {plan.from_revision} as rejected: it is never a rollback target again unless a green run verifies it"
    except KubeError as exc:
        return f"could not mark revision {plan.from_revision} as rejected: {exc}"
    return ""


def _execute(
    handler: Handler,
    plan: Plan,
    strategy: Mapping[str, Any],
    timeout: float,
    confirmation: str,
    progress: Callable[[str], None],
    target: Target | None,
    tested: DeploymentState | None,
) -> RollbackResult:
    result = RollbackResult("failed", "", plan, started_at=time.time(), confirmation=confirmation)

    def record(message: str) -> None:
        result.progress.append(message)
        progress(message)

    attempts = int(strategy.get("max_rollback_attempts", 1))
    deadline = time.monotonic() + timeout
    error = ""
    for attempt in range(1, attempts + 1):
        result.attempts = attempt
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = error or f"no time left within rollback_timeout_seconds ({timeout:g} s)"
            break
        try:
            if plan.details.get("written") and target is not None:
                # Our write went through; only the rollout did not finish: wait again, write nothing.
                Kube(target).wait_for_rollout(remaining, record)
                return _finish(result, "completed", "rollback complete")
            if attempt > 1 or confirmation:
                # Plan again from what runs now: a confirmation can take minutes, a retry follows
                # a failed write. What the checks tested must still be what runs.
                moved_on = _moved_on(target, tested)
                if moved_on:
                    return _finish(result, "superseded", moved_on)
                fresh = handler.plan(target, strategy)
                fresh.details["written"] = plan.details.get("written", False)
                result.plan = plan = fresh
            handler.execute(plan, strategy, remaining, record)
        except RollbackInterrupted as exc:
            error = f"{exc}: the rollout state is unknown; check {plan.target.ref if plan.target else 'the deployment'} now"
            break
        except (KubeError, RollbackError, RollbackRefused) as exc:
            error = str(exc)
            record(f"attempt {attempt}/{attempts} failed: {error}")
            try:
                moved_on = _moved_on(target, tested)
            except KubeError:
                moved_on = ""
            if moved_on and not plan.details.get("written"):
                return _finish(result, "superseded", moved_on)
            continue
        return _finish(result, "completed", "rollback complete")
    return _finish(result, "failed", f"{FAILED_PREFIX} ({error})")


def _finish(result: RollbackResult, status: str, message: str) -> RollbackResult:
    result.status, result.message, result.finished_at = status, message, time.time()
    return result


def guarded_patch(kube: Kube, plan: Plan, ops: list[dict[str, Any]]) -> None:
    """Apply ``ops`` only while the pod template is still the one the plan was made from.

    A ``test`` on the whole template, not on resourceVersion: a status update by the deployment
    controller (constant while pods crash-loop) must not block a rollback; a new deploy must.
    """
    guard = {"op": "test", "path": "/spec/template", "value": plan.details["live_template"]}
    try:
        kube.patch_deployment([guard, *ops], "application/json-patch+json")
    except KubeError as exc:
        if " 409 " in f" {exc} " or " 422 " in f" {exc} ":
            raise RollbackError(
                f"{plan.target.ref if plan.target else 'the deployment'} changed since the rollback was planned; "
                f"not overwriting it ({exc})"
            ) from None
        raise
    plan.details["written"] = True
