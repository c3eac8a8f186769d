"""Rollback handlers and the one function that carries a rollback out safely.

A handler has two steps: ``plan`` (read-only: what would be rolled back, to what, and the exact
manual command) and ``execute`` (change the cluster). Dry runs and unconfirmed rollbacks stop
after ``plan``. Built-ins: ``previous-image``, ``rollout-undo``, ``command``. Other handlers come
from plugins through the ``pytest_smoke_rollback_handler`` hook; the pytest glue resolves them
and passes the handler to :func:`carry_out`.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import time
import uuid
from typing import Any, Callable, Mapping, Protocol

from ...model import Plan, RollbackResult, RollbackStatus, Target
from ...settings import AutoRollback, RollbackStrategy
from ..kube import (
    CHANGE_CAUSE,
    READ_BACK_SECONDS,
    REJECTED,
    ROLLED_BACK_FROM,
    ROLLED_BACK_FROM_KEPT,
    DeploymentState,
    Kube,
    KubeError,
    LeaseHeld,
    _annotation_ops,
    allow_read_back,
    rolled_back_from,
)
from ..marks import reject as mark_rejected

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


def new_holder() -> str:
    """Who this rollback is: the lease holder and the change-cause name it, and only it."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


LEASE_MARGIN_SECONDS = 30.0


class Handler(Protocol):
    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan: ...

    def execute(
        self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]
    ) -> None: ...


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
    handler = handler or get_handler(RollbackStrategy.of(strategy).type)
    return handler.plan(target_from(strategy), strategy)


def carry_out(
    action: str,
    strategy: Mapping[str, Any],
    auto_rollback: Mapping[str, Any],
    *,
    confirm: Callable[[Plan], tuple[bool, str]],
    progress: Callable[[str], None] = lambda message: None,
    tested: DeploymentState | None = None,
    tested_error: str = "",
    reason: str = "",
    handler: Handler | None = None,
) -> RollbackResult:
    """Plan, confirm if ``action == "confirm"``, then execute with bounded attempts and a deadline.

    ``tested`` is what was deployed, settled, when the checks started: the rollback acts only while
    the Deployment still runs that pod template, so a fix deployed meanwhile is never reverted, and
    without it (``tested_error`` says why it could not be read) nothing is written. Before changing
    anything it takes a lease on the Deployment, so a second smoke run that decides to roll back at
    the same time stands down instead of rolling back twice. The revision rolled away from is marked
    rejected (``reason``), so no later run rolls forward to it. ``handler`` is the one a plugin
    provided for ``strategy["type"]``; None means the built-in of that name.
    """
    handler_name = RollbackStrategy.of(strategy).type
    if handler_name in ("previous-image", "rollout-undo") and not strategy.get("deployment"):
        missing = "rollback_strategy.deployment is not set: nothing can be rolled back automatically"
        if action == "dry_run":
            return RollbackResult("dry_run", f"dry run (--smoke-no-rollback): {missing}")
        return RollbackResult("not_configured", f"ROLLBACK NOT POSSIBLE: {missing}")
    timeout = float(AutoRollback.of(auto_rollback).rollback_timeout_seconds)
    target = target_from(strategy)
    if target is not None:
        target.request_timeout = min(target.request_timeout, timeout)
        target.deadline = time.monotonic() + timeout
    planned = _plan_while_tested(action, handler, handler_name, target, strategy, tested, tested_error)
    if isinstance(planned, RollbackResult):
        return planned
    handler, plan = planned
    holder = plan.details["holder"]

    if action == "dry_run":
        return RollbackResult("dry_run", "dry run (--smoke-no-rollback): nothing was changed", plan)
    confirmation = ""
    if action == "confirm":
        approved, confirmation = _ops_approval(confirm, plan)
        if not approved:
            return RollbackResult(
                "awaiting_confirmation",
                f"rollback awaiting ops confirmation ({confirmation})",
                plan,
                confirmation=confirmation,
            )
        if target is not None:  # the wait for ops is not the rollback's time
            target.deadline = time.monotonic() + timeout

    lease = _take_lease(target, holder, timeout, plan, confirmation)
    if isinstance(lease, RollbackResult):
        return lease
    result = RollbackResult("failed", "", plan, started_at=time.time(), confirmation=confirmation)
    try:
        _execute(handler, result, strategy, timeout, progress, target, tested)
    finally:
        # From the first write on, nothing may lose what was done: a signal or an error here only
        # changes what is reported, never what was written.
        _mark_and_release(result, plan, target, tested, reason, lease, holder)
    return result


def _plan_while_tested(
    action: str,
    handler: Handler | None,
    handler_name: str,
    target: Target | None,
    strategy: Mapping[str, Any],
    tested: DeploymentState | None,
    tested_error: str,
) -> tuple[Handler, Plan] | RollbackResult:
    """The handler and its plan, made only while the Deployment runs what the checks tested; or
    the result that ends the rollback here (refused, failed to plan, superseded)."""
    try:
        handler = handler or get_handler(handler_name)
        plan = handler.plan(target, strategy)
        plan.details["holder"] = new_holder()
        if target is not None and tested is None:
            raise RollbackRefused(
                f"the revision the checks tested was not recorded ({tested_error or 'no answer'}): "
                f"rolling back without it could revert a fix deployed meanwhile"
            )
        if tested is not None and tested.unsettled:
            raise RollbackRefused(f"the checks cannot be attributed to one revision ({tested.unsettled})")
        moved_on = _moved_on(target, tested, plan)
    except RollbackRefused as exc:
        if action == "dry_run":
            return RollbackResult("dry_run", f"dry run (--smoke-no-rollback): a real run would refuse: {exc}")
        return RollbackResult("refused", f"{REFUSED_PREFIX}: {exc}")
    except KubeError as exc:
        # A rollback is due (now or once confirmed) and the API cannot even be read: a human must
        # act, whether or not confirmation was configured. Only a dry run just reports it.
        if action == "dry_run":
            return RollbackResult("dry_run", f"dry run (--smoke-no-rollback): cannot plan the rollback: {exc}")
        return RollbackResult("failed", f"{FAILED_PREFIX} (cannot plan the rollback: {exc})")
    if moved_on:
        return RollbackResult("superseded", moved_on, plan)
    return handler, plan


def _ops_approval(confirm: Callable[[Plan], tuple[bool, str]], plan: Plan) -> tuple[bool, str]:
    """Whether ops approved the plan, and what they (or the wait) said."""
    try:
        return confirm(plan)
    except RollbackInterrupted as exc:
        return False, f"{exc} while waiting for confirmation; nothing was rolled back"


def _take_lease(
    target: Target | None, holder: str, timeout: float, plan: Plan, confirmation: str
) -> Kube | None | RollbackResult:
    """The lease on the Deployment (None without a target), so that no other run rolls it back at
    the same time; or the result that ends the rollback here, with nothing changed."""
    lease = None
    try:
        if target is not None:
            lease = Kube(target)
            lease.acquire_lease(holder, timeout + LEASE_MARGIN_SECONDS)
    except LeaseHeld as exc:
        return RollbackResult(
            "refused",
            f"{REFUSED_PREFIX}: {exc}; this run changed nothing: make sure that run's rollback completes",
            plan,
            confirmation=confirmation,
        )
    except KubeError as exc:
        now = time.time()
        if lease is not None:  # a lease written whose answer was lost: never leave it behind
            try:
                lease.allow_read_back()
                lease.release_lease(holder)
            except Exception:  # noqa: BLE001 - it expires on its own
                pass
        return RollbackResult(
            "failed",
            f"{FAILED_PREFIX} ({exc})",
            plan,
            attempts=1,
            started_at=now,
            finished_at=now,
            confirmation=confirmation,
        )
    return lease


def _mark_and_release(
    result: RollbackResult,
    plan: Plan,
    target: Target | None,
    tested: DeploymentState | None,
    reason: str,
    lease: Kube | None,
    holder: str,
) -> None:
    """After the write (or the attempt): mark the revision rolled away from, release the lease.
    A failure of either is reported, never raised."""
    if target is not None:  # the marks and the release get time of their own past the rollout wait
        target.deadline = max(target.deadline or 0.0, time.monotonic() + MARK_SECONDS)

    def release_lease() -> None:
        if lease is not None:
            lease.release_lease(holder)

    def reject() -> None:
        _reject(result, reason, tested)

    for step, finish in (
        ("marking the rejected revision", reject),
        ("releasing the rollback lease", release_lease),
    ):
        try:
            finish()
        except RollbackInterrupted as exc:
            result.notes.append(f"{exc} while {step}")
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own; the mark is reported below
            why = str(exc) if isinstance(exc, KubeError) else f"{exc.__class__.__name__}: {exc}"
            written_plan = result.plan or plan
            if step.startswith("marking") and not (
                written_plan.details.get("from_hash") and written_plan.details.get("template")
            ):
                _unmarked(result, why, tested)
            elif step.startswith("marking"):
                result.notes.append(
                    f"the ReplicaSet of revision {written_plan.from_revision} was not marked rejected ({why}); "
                    "the rejection holds all the same: the rollback's own write recorded it on the Deployment "
                    f"({ROLLED_BACK_FROM})"
                )
            else:
                result.notes.append(f"could not finish {step}: {exc.__class__.__name__}: {exc}")


def _moved_on(target: Target | None, tested: DeploymentState | None, plan: Plan | None = None) -> str:
    """Why the Deployment no longer runs what was tested, or "".

    This run's own write (its change-cause names this run) is not a move: a write whose answer was
    lost still counts as written. Another run's identical write is a move: it is not ours to report.
    """
    if target is None or tested is None:
        return ""
    now = Kube(target).state()
    if now.template == tested.template and now.revision == tested.revision:
        return ""
    if plan is not None and _is_our_write(now, plan):
        plan.details["written"] = True
        return ""
    cause = f" ({now.change_cause})" if now.change_cause else ""
    return (
        f"standing down: {target.ref} changed since the checks started: {tested.describe()} -> "
        f"{now.describe()}{cause}; the checks did not test what runs now"
    )


def _is_our_write(now: DeploymentState, plan: Plan) -> bool:
    if plan.handler == "command":
        return False  # its writes are its program's; it reports success by its exit code
    wanted = plan.details.get("template")
    return now.change_cause == our_change_cause(plan) and (wanted is None or now.template == wanted)


CHANGE_CAUSE_PREFIX = "pytest-smoke rollback to revision"
REFUSED_PREFIX = "ROLLBACK REFUSED: a rollback was due and did not happen"
UNMARKED_PREFIX = "ROLLED BACK, REJECTION MARK NOT WRITTEN: alert ops team"
MARK_SECONDS = 10.0  # what the rejection mark and the lease release get past the rollout wait


def our_change_cause(plan: Plan) -> str:
    """The change-cause this run writes: it names the run, so only this run recognises the write."""
    return f"{CHANGE_CAUSE_PREFIX} {plan.to_revision} by {plan.details.get('holder', '')}"


def _reject(result: RollbackResult, reason: str, tested: DeploymentState | None) -> None:
    """Mark the revision rolled away from, so no later run rolls forward (or back) to it."""
    plan = result.plan
    if plan is None or plan.target is None or not plan.details.get("written"):
        return
    if tested is None:
        return _unmarked(result, "the tested revision was not recorded", tested)
    result.notes.append(mark_rejected(Kube(plan.target), tested, reason))


def _unmarked(result: RollbackResult, why: str, tested: DeploymentState | None) -> None:
    """Rolled back, but the rejection is not on the cluster: a later run could roll forward onto it."""
    plan = result.plan
    revision = (plan.from_revision if plan is not None else None) or (tested.revision if tested is not None else None)
    what = f"revision {revision} is not marked rejected ({why}): a later run could roll forward onto it"
    if plan is not None and plan.target is not None:
        t = plan.target
        what += (
            f"; mark it by hand: kubectl annotate rs <the ReplicaSet of revision {revision}> -n {t.namespace} "
            f"{REJECTED}=true --overwrite"
        )
    if result.status == "completed":
        result.status = "unmarked"
        result.message = f"{UNMARKED_PREFIX} ({what})"
    else:
        result.notes.append(what)


def _execute(
    handler: Handler,
    result: RollbackResult,
    strategy: Mapping[str, Any],
    timeout: float,
    progress: Callable[[str], None],
    target: Target | None,
    tested: DeploymentState | None,
) -> None:
    """Write (bounded attempts), then wait for the rollout; report what the cluster shows."""

    def record(message: str) -> None:
        result.progress.append(message)
        progress(message)

    plan = result.plan
    assert plan is not None
    attempts = int(RollbackStrategy.of(strategy).max_rollback_attempts)
    deadline = time.monotonic() + timeout
    error = ""
    for attempt in range(1, attempts + 1):
        if plan.details.get("written"):
            break
        result.attempts = attempt
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = error or f"no time left within rollback_timeout_seconds ({timeout:g} s)"
            break
        try:
            if attempt > 1 or result.confirmation:
                # Plan again from what runs now (a confirmation can take minutes, a retry follows a
                # failed write), but only while it is still what was tested.
                moved_on = _moved_on(target, tested, plan)
                if moved_on:
                    _finish(result, "superseded", moved_on)
                    return
                if plan.details.get("written"):
                    break
                plan = _plan_again(handler, result, plan, strategy, target)
                if _changed_while_planning(result, plan, target, tested):
                    return
            _write(handler, plan, strategy, remaining, record, target, tested)
        except RollbackInterrupted as exc:
            where = plan.target.ref if plan.target else "the deployment"
            error = f"{exc}: the rollout state is unknown; check {where} now"
            _finish(result, "failed", f"{FAILED_PREFIX} ({error})")
            return
        except Exception as exc:  # noqa: BLE001 - API errors, malformed API data, our own bugs: never lose the plan
            error = _attempt_error(exc)
            record(f"attempt {attempt}/{attempts} failed: {error}")
            # What happened in the cluster, not what the client saw: read it back (with time to do
            # so even when the write used up the rollback's).
            if target is not None:
                allow_read_back(target)
                deadline = max(deadline, time.monotonic() + READ_BACK_SECONDS)
            error, ended = _read_back_after_failure(result, plan, target, tested, error)
            if ended:
                return
    if not plan.details.get("written"):
        _finish(result, "failed", f"{FAILED_PREFIX} ({error})")
        return
    _wait_for_rollout(result, target, deadline, record)


def _plan_again(
    handler: Handler, result: RollbackResult, plan: Plan, strategy: Mapping[str, Any], target: Target | None
) -> Plan:
    """A new plan from what runs now, for the same lease holder; the result reports it."""
    holder = plan.details.get("holder")
    result.plan = new_plan = handler.plan(target, strategy)
    new_plan.details["holder"] = holder
    return new_plan


def _changed_while_planning(
    result: RollbackResult, plan: Plan, target: Target | None, tested: DeploymentState | None
) -> bool:
    """Whether the Deployment changed between the read before the plan and the plan's own read:
    then the rollback stands down (superseded) and never writes over it."""
    live = plan.details.get("live_template")
    if tested is not None and live is not None and live != tested.template:
        _finish(
            result,
            "superseded",
            _moved_on(target, tested, plan)
            or (f"standing down: {target.ref if target else 'the deployment'} changed while the rollback was planned"),
        )
        return True
    return False


def _write(
    handler: Handler,
    plan: Plan,
    strategy: Mapping[str, Any],
    remaining: float,
    record: Callable[[str], None],
    target: Target | None,
    tested: DeploymentState | None,
) -> None:
    """One attempt at the write. A command's exit code says it ran, not what it changed: the
    Deployment must show the change."""
    handler.execute(plan, strategy, remaining, record)
    if plan.handler == "command" and target is not None and tested is not None:
        now = Kube(target).state()  # its exit code says it ran, not what it changed
        if now.template == tested.template and now.revision == tested.revision:
            raise RollbackError(
                f"{plan.details['argv'][0]} exited 0, but {target.ref} still runs the tested {tested.describe()}"
            )
    plan.details["written"] = True


def _attempt_error(exc: Exception) -> str:
    if isinstance(exc, (KubeError, RollbackError, RollbackRefused)):
        return str(exc)
    return f"internal error: {exc.__class__.__name__}: {exc}"


def _read_back_after_failure(
    result: RollbackResult, plan: Plan, target: Target | None, tested: DeploymentState | None, error: str
) -> tuple[str, bool]:
    """After a failed attempt, what runs now: the error (with a read-back that failed too), and
    whether the rollback ends here (the Deployment moved on)."""
    try:
        moved_on = _moved_on(target, tested, plan)
    except Exception as read_error:  # noqa: BLE001
        moved_on, error = "", f"{error}; reading it back failed too: {read_error}"
    if moved_on and plan.handler == "command":
        # Its program may have changed it before failing: report what runs, retry nothing.
        runs = moved_on.partition(" -> ")[2].partition("; the checks")[0]
        _finish(
            result,
            "failed",
            f"{FAILED_PREFIX} ({error}; {target.ref if target else 'the deployment'} now runs {runs})",
        )
        return error, True
    if moved_on:
        _finish(result, "superseded", moved_on)
        return error, True
    return error, False


def _wait_for_rollout(
    result: RollbackResult, target: Target | None, deadline: float, record: Callable[[str], None]
) -> None:
    """Written: wait for the rollout within what is left of the deadline, and report how it ended."""
    if target is not None:
        try:
            Kube(target).wait_for_rollout(max(deadline - time.monotonic(), 0.0), record)
        except RollbackInterrupted as exc:
            _finish(result, "failed", f"{FAILED_PREFIX} ({exc}: the rollout state is unknown; check {target.ref} now)")
            return
        except Exception as exc:  # noqa: BLE001 - the write is done; the rollout did not finish
            _finish(result, "failed", f"{FAILED_PREFIX} (written, but {exc})")
            return
    _finish(result, "completed", "rollback complete")


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


def restore_template(kube: Kube, plan: Plan) -> None:
    """Write the plan's pod template, guarded by the template it was planned from, with two
    annotations in the same patch: the change-cause (``kubectl rollout history`` shows it; it names
    this run, so that only this run recognises the write) and the record of the template rolled
    away from (the rejection that no failed ReplicaSet mark can lose)."""
    deployment = kube.deployment()
    record = rolled_back_from(deployment)
    rejected_hash = plan.details.get("from_hash")
    if rejected_hash:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = [e for e in record if e["hash"] != rejected_hash]
        record.append({"revision": plan.from_revision, "hash": rejected_hash, "at": stamp})
    annotations = {CHANGE_CAUSE: our_change_cause(plan), ROLLED_BACK_FROM: json.dumps(record[-ROLLED_BACK_FROM_KEPT:])}
    ops = [{"op": "replace", "path": "/spec/template", "value": plan.details["template"]}]
    guarded_patch(kube, plan, ops + _annotation_ops(deployment["metadata"], annotations))
