"""From verdict to action: decide, let hooks veto, confirm, roll back, verify, mark verified.

Called once per run by the controller. A config mistake can never get here (config errors stop the
run before any check), and nothing here runs unless checks really ran and the run was not
interrupted.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .redact import shorten
from .verdict import Decision, Verdict, decide

if TYPE_CHECKING:
    from .controller import RunSummary, SmokeController


def run(controller: "SmokeController", verdict: Verdict) -> "RunSummary":
    from .controller import RunSummary
    from .rollback import RollbackInterrupted

    config, smoke = controller.config, controller.smoke
    auto_rollback = smoke.section("auto_rollback")
    strategy = smoke.section("rollback_strategy")
    decision = decide(verdict, auto_rollback, dry_run=bool(config.getoption("smoke_no_rollback")))
    override = config.hook.pytest_smoke_decision(config=config, verdict=verdict, decision=decision)
    if isinstance(override, Decision):
        decision = override
    summary = RunSummary(verdict, decision, timeline=controller.timeline)
    # From here on, whatever interrupts the run, this summary (with any rollback) is what is reported.
    controller.summary = summary

    if decision.wants_rollback:
        summary.rollback = _roll_back(controller, verdict, decision, strategy, auto_rollback)
        summary.notes.extend(summary.rollback.notes)
        if summary.rollback.status == "completed" and strategy.get("verify_after_rollback"):
            _verify(controller, summary.rollback, float(strategy.get("verify_timeout_seconds", 60)))
    elif verdict.verified and strategy.get("deployment") and not config.getoption("smoke_no_rollback"):
        # Only a complete green run (every required check selected, run and passed) vouches for it.
        try:
            summary.notes.append(_mark_verified(controller, strategy))
        except RollbackInterrupted as exc:  # a green run stays green; the mark is only a note
            summary.notes.append(f"{exc}: the revision was not marked as verified")

    config.hook.pytest_smoke_rollback_result(config=config, verdict=verdict, decision=decision, result=summary.rollback)
    return summary


def _roll_back(controller, verdict, decision, strategy, auto_rollback):  # type: ignore[no-untyped-def]
    from .rollback import FAILED_PREFIX, RollbackInterrupted, RollbackResult, carry_out
    from .rollback.confirm import confirm

    config = controller.config

    def ask(plan):  # type: ignore[no-untyped-def]
        controller.say(f"smoke: {decision.reason}; rollback plan: {plan.manual_command}")
        return confirm(
            flag=bool(config.getoption("smoke_confirm_rollback")),
            environ=os.environ,
            approval_url=auto_rollback.get("approval_url"),
            timeout=float(auto_rollback.get("confirmation_timeout_seconds", 60)),
            question=f"Roll back now? {plan.manual_command}",
            verify=controller.smoke.verify,
        )

    if decision.action == "rollback":
        controller.timeline.rollback_started = time.time()
        controller.say(f"smoke: {decision.reason}: rolling back")
    try:
        result = carry_out(
            decision.action,
            strategy,
            auto_rollback,
            confirm=ask,
            progress=lambda message: controller.say(f"smoke: {message}"),
            tested=controller.tested,
            reason=f"{decision.reason}: " + ", ".join(o.nodeid.rpartition("::")[2] or o.name for o in verdict.critical),
        )
    except RollbackInterrupted:
        raise
    except Exception as exc:  # a bug of ours while a rollback is due: never silent, never exit 0
        message = shorten(str(exc), 200)
        return RollbackResult(
            "failed", f"{FAILED_PREFIX} (internal error of the runner: {exc.__class__.__name__}: {message})"
        )
    if result.started_at:
        controller.timeline.rollback_started = result.started_at
        controller.timeline.rollback_finished = result.finished_at
    return result


def _verify(controller: "SmokeController", rollback: Any, seconds: float) -> None:
    """Re-run the required checks against the rolled-back version, within one deadline. Still
    failing is its own outcome: the version we rolled back to is broken too, a human must act."""
    from .rollback import RollbackInterrupted

    try:
        passed, text = _verify_after_rollback(controller, seconds)
    except RollbackInterrupted as exc:
        rollback.verification = f"{exc} during verification: the rolled-back version is not verified"
        return
    except Exception as exc:  # a bug of ours: the rollback still happened and is reported
        rollback.verification = f"verification could not run ({exc.__class__.__name__}: {exc}): not verified"
        return
    rollback.verification = text
    if not passed:
        rollback.status = "still_failing"
        rollback.message = f"ROLLED BACK, STILL FAILING: alert ops team immediately ({text})"


def _verify_after_rollback(controller: "SmokeController", seconds: float) -> tuple[bool, str]:
    """Re-run the required generated checks once against the rolled-back version."""
    from .checks import CheckFailed, CheckNotEvaluated, Deadline, run_check
    from .plugin import get_run

    run = get_run(controller.config)
    if run is None:
        return True, ""
    required = [c for c in controller.smoke.checks if c.required]
    budget = Deadline(seconds)
    failures, unknown = [], []
    for check in required:
        try:
            run_check(check.kind, check.spec, run.context, budget=budget, timeout=check.timeout)
        except CheckFailed as exc:
            failures.append(f"{check.node_name}: {exc.reason}")
        except CheckNotEvaluated as exc:
            unknown.append(f"{check.node_name}: {exc.reason}")
    if failures:
        return False, f"after rollback {len(failures)}/{len(required)} required checks still fail: " + "; ".join(failures)
    if unknown:
        return True, f"after rollback {len(unknown)}/{len(required)} required checks could not be evaluated: " + "; ".join(unknown)
    return True, f"after rollback all {len(required)} required checks pass"


def _mark_verified(controller: "SmokeController", strategy: dict) -> str:
    """Annotate the live ReplicaSet so a later rollback prefers this known-good revision."""
    from .rollback import target_from
    from .kube import REJECTED, REJECTED_AT, REJECTED_REASON, VERIFIED, VERIFIED_AT, Kube, KubeError, revision_of

    target = target_from(strategy)
    if target is None:
        return ""
    try:
        kube = Kube(target)
        deployment = kube.deployment()
        current = revision_of(deployment)
        tested = controller.tested
        if tested is None:
            return "did not mark the revision as verified: the revision the checks tested was not recorded"
        if deployment["spec"]["template"] != tested.template:
            return f"did not mark revision {current} as verified: {target.ref} changed while the checks ran"
        live = [rs for rs in kube.replicasets(deployment) if revision_of(rs) == current]
        if not live:
            return f"could not mark revision {current} as verified: no ReplicaSet carries it"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # A green run lifts an earlier rejection: this revision is known-good now.
        marks = {VERIFIED: "true", VERIFIED_AT: stamp, REJECTED: None, REJECTED_AT: None, REJECTED_REASON: None}
        kube.annotate_replicaset(live[0]["metadata"]["name"], marks)
        return f"marked revision {current} of {target.ref} as verified"
    except KubeError as exc:
        return f"could not mark the revision as verified: {exc}"
    except Exception as exc:  # unexpected API content: a note, never a crash of a green run
        return f"could not mark the revision as verified: {exc.__class__.__name__}: {exc}"
