"""From verdict to action: decide, let hooks veto, confirm, roll back, verify, mark verified.

Plain Python, called once per run by the pytest glue with explicit inputs
(:class:`DecisionInputs`); the plugin hooks reach it as two plain callables. It returns the
:class:`~pytest_smoke.model.RunSummary` and writes into nothing but that summary. A config
mistake can never get here (config errors stop the run before any check), and nothing here runs
unless checks really ran and the run was not interrupted.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..checks import CheckContext, CheckFailed, CheckNotEvaluated, Deadline, run_check
from ..checks.base import new_run_id
from ..cluster.kube import DeploymentState, Kube, KubeError, image_mismatch
from ..cluster.marks import verify as mark_verified
from ..cluster.rollback import FAILED_PREFIX, RollbackInterrupted, carry_out, target_from
from ..cluster.rollback.confirm import confirm
from ..model import Decision, RollbackResult, RunSummary, Status, Target, Timeline, Verdict
from ..redact import shorten
from ..verdict import decide
from . import ledger

if TYPE_CHECKING:
    from ..config import SmokeConfig


@dataclass
class DecisionInputs:
    """Everything the decision flow reads, and the two ways it talks back."""

    smoke: SmokeConfig
    # pytest_smoke_decision: may return another Decision (a veto, an override); None keeps it
    override: Callable[[Verdict, Decision], Decision | None]
    # pytest_smoke_rollback_result: told what happened, rollback or not
    finished: Callable[[Verdict, Decision, RollbackResult | None], None]
    dry_run: bool  # --smoke-no-rollback
    confirmed: bool  # --smoke-confirm-rollback
    tested: DeploymentState | None  # what was deployed as the checks started
    tested_error: str  # why ``tested`` could not be read ("" when it was, or nothing asked for it)
    expected_images: dict[str, str]  # what the pipeline deployed, by container (--smoke-expect-image)
    context: CheckContext | None  # to re-run the required checks after a rollback
    handler: Any  # the rollback handler the hooks resolved for rollback_strategy.type (None: built-in)
    say: Callable[[str], None]  # a progress line on the terminal
    started: Callable[[RunSummary], None]  # the summary exists: an interrupt from here on reports it
    # Re-run the required custom tests that failed (after a rollback): (name, status, reason) each
    rerun_custom: Callable[[Any], list[tuple[str, Status, str]]] = lambda budget: []
    # --smoke-hold-rollback: why a due rollback waits for a human (nothing is planned or written)
    held: str = ""
    # --smoke-fleet-ledger: the fleet run's rollback ledger (max_rollbacks, outages counted once)
    ledger: str = ""


def run(inputs: DecisionInputs, verdict: Verdict, timeline: Timeline) -> RunSummary:
    smoke = inputs.smoke
    strategy = smoke.section("rollback_strategy")
    verdict.unattributed = _unattributed(inputs.tested, strategy, inputs.expected_images)
    decision = decide(verdict, smoke.auto_rollback, dry_run=inputs.dry_run, held=inputs.held)
    override = inputs.override(verdict, decision)
    if isinstance(override, Decision):
        decision = override
    # Only a run that can roll back settles with the fleet: a dry run, a run with the rollback off or
    # held by hand (--smoke-hold-rollback) writes nothing anywhere, the shared ledger included.
    can_roll_back = smoke.auto_rollback.enabled and not inputs.dry_run and not inputs.held
    if can_roll_back and (inputs.ledger or shared_ledger(smoke) is not None):
        decision = _with_ledger(inputs.ledger, smoke, verdict, decision)
    summary = RunSummary(verdict, decision, timeline=timeline)
    inputs.started(summary)

    if decision.action == "held":  # nothing is planned or written: a human decides
        summary.rollback = RollbackResult("held", f"ROLLBACK HELD: {decision.reason}: alert ops team")
    elif decision.wants_rollback:
        summary.rollback = _roll_back(inputs, summary, strategy)
        summary.notes.extend(summary.rollback.notes)
        if summary.rollback.status == "completed" and smoke.rollback_strategy.verify_after_rollback:
            _verify(inputs, summary.rollback, smoke.rollback_strategy.verify_timeout_seconds)
    elif verdict.verified and smoke.rollback_strategy.deployment and not inputs.dry_run:
        # Only a complete green run (every required check selected, run and passed) vouches for it.
        try:
            summary.notes.append(_mark_verified(inputs.tested, strategy))
        except RollbackInterrupted as exc:  # a green run stays green; the mark is only a note
            summary.notes.append(f"{exc}: the revision was not marked as verified")

    inputs.finished(verdict, decision, summary.rollback)
    return summary


def shared_ledger(smoke: SmokeConfig) -> Target | None:
    """Where a target run keeps the fleet's ledger in a cluster (``fleet.ledger``), as a Kubernetes
    target; None without one, or outside a fleet target run."""
    where = smoke.fleet.ledger if smoke.fleet is not None and smoke.target is not None else None
    if where is None:
        return None
    return Target(
        deployment="",
        namespace=where.namespace,
        context=where.context,
        kubeconfig=where.kubeconfig,
        cluster_uid=where.cluster_uid,
        setting="fleet.ledger",
    )


def _with_ledger(path: str, smoke: SmokeConfig, verdict: Verdict, decision: Decision) -> Decision:
    """Settle with the fleet's other targets (see decision/ledger.py): a rollback that is due may
    be held. A ledger that cannot be read holds it too: a human decides, nothing is written."""
    wants = decision.action in ("rollback", "confirm")
    failed = [
        str(o.facts["address"])
        for o in verdict.outcomes
        if o.kind == "dependency" and o.status == "failed" and o.facts.get("address")
    ]
    counted = [
        str(o.facts.get("address") or "") or None if o.kind == "dependency" else None for o in verdict.rollback_failures
    ]
    name = smoke.target.name if smoke.target is not None else str(smoke.path)
    claim = ledger.Claim(smoke.fleet_run_id, name, tuple(failed), wants, tuple(counted))
    shared = shared_ledger(smoke)
    where = path
    try:
        if shared is not None and smoke.fleet is not None:  # fleet.ledger: shared by runs anywhere
            where = f"configmap {shared.namespace}/{ledger.config_map_name(smoke.fleet_run_id)}"
            if not smoke.fleet_run_id:
                raise ValueError("SMOKE_FLEET_RUN_ID is not set")
            reason = ledger.settle_in_cluster(Kube(shared), smoke.fleet.max_rollbacks, claim)
        else:  # this machine's fleet run handed its file over
            reason = ledger.settle(path, claim)
    except (OSError, ValueError, KubeError) as exc:
        why = str(exc) if isinstance(exc, (ValueError, KubeError)) else exc.__class__.__name__
        reason = f"the fleet's rollback ledger {where} could not be used ({shorten(why, 200)})" if wants else ""
    if not reason:
        return decision
    return Decision("held", f"rollback held: {reason}", decision.critical_count, decision.threshold)


def _roll_back(inputs: DecisionInputs, summary: RunSummary, strategy: dict[str, Any]) -> Any:
    decision, verdict, timeline = summary.decision, summary.verdict, summary.timeline
    auto_rollback = inputs.smoke.auto_rollback

    def ask(plan):  # type: ignore[no-untyped-def]
        inputs.say(f"smoke: {decision.reason}; rollback plan: {plan.manual_command}")
        return confirm(
            flag=inputs.confirmed,
            environ=os.environ,
            approval_url=auto_rollback.approval_url,
            timeout=auto_rollback.confirmation_timeout_seconds,
            question=f"Roll back now? {plan.manual_command}",
            verify=inputs.smoke.verify,
            revision=plan.from_revision,
        )

    if decision.action == "rollback":
        timeline.rollback_started = time.time()
        inputs.say(f"smoke: {decision.reason}: rolling back")
    try:
        result = carry_out(
            decision.action,
            strategy,
            inputs.smoke.section("auto_rollback"),
            confirm=ask,
            progress=lambda message: inputs.say(f"smoke: {message}"),
            tested=inputs.tested,
            tested_error=inputs.tested_error,
            handler=inputs.handler,
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
        timeline.rollback_started = result.started_at
        timeline.rollback_finished = result.finished_at
    return result


def _verify(inputs: DecisionInputs, rollback: Any, seconds: float) -> None:
    """Re-run the required checks against the rolled-back version, within one deadline. Still
    failing is its own outcome: the version we rolled back to is broken too, a human must act."""
    try:
        passed, text = _verify_after_rollback(inputs, seconds)
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


def _verify_after_rollback(inputs: DecisionInputs, seconds: float) -> tuple[bool, str]:
    """Re-run the required generated checks, and the required custom tests that failed, once
    against the rolled-back version."""
    # Fresh connections: a kept-alive one may lead to a pod the rollback replaced. A fresh {run_id}:
    # what the first run created under its id (a name the service keeps reserved) must not fail it.
    context = (
        dataclasses.replace(inputs.context, connections=None, run_id=new_run_id())
        if inputs.context is not None
        else None
    )
    required = [c for c in inputs.smoke.checks if c.required] if context is not None else []
    budget = Deadline(seconds)
    failures, unknown = [], []
    for check in required:
        assert context is not None
        try:
            run_check(check, context, budget=budget)
        except CheckFailed as exc:
            failures.append(f"{check.node_name}: {exc.reason}")
        except CheckNotEvaluated as exc:
            unknown.append(f"{check.node_name}: {exc.reason}")
    # The custom tests that failed are part of the verdict that rolled back: they are re-run too.
    custom = inputs.rerun_custom(budget)
    failures += [f"{name}: {reason}" for name, status, reason in custom if status == "failed"]
    unknown += [f"{name}: {reason}" for name, status, reason in custom if status == "not_evaluated"]
    total = len(required) + len(custom)
    what = f"required checks{' and failed custom tests' if custom else ''}"
    if failures:
        return False, f"after rollback {len(failures)}/{total} {what} still fail: " + "; ".join(failures)
    if unknown:
        return (
            True,
            f"after rollback {len(unknown)}/{total} {what} could not be evaluated (not verified): "
            + "; ".join(unknown),
        )
    return True, f"after rollback all {total} {what} pass"


def _unattributed(tested: DeploymentState | None, strategy: dict[str, Any], expected: dict[str, str]) -> str:
    """Why the results cannot be attributed to one settled revision, or "": read the Deployment
    again now that the checks are over and compare it with what ran as they started (and with
    what the pipeline said it deployed)."""
    if tested is None:
        return ""  # not recorded: a rollback refuses on its own, and nothing is marked
    if tested.unsettled:
        return (
            f"a rollout was in progress as the checks started ({tested.unsettled}): "
            "the checks cannot be attributed to one revision"
        )
    target = target_from(strategy)
    if target is None:
        return ""
    try:
        now = Kube(target).state()
    except KubeError:
        return ""  # the rollback and the verified mark read it again, guarded, before any write
    if now.template != tested.template or now.revision != tested.revision:  # a re-deploy of it is a change too
        return (
            f"{target.ref} changed while the checks ran ({tested.describe()} -> {now.describe()}): "
            "the checks cannot be attributed to one revision"
        )
    if now.unsettled:
        return (
            f"a rollout started while the checks ran ({now.unsettled}): the checks cannot be attributed to one revision"
        )
    other = image_mismatch(now, expected, target.ref)
    return f"{other} as the checks ended: the checks did not test the deploy" if other else ""


def _mark_verified(tested: DeploymentState | None, strategy: dict[str, Any]) -> str:
    """Annotate the live ReplicaSet so a later rollback prefers this known-good revision."""
    target = target_from(strategy)
    if target is None:
        return ""
    if tested is None:
        return "did not mark the revision as verified: the revision the checks tested was not recorded"
    try:
        return mark_verified(Kube(target), tested)
    except KubeError as exc:
        return f"did not mark revision {tested.revision} as verified: {exc}"
    except Exception as exc:  # unexpected API content: a note, never a crash of a green run
        return f"could not mark the revision as verified: {exc.__class__.__name__}: {exc}"
