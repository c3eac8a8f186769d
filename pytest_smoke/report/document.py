"""One report document per run, the single source for every output: the terminal verdict, JSON,
Markdown, JUnit and notifications. Remediation is chosen here, once. Versioned; its JSON Schema
ships as ``pytest_smoke/schema/smoke-report.schema.json``."""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any, Mapping, cast

from .. import __version__
from .remediation import IMPACT, fill_steps, remedy, remedy_kind
from .shape import FleetEntry, ReportDocument

if TYPE_CHECKING:
    from ..config import SmokeConfig
    from ..model import RunSummary
    from ..redact import Redactor

# What follows "✗ CRITICAL: Smoke tests failed" in every output, by rollback status.
CRITICAL_TAILS = {
    "completed": " - Rollback completed",
    "unmarked": " - Rollback completed, REJECTION MARK NOT WRITTEN",
    "failed": " - ROLLBACK FAILED",
    "still_failing": " - ROLLED BACK, STILL FAILING",
    "superseded": " - Rollback stood down (the Deployment changed since the checks)",
    "dry_run": " - Rollback dry run",
    "held": " - ROLLBACK HELD",
    "refused": " - ROLLBACK REFUSED",
    "not_configured": " - ROLLBACK NOT POSSIBLE (no Deployment configured)",
    "awaiting_confirmation": " - Rollback awaiting ops confirmation",
}


def rerun_command(smoke: SmokeConfig) -> str:
    """The command line for a run whose own command line is not known (a report built outside pytest)."""
    env = f" --smoke-env {shlex.quote(smoke.environment)}" if smoke.environment else ""
    return f"pytest --smoke-config {shlex.quote(str(smoke.path))}{env}"


SCHEMA_VERSION = "2"  # 2: three outcomes (not_evaluated, not_run, not_selected), inconclusive and partial runs


def iso(moment: float | None) -> str | None:
    return stamp(moment) if moment is not None else None


def stamp(moment: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-07T15:20:54.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


def remediation_values(smoke: SmokeConfig, summary: RunSummary) -> dict[str, str]:
    """What remediation steps fill in: the Deployment, its namespace and the manual command, as far
    as the config names them (no Deployment: none of the three, and steps naming them are left out)."""
    plan = getattr(summary.rollback, "plan", None)
    values = {"manual_command": plan.manual_command} if plan else {}
    target = deployment_of(smoke, summary)
    if target is None:
        return values
    deployment, namespace = target["name"], target["namespace"]
    # Without a plan, a bare "rollout undo" could bring back a revision a smoke run rejected: name one.
    return {
        "deployment": deployment,
        "namespace": namespace,
        "manual_command": (
            f"kubectl rollout undo deployment/{deployment} -n {namespace} --to-revision=<a known-good revision>"
        ),
        **values,
    }


def deployment_of(smoke: SmokeConfig, summary: RunSummary) -> dict[str, Any] | None:
    """The Deployment the run verified: from rollback_strategy, else wait_for_rollout; its revision
    as the checks started (None when the cluster could not be read)."""
    for section in ("rollback_strategy", "wait_for_rollout"):
        settings = smoke.section(section)
        if settings.get("deployment"):
            return {
                "name": settings["deployment"],
                "namespace": settings.get("namespace", "default"),
                "revision": summary.tested_revision,
            }
    return None


# Remediation for a rollback that did not end well, by its status.
ROLLBACK_REMEDIES = {
    "failed": "rollback_failed",
    "still_failing": "rollback_failed",
    "unmarked": "rollback_unmarked",
    "awaiting_confirmation": "rollback_awaiting",
    "superseded": "rollback_refused",
    "dry_run": "rollback_refused",
    "held": "rollback_held",
    "refused": "rollback_refused",
    "not_configured": "rollback_refused",
}


def build(
    summary: RunSummary,
    smoke: SmokeConfig,
    redactor: Redactor,
    finished_at: float | None = None,
    rerun: str | None = None,
) -> ReportDocument:
    verdict, decision, rollback, timeline = summary.verdict, summary.decision, summary.rollback, summary.timeline
    values = remediation_values(smoke, summary)
    overrides = smoke.data.get("remediation")
    finished_at = finished_at or time.time()
    checks = []
    for o in verdict.outcomes:
        entry: dict[str, Any] = {
            "nodeid": o.nodeid,
            "name": o.name,
            "kind": o.kind,
            "required": o.required,
            "status": o.status,
            "severity": o.severity,
            "duration_seconds": round(o.duration, 4),
            "finished_at": iso(o.finished_at),
            "reason": o.reason,
            "failure_kind": o.failure_kind,
            "details": o.details,
            "facts": o.facts,
            "rollback": o.rollback,
            "attributed_to": o.attributed_to,
            "shared_cause": o.shared_cause,
            "precondition": o.precondition,
            "order": o.order,
        }
        if o.severity in ("critical", "warning") or (o.required and o.status == "not_run"):
            fix = remedy(remedy_kind(o), overrides)
            entry["remediation"] = {
                "issue": fix.issue,
                "impact": IMPACT.get(o.kind, IMPACT["custom"])
                if o.severity == "critical"
                else "Minor feature degradation",
                "steps": fill_steps(fix.steps, values),
            }
        checks.append(entry)
    events = [
        ("deployment_completed", timeline.deployment_completed),
        ("checks_started", timeline.checks_started),
        ("failures_detected", timeline.failures_detected),
        ("rollback_started", timeline.rollback_started),
        ("rollback_finished", timeline.rollback_finished),
    ]
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generator": f"pytest-deploy-smoke {__version__}",
        "config": str(smoke.path),
        "environment": smoke.environment,
        "base_url": smoke.base_url,
        "started_at": stamp(timeline.checks_started),
        "finished_at": stamp(finished_at),
        "duration_seconds": round(finished_at - timeline.checks_started, 3),
        "verdict": {
            "state": verdict.state if decision.action != "not_evaluated" else "not_evaluated",
            "critical": len(verdict.critical),
            "warnings": len(verdict.warnings),
            "passed": len(verdict.passed),
            "skipped": sum(1 for o in verdict.outcomes if o.status in ("skipped", "not_run", "not_selected")),
            "verified": verdict.verified and decision.action != "not_evaluated",
            "not_evaluated_required": [o.name for o in verdict.unverified_required],
            "not_selected_required": [o.name for o in verdict.unselected_required],
            "unattributed": verdict.attribution_problem,
        },
        "decision": {
            "action": decision.action,
            "reason": decision.reason,
            "critical_count": decision.critical_count,
            "threshold": decision.threshold,
        },
        "rollback": _rollback(rollback, overrides, values),
        "manual_rollback_command": values.get("manual_command", ""),
        "deployment": deployment_of(smoke, summary),
        "timeline": [{"event": name, "at": iso(stamp)} for name, stamp in events if stamp],
        "checks": checks,
        "exit_status": summary.exit_status,
        "rerun_command": rerun or rerun_command(smoke),
        "notes": [n for n in summary.notes if n],
        "notifications": list(summary.notifications),
        "fleet": fleet_entry(smoke),
    }
    redacted: dict[str, Any] = redactor.value(document)
    _keep_timestamps(redacted, document)
    return cast("ReportDocument", redacted)


def fleet_entry(smoke: SmokeConfig) -> FleetEntry | None:
    """Which fleet target this report is, for ``python -m pytest_smoke.fleet merge``: the target,
    its labels and wave, the config's digest and the fleet run's id (SMOKE_FLEET_RUN_ID)."""
    if smoke.target is None or smoke.fleet is None:
        return None
    return {
        "target": smoke.target.name,
        "labels": dict(smoke.target.labels),
        "wave": smoke.target.wave,
        "config_digest": smoke.fleet.digest,
        "run_id": smoke.fleet_run_id,
    }


def _keep_timestamps(redacted: dict[str, Any], document: Mapping[str, Any]) -> None:
    """Put back the timestamps the plugin wrote: made from the clock, they hold no secret, and a
    short secret that looks like a year ("2026") would otherwise mask them and leave every
    consumer (the chart, dashboards) with an unreadable time."""
    for key in ("started_at", "finished_at"):
        redacted[key] = document[key]
    for masked, original in zip(redacted["checks"], document["checks"]):
        masked["finished_at"] = original["finished_at"]
    for masked, original in zip(redacted["timeline"], document["timeline"]):
        masked["at"] = original["at"]
    if redacted.get("rollback") and document.get("rollback"):
        for key in ("started_at", "finished_at"):
            if key in document["rollback"]:
                redacted["rollback"][key] = document["rollback"][key]


def _rollback(rollback: Any, overrides: Any, values: dict[str, str]) -> dict[str, Any] | None:
    if rollback is None:
        return None
    plan = rollback.plan
    remedy_name = ROLLBACK_REMEDIES.get(rollback.status)
    return {
        "status": rollback.status,
        "message": rollback.message,
        "attempts": rollback.attempts,
        "handler": plan.handler if plan else None,
        "manual_command": plan.manual_command if plan else None,
        "from_revision": plan.from_revision if plan else None,
        "to_revision": plan.to_revision if plan else None,
        "current_images": plan.current_images if plan else {},
        "target_images": plan.target_images if plan else {},
        "confirmation": rollback.confirmation,
        "verification": rollback.verification,
        "progress": rollback.progress,
        "started_at": iso(rollback.started_at),
        "finished_at": iso(rollback.finished_at),
        "target_verified": bool(plan and plan.details.get("verified")),
        "next_steps": fill_steps(remedy(remedy_name, overrides).steps, values) if remedy_name else [],
    }


def headline(document: ReportDocument) -> str:
    state = document["verdict"]["state"]
    rollback = document["rollback"]
    if state == "passed":
        return "✓ Smoke tests passed"
    if state == "warning":
        return "⚠ WARNING: Non-critical test failed (deployment continues)"
    if state == "critical":
        tail = CRITICAL_TAILS.get(rollback["status"], "") if rollback else ""
        return f"✗ CRITICAL: Smoke tests failed{tail}"
    if state == "inconclusive" and document["verdict"].get("unattributed"):
        return (
            "? INCONCLUSIVE: the results cannot be attributed to the deploy - "
            "no rollback, nothing marked, deployment NOT verified"
        )
    if state == "inconclusive":
        return "? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified"
    if state == "partial":
        return "◐ PARTIAL: required checks not selected - deployment NOT verified"
    return f"Smoke tests: no verdict ({document['decision']['reason']})"
