"""Rollback handlers and the one function that carries a rollback out safely.

A handler has two steps: ``plan`` (read-only: what would be rolled back, to what, and the exact
manual command) and ``execute`` (change the cluster). Dry runs and unconfirmed rollbacks stop
after ``plan``. Built-ins: ``previous-image``, ``rollout-undo``, ``command``. Other handlers come
from plugins through the ``pytest_smoke_rollback_handler`` hook; the pytest glue resolves them
and passes the handler to :func:`carry_out`.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import uuid
from typing import Any, Callable, Mapping, Protocol

from ...model import Plan, RollbackResult, RollbackStatus, Target
from ..kube import (
    REJECTED,
    REJECTED_AT,
    REJECTED_REASON,
    DeploymentState,
    Kube,
    KubeError,
    LeaseHeld,
    revision_of,
)

BUILTIN_HANDLERS = {
    "previous-image": "pytest_smoke.cluster.rollback.previous_image:PreviousImage",
    "rollout-undo": "pytest_smoke.cluster.rollback.rollout_undo:RolloutUndo",
    "command": "pytest_smoke.cluster.rollback.command:Command",
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


class Handler(Protocol):
    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan: ...

    def execute(self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]) -> None: ...


def builtin_handler(name: str) -> Handler | None:
    """A new instance of the built-in handler ``name``, or None."""
    if name not in BUILTIN_HANDLERS:
        return None
    module, _, cls = BUILTIN_HANDLERS[name].partition(":")
    handler: Handler = getattr(importlib.import_module(module), cls)()
    return handler


def get_handler(name: str) -> Handler:
    """A built-in handler by name; RollbackRefused for any other name."""
    handler = builtin_handler(name)
    if handler is None:
        raise RollbackRefused(f"unknown rollback_strategy.type {name!r} (built in: {', '.join(BUILTIN_HANDLERS)})")
    return handler


def target_from(strategy: Mapping[str, Any]) -> Target | None:
    return Target.from_settings(strategy)


def plan_rollback(strategy: Mapping[str, Any], handler: Handler | None = None) -> Plan:
    """Read-only: raises RollbackRefused or KubeError when no safe plan exists."""
    handler = handler or get_handler(strategy.get("type", "previous-image"))
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
    handler: Handler | None = None,
) -> RollbackResult:
    """Plan, confirm if ``action == "confirm"``, then execute with bounded attempts and a deadline.

    ``tested`` is what was deployed when the checks started: the rollback acts only while the
    Deployment still runs that pod template, so a fix deployed meanwhile is never reverted. Before
    changing anything it takes a lease on the Deployment, so a second smoke run that decides to
    roll back at the same time stands down instead of rolling back twice. The revision rolled away
    from is marked rejected (``reason``), so no later run rolls forward to it. ``handler`` is the
    one a plugin provided for ``strategy["type"]``; None means the built-in of that name.
    """
    handler_name = strategy.get("type", "previous-image")
    if handler_name in ("previous-image", "rollout-undo") and not strategy.get("deployment"):
        return RollbackResult(
            "not_configured",
            "rollback_strategy.deployment is not set: nothing can be rolled back automatically",
        )
    timeout = float(auto_rollback.get("rollback_timeout_seconds", 60))
    target = target_from(strategy)
    if target is not None:
        target.request_timeout = min(target.request_timeout, timeout)
    try:
        handler = handler or get_handler(handler_name)
        plan = handler.plan(target, strategy)
        moved_on = _moved_on(target, tested.template if tested is not None else None, plan)
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
    # What the checks tested; when it could not be recorded, what runs at planning time stands in.
    baseline = tested.template if tested is not None else plan.details.get("live_template")
    result = RollbackResult("failed", "", plan, started_at=time.time(), confirmation=confirmation)
    try:
        _execute(handler, result, strategy, timeout, progress, target, baseline, tested)
    finally:
        # From the first write on, nothing may lose what was done: a signal or an error here only
        # adds a note to the result that is reported.
        def release_lease() -> None:
            if lease is not None:
                lease.release_lease(HOLDER)

        def reject() -> None:
            _reject(result, reason, tested)

        for step, finish in (("marking the rejected revision", reject), ("releasing the rollback lease", release_lease)):
            try:
                finish()
            except RollbackInterrupted as exc:
                result.notes.append(f"{exc} while {step}")
            except Exception as exc:  # noqa: BLE001 - the lease expires on its own; the rest is a note
                result.notes.append(f"could not finish {step}: {exc.__class__.__name__}: {exc}")
    return result


def _moved_on(target: Target | None, baseline: dict[str, Any] | None, plan: Plan | None = None) -> str:
    """Why the Deployment no longer runs what was tested (``baseline``), or "".

    Our own write (the plan's target images with our change-cause) is not a move: a write whose
    answer was lost still counts as written.
    """
    if target is None or baseline is None:
        return ""
    now = Kube(target).state()
    if now.template == baseline:
        return ""
    if plan is not None and plan.target_images and _is_our_write(now, plan):
        plan.details["written"] = True
        return ""
    cause = f" ({now.change_cause})" if now.change_cause else ""
    was = "the tested revision"
    if plan is not None and plan.from_revision:
        images = ", ".join(plan.current_images.values())
        was = f"revision {plan.from_revision}" + (f" ({images})" if images else "")
    return (
        f"standing down: {target.ref} changed since the checks started: {was} -> "
        f"{now.describe()}{cause}; the checks did not test what runs now"
    )


def _is_our_write(now: DeploymentState, plan: Plan) -> bool:
    wanted = plan.target_images
    return all(now.images.get(name) == image for name, image in wanted.items()) and (
        not plan.details.get("live_template") or now.change_cause.startswith(CHANGE_CAUSE_PREFIX) or plan.handler == "command"
    )


CHANGE_CAUSE_PREFIX = "pytest-smoke rollback to revision"


def _reject(result: RollbackResult, reason: str, tested: DeploymentState | None) -> None:
    """Mark the revision rolled away from, so no later run rolls forward (or back) to it. A rejection
    wins over an earlier verification; only a later complete green run lifts it."""
    plan = result.plan
    if plan is None or plan.target is None or not plan.details.get("written"):
        return
    from_revision = plan.from_revision or (tested.revision if tested is not None else None)
    if not from_revision:
        return
    kube = Kube(plan.target)
    for replicaset in kube.replicasets(kube.deployment()):
        if revision_of(replicaset) != from_revision:
            continue
        if tested is not None and not _same_template(replicaset["spec"]["template"], tested.template):
            result.notes.append(f"not marking revision {from_revision} as rejected: it is not the revision the checks tested")
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        marks = {REJECTED: "true", REJECTED_AT: stamp, REJECTED_REASON: (reason or "smoke checks failed")[:250]}
        kube.annotate_replicaset(replicaset["metadata"]["name"], marks)
        result.notes.append(
            f"marked revision {from_revision} as rejected: it is never a rollback target again unless a green run verifies it"
        )
        return


def _same_template(replicaset_template: dict[str, Any], template: dict[str, Any]) -> bool:
    """A ReplicaSet's template carries the pod-template-hash label the Deployment's does not."""
    import copy

    clean = copy.deepcopy(replicaset_template)
    (clean.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    other = copy.deepcopy(template)
    (other.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    return clean == other


def _execute(
    handler: Handler,
    result: RollbackResult,
    strategy: Mapping[str, Any],
    timeout: float,
    progress: Callable[[str], None],
    target: Target | None,
    baseline: dict[str, Any] | None,
    tested: DeploymentState | None,
) -> None:
    def record(message: str) -> None:
        result.progress.append(message)
        progress(message)

    plan = result.plan
    assert plan is not None
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
            if attempt > 1 or result.confirmation:
                # Plan again from what runs now (a confirmation can take minutes, a retry follows a
                # failed write), but only while it is still what was tested.
                moved_on = _moved_on(target, baseline, plan)
                if moved_on:
                    _finish(result, "superseded", moved_on)
                    return
                if not plan.details.get("written"):
                    result.plan = plan = handler.plan(target, strategy)
            if plan.details.get("written") and target is not None:
                # Our write went through (its answer may have been lost): wait again, write nothing.
                Kube(target).wait_for_rollout(remaining, record)
                _finish(result, "completed", "rollback complete")
                return
            handler.execute(plan, strategy, remaining, record)
        except RollbackInterrupted as exc:
            error = f"{exc}: the rollout state is unknown; check {plan.target.ref if plan.target else 'the deployment'} now"
            break
        except Exception as exc:  # noqa: BLE001 - API errors, malformed API data, our own bugs: never lose the plan
            error = str(exc) if isinstance(exc, (KubeError, RollbackError, RollbackRefused)) else (
                f"internal error: {exc.__class__.__name__}: {exc}"
            )
            record(f"attempt {attempt}/{attempts} failed: {error}")
            try:
                moved_on = _moved_on(target, baseline, plan)
            except Exception:  # noqa: BLE001
                moved_on = ""
            if moved_on and not plan.details.get("written"):
                _finish(result, "superseded", moved_on)
                return
            continue
        _finish(result, "completed", "rollback complete")
        return
    _finish(result, "failed", f"{FAILED_PREFIX} ({error})")


def _finish(result: RollbackResult, status: RollbackStatus, message: str) -> RollbackResult:
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
        if exc.conflict:
            raise RollbackError(
                f"{plan.target.ref if plan.target else 'the deployment'} changed since the rollback was planned; "
                f"not overwriting it ({exc})"
            ) from None
        raise
    plan.details["written"] = True


def change_cause_op(kube: Kube, plan: Plan) -> dict[str, Any]:
    """The JSON patch op that says who changed the Deployment (``kubectl rollout history`` shows it),
    and lets a retry recognise its own write."""
    from ..kube import CHANGE_CAUSE, _pointer

    value = f"{CHANGE_CAUSE_PREFIX} {plan.to_revision}"
    annotations = kube.deployment()["metadata"].get("annotations")
    if annotations is None:
        return {"op": "add", "path": "/metadata/annotations", "value": {CHANGE_CAUSE: value}}
    return {"op": "add", "path": "/metadata/annotations/" + _pointer(CHANGE_CAUSE), "value": value}
