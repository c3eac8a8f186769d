"""From verdict to action: decide, let hooks veto, confirm, roll back, verify, mark verified.

Called once per run by the controller. A config mistake can never get here (config errors stop the
run before any check), and nothing here runs unless checks really ran and the run was not
interrupted.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from .verdict import Decision, Verdict, decide

if TYPE_CHECKING:
    from .controller import RunSummary, SmokeController


def run(controller: "SmokeController", verdict: Verdict) -> "RunSummary":
    from .controller import RunSummary

    config, smoke = controller.config, controller.smoke
    auto_rollback = smoke.section("auto_rollback")
    strategy = smoke.section("rollback_strategy")
    decision = decide(verdict, auto_rollback, dry_run=bool(config.getoption("smoke_no_rollback")))
    override = config.hook.pytest_smoke_decision(config=config, verdict=verdict, decision=decision)
    if isinstance(override, Decision):
        decision = override
    summary = RunSummary(verdict, decision, timeline=controller.timeline)

    if decision.wants_rollback:
        summary.rollback = _roll_back(controller, verdict, decision, strategy, auto_rollback)
        if summary.rollback.status == "completed" and strategy.get("verify_after_rollback"):
            summary.rollback.verification = _verify_after_rollback(controller)
    elif verdict.verified and strategy.get("deployment") and not config.getoption("smoke_no_rollback"):
        # Only a complete green run (every required check selected, run and passed) vouches for it.
        summary.notes.append(_mark_verified(controller, strategy))

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
        )
    except RollbackInterrupted:
        raise
    except Exception as exc:  # a bug of ours while a rollback is due: never silent, never exit 0
        message = " ".join(str(exc).split())[:200]
        return RollbackResult(
            "failed", f"{FAILED_PREFIX} (internal error of the runner: {exc.__class__.__name__}: {message})"
        )
    if result.started_at:
        controller.timeline.rollback_started = result.started_at
        controller.timeline.rollback_finished = result.finished_at
    return result


def _verify_after_rollback(controller: "SmokeController") -> str:
    """Re-run the required generated checks once against the rolled-back version."""
    from .checks import CheckFailed, CheckNotEvaluated, run_check
    from .plugin import get_run

    run = get_run(controller.config)
    if run is None:
        return ""
    required = [c for c in controller.smoke.checks if c.required]
    failures = []
    for check in required:
        try:
            run_check(check.kind, check.spec, run.context, timeout=check.timeout)
        except (CheckFailed, CheckNotEvaluated) as exc:
            failures.append(f"{check.node_name}: {exc.reason}")
    if failures:
        return f"after rollback {len(failures)}/{len(required)} required checks still fail: " + "; ".join(failures)
    return f"after rollback all {len(required)} required checks pass"


def _mark_verified(controller: "SmokeController", strategy: dict) -> str:
    """Annotate the live ReplicaSet so a later rollback prefers this known-good revision."""
    from .rollback import target_from
    from .kube import VERIFIED, VERIFIED_AT, Kube, KubeError, revision_of

    target = target_from(strategy)
    if target is None:
        return ""
    try:
        kube = Kube(target)
        deployment = kube.deployment()
        current = revision_of(deployment)
        live = [rs for rs in kube.replicasets(deployment) if revision_of(rs) == current]
        if not live:
            return f"could not mark revision {current} as verified: no ReplicaSet carries it"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        kube.annotate_replicaset(live[0]["metadata"]["name"], {VERIFIED: "true", VERIFIED_AT: stamp})
        return f"marked revision {current} of {target.ref} as verified"
    except KubeError as exc:
        return f"could not mark the revision as verified: {exc}"
