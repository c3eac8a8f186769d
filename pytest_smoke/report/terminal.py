"""The terminal verdict, in the seed's three shapes: passed, warnings only, critical."""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any, Iterator

from ..verdict import RAN
from .remediation import IMPACT, fill, remedy, remedy_kind

if TYPE_CHECKING:
    from ..config import SmokeConfig
    from ..model import RunSummary

KIND_TITLES = {"health": "Health Check", "dependency": "Dependency", "critical_path": "Critical Path", "custom": "Smoke Test"}
# What follows "✗ CRITICAL: Smoke tests failed" in every output, by rollback status.
CRITICAL_TAILS = {
    "completed": " - Rollback completed",
    "failed": " - ROLLBACK FAILED",
    "still_failing": " - ROLLED BACK, STILL FAILING",
    "superseded": " - Rollback stood down (the Deployment changed since the checks)",
    "dry_run": " - Rollback dry run",
    "refused": " - Rollback refused",
    "awaiting_confirmation": " - Rollback awaiting ops confirmation",
}
ROLLBACK_HEADLINES = {
    "completed": "Automatic rollback completed",
    "failed": "ROLLBACK FAILED: alert ops team immediately",
    "still_failing": "ROLLED BACK, STILL FAILING: alert ops team immediately",
    "superseded": "Rollback stood down: the Deployment changed since the checks started",
    "refused": "Automatic rollback refused",
    "dry_run": "Dry run (--smoke-no-rollback): rollback NOT performed",
    "awaiting_confirmation": "Rollback awaiting ops confirmation",
    "not_configured": "Automatic rollback not possible",
}


def remediation_values(smoke: "SmokeConfig", summary: "RunSummary") -> dict[str, str]:
    strategy = smoke.section("rollback_strategy")
    plan = getattr(summary.rollback, "plan", None)
    deployment = strategy.get("deployment") or "DEPLOYMENT"
    namespace = strategy.get("namespace", "default")
    # Without a plan, a bare "rollout undo" could bring back a revision a smoke run rejected: name one.
    manual = plan.manual_command if plan else (
        f"kubectl rollout undo deployment/{deployment} -n {namespace} --to-revision=<a known-good revision>"
    )
    return {"deployment": deployment, "namespace": namespace, "manual_command": manual}


def rerun_command(smoke: "SmokeConfig") -> str:
    env = f" --smoke-env {shlex.quote(smoke.environment)}" if smoke.environment else ""
    return f"pytest --smoke-config {shlex.quote(str(smoke.path))}{env}"


def _clock(stamp: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "--:--:--"


def render(summary: "RunSummary", smoke: "SmokeConfig") -> Iterator[tuple[str, dict[str, bool]]]:
    verdict, decision = summary.verdict, summary.decision
    values = remediation_values(smoke, summary)
    overrides = smoke.data.get("remediation")
    if decision.action == "not_evaluated":
        yield f"smoke: no verdict: {decision.reason}", {"yellow": True}
        return
    state = verdict.state
    if state == "critical":
        yield from _critical(summary, values, overrides)
    elif state == "inconclusive":
        yield from _inconclusive(summary)
    else:
        if state == "partial":
            yield from _partial(summary)
        if verdict.warnings:
            yield from _warnings(summary, values, overrides, headline=state != "partial")
        elif state == "passed":
            yield from _passed(summary)
    if state in ("passed", "warning", "partial") and summary.timeline.deployment_completed:
        yield f"Deployment completed: {_clock(summary.timeline.deployment_completed)} (checks started after the rollout)", {}
    for note in summary.notes:
        if note:
            yield f"Note: {note}", {}
    yield f"Re-run: {rerun_command(smoke)}", {}


def _group_line(title: str, outcomes: list[Any]) -> str:
    if not outcomes:
        return f"- {title}: none configured"
    ran = [o for o in outcomes if o.status in RAN]
    left_out = [o.name for o in outcomes if o.status not in RAN]
    tail = f"; not run: {', '.join(left_out)}" if left_out else ""
    if not ran:
        return f"- {title}: not selected ({', '.join(left_out)})"
    bad = [o for o in ran if o.severity != "passed"]
    if not bad:
        return f"- {title}: OK ({', '.join(o.name for o in ran)}){tail}"
    words = {"passed": "flaky", "not_evaluated": "not evaluated"}
    shown = ", ".join(f"{o.name} {words.get(o.status, 'failed')}" for o in bad)
    return f"- {title}: {len(ran) - len(bad)}/{len(ran)} OK ({shown}){tail}"


def _groups(summary: "RunSummary") -> Iterator[tuple[str, dict[str, bool]]]:

    def by_kind(kind: str) -> list[Any]:
        return [o for o in summary.verdict.outcomes if o.kind == kind]

    yield _group_line("Health check", by_kind("health")), {}
    yield _group_line("Dependencies", by_kind("dependency")), {}
    yield _group_line("Critical paths", by_kind("critical_path")), {}
    custom = by_kind("custom")
    if custom:
        yield _group_line("Custom smoke tests", custom), {}


def _inconclusive(summary: "RunSummary") -> Iterator[tuple[str, dict[str, bool]]]:
    verdict = summary.verdict
    yield (
        "? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified",
        {"yellow": True, "bold": True},
    )
    yield "", {}
    yield "NOT EVALUATED (required):", {"yellow": True}
    for number, outcome in enumerate(sorted(verdict.unverified_required, key=lambda o: o.sort_key), 1):
        yield f"{number}. {KIND_TITLES.get(outcome.kind, 'Check')}: {outcome.name}: {outcome.reason}", {"yellow": True}
    others = [o for o in verdict.warnings if o not in verdict.unverified_required]
    if others:
        yield "Warnings (non-critical):", {"yellow": True}
        for outcome in others:
            yield f"- {outcome.name}: {outcome.reason}", {"yellow": True}
    yield "", {}
    yield from _groups(summary)
    yield "Impact: the deployment is neither verified nor rolled back: the runner, not the service, is at fault", {}
    yield "Next: fix what kept the checks from running (see the reasons above), then re-run the smoke suite", {}


def _partial(summary: "RunSummary") -> Iterator[tuple[str, dict[str, bool]]]:
    verdict = summary.verdict
    names = ", ".join(o.name for o in verdict.unselected_required)
    how = "not selected or skipped" if any(o.status == "skipped" for o in verdict.unselected_required) else "not selected"
    yield (
        f"◐ PARTIAL: required checks {how} ({names}) - deployment NOT verified",
        {"yellow": True, "bold": True},
    )
    reasons = sorted({o.reason for o in verdict.unselected_required})
    for reason in reasons:
        yield f"- {reason}", {}
    yield from _groups(summary)


def _passed(summary: "RunSummary") -> Iterator[tuple[str, dict[str, bool]]]:
    yield "✓ Smoke tests passed (all health checks OK)", {"green": True, "bold": True}
    yield from _groups(summary)
    yield "Deployment stable. Monitoring active.", {"green": True}


def _warnings(
    summary: "RunSummary", values: dict[str, str], overrides: Any, headline: bool = True
) -> Iterator[tuple[str, dict[str, bool]]]:
    if headline:
        yield "⚠ WARNING: Non-critical test failed (deployment continues)", {"yellow": True, "bold": True}
    for outcome in summary.verdict.warnings:
        label = "not evaluated: a problem of the runner" if outcome.status == "not_evaluated" else "non-critical"
        yield f"- {KIND_TITLES.get(outcome.kind, 'Check')} {outcome.name}: {outcome.reason} ({label})", {"yellow": True}
    yield "", {}
    yield "Impact: Minor feature degradation", {}
    yield "Monitoring: Alert if pattern persists", {}
    names = ", ".join(o.name for o in summary.verdict.warnings)
    yield f"Action: Check {names} status in next 30min", {}
    for outcome in summary.verdict.warnings:
        fix = remedy(remedy_kind(outcome), overrides)
        for step in fix.steps:
            yield f"  {outcome.name}: {fill(step, values)}", {}


def _critical(summary: "RunSummary", values: dict[str, str], overrides: Any) -> Iterator[tuple[str, dict[str, bool]]]:
    rollback, decision = summary.rollback, summary.decision
    tail = CRITICAL_TAILS.get(getattr(rollback, "status", ""), "")
    if rollback is None:
        tail = f" - No automatic rollback ({decision.reason})"
    yield f"✗ CRITICAL: Smoke tests failed{tail}", {"red": True, "bold": True}
    yield "", {}
    yield "CRITICAL FAILURES:", {"red": True}
    for number, outcome in enumerate(summary.verdict.critical, 1):
        fix = remedy(outcome.failure_kind or "failed", overrides)
        yield f"{number}. {KIND_TITLES.get(outcome.kind, 'Check')}: {outcome.name}: {outcome.reason}", {"red": True}
        if outcome.attributed_to:
            yield f"Likely cause: dependency {outcome.attributed_to} failed (counts with it toward a rollback)", {}
        if not outcome.rollback:
            yield "Rollback: false for this check: it alerts, but rolling back does not fix it", {}
        yield f"Issue: {fix.issue}", {}
        yield f"Impact: {IMPACT.get(outcome.kind, IMPACT['custom'])}", {}
        for step in fix.steps:
            yield f"Next: {fill(step, values)}", {}
    if summary.verdict.warnings:
        yield "", {}
        yield "Warnings (non-critical):", {"yellow": True}
        for outcome in summary.verdict.warnings:
            yield f"- {outcome.name}: {outcome.reason}", {"yellow": True}
    yield "", {}
    yield from _rollback_lines(summary, values, overrides)
    yield "", {}
    yield from _timeline(summary)


def _rollback_lines(summary: "RunSummary", values: dict[str, str], overrides: Any) -> Iterator[tuple[str, dict[str, bool]]]:
    rollback = summary.rollback
    if rollback is None:
        yield f"Rollback: not triggered ({summary.decision.reason})", {}
        yield f"Manual rollback if needed: {values['manual_command']}", {}
        return
    markup = {"red": True, "bold": True} if rollback.status in ("failed", "still_failing") else {}
    yield f"{ROLLBACK_HEADLINES.get(rollback.status, rollback.status)}:", markup
    plan = rollback.plan
    if plan is not None:
        for name, image in plan.current_images.items():
            target = plan.target_images.get(name, "?")
            yield f"Current: {image}", {}
            yield f"Rollback to: {target}" + (f" (container {name})" if len(plan.current_images) > 1 else ""), {}
        if plan.to_revision is not None:
            verified = " (verified by an earlier green smoke run)" if plan.details.get("verified") else ""
            yield f"Revision: {plan.from_revision} -> {plan.to_revision}{verified}", {}
    status = rollback.progress[-1] if rollback.progress else rollback.message
    yield f"Status: {status}", markup
    if rollback.message and rollback.message != status:
        yield rollback.message, markup
    if rollback.confirmation:
        yield f"Confirmation: {rollback.confirmation}", {}
    if rollback.verification:
        yield f"Verification: {rollback.verification}", {}
    if rollback.status in ("failed", "still_failing", "superseded", "awaiting_confirmation", "dry_run", "refused", "not_configured"):
        kind = {"failed": "rollback_failed", "still_failing": "rollback_failed", "awaiting_confirmation": "rollback_awaiting"}.get(
            rollback.status, "rollback_refused"
        )
        for step in remedy(kind, overrides).steps:
            yield f"Next: {fill(step, values)}", {}


def _timeline(summary: "RunSummary") -> Iterator[tuple[str, dict[str, bool]]]:
    t = summary.timeline
    yield "Timeline:", {}
    if t.deployment_completed:
        yield f"{_clock(t.deployment_completed)} - Deployment completed", {}
    yield f"{_clock(t.checks_started)} - Smoke checks started", {}
    if t.failures_detected:
        yield f"{_clock(t.failures_detected)} - Critical failures detected", {}
    if t.rollback_started:
        yield f"{_clock(t.rollback_started)} - Rollback started", {}
    if t.rollback_finished:
        status = getattr(summary.rollback, "status", "")
        yield f"{_clock(t.rollback_finished)} - Rollback {'complete' if status == 'completed' else 'ended: ' + status}", {}
