"""The terminal verdict, in the seed's three shapes (passed, warnings only, critical) plus the
inconclusive and partial runs. Rendered from the report document, like every other output, so
the remediation and the wording are chosen once (in ``document.build``)."""

from __future__ import annotations

import calendar
import time
from typing import Any, Iterator, Mapping

from ..model import KIND_RANK, RAN, ROLLBACK_NEEDS_A_HUMAN
from .document import CRITICAL_TAILS
from .shape import ReportDocument

Line = tuple[str, dict[str, bool]]
Document = ReportDocument

KIND_TITLES = {
    "health": "Health Check",
    "dependency": "Dependency",
    "critical_path": "Critical Path",
    "metric": "Metric",
    "custom": "Smoke Test",
}
ROLLBACK_HEADLINES = {
    "completed": "Automatic rollback completed",
    "unmarked": "ROLLED BACK, REJECTION MARK NOT WRITTEN: alert ops team",
    "failed": "ROLLBACK FAILED: alert ops team immediately",
    "still_failing": "ROLLED BACK, STILL FAILING: alert ops team immediately",
    "superseded": "Rollback stood down: the Deployment changed since the checks started",
    "refused": "ROLLBACK REFUSED: the rollback that was due did not happen: alert ops team",
    "dry_run": "Dry run (--smoke-no-rollback): rollback NOT performed",
    "held": "ROLLBACK HELD for a human to decide (the status says why): alert ops team",
    "awaiting_confirmation": "Rollback awaiting ops confirmation",
    "not_configured": "ROLLBACK NOT POSSIBLE: no Deployment to roll back is configured: alert ops team",
}


def _clock(iso_stamp: str | None) -> str:
    """A document timestamp (UTC, ISO 8601) as local wall-clock time, as a terminal shows it."""
    if not iso_stamp:
        return "--:--:--"
    epoch = calendar.timegm(time.strptime(iso_stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _event(document: Document, name: str) -> str | None:
    return next((e["at"] for e in document["timeline"] if e["event"] == name), None)


def _ranked(checks: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(checks, key=lambda c: (KIND_RANK.get(c["kind"], 3), c.get("order", 0), c["nodeid"]))


def _with(document: Document, severity: str) -> list[Mapping[str, Any]]:
    return _ranked([c for c in document["checks"] if c["severity"] == severity])


def render(document: Document) -> Iterator[Line]:
    verdict, decision = document["verdict"], document["decision"]
    if decision["action"] == "not_evaluated":
        yield f"smoke: no verdict: {decision['reason']}", {"yellow": True}
        return
    state = verdict["state"]
    warnings = _with(document, "warning")
    if state == "critical":
        yield from _critical(document)
    elif state == "inconclusive":
        yield from _inconclusive(document)
    else:
        if state == "partial":
            yield from _partial(document)
        if warnings:
            yield from _warnings(document, headline=state != "partial")
        elif state == "passed":
            yield from _passed(document)
    completed = _event(document, "deployment_completed")
    if state in ("passed", "warning", "partial") and completed:
        yield f"Deployment completed: {_clock(completed)} (checks started after the rollout)", {}
    for note in document["notes"]:
        yield f"Note: {note}", {}
    yield f"Re-run: {document['rerun_command']}", {}


# A passing group lists this many names; past that, a count (a 1000-check run is one line, not 1000
# names). Failures, and checks that did not run, are always named in full.
PASSED_NAMES_SHOWN = 10


def _names(checks: list[Mapping[str, Any]]) -> str:
    names = [str(c["name"]) for c in checks]
    if len(names) <= PASSED_NAMES_SHOWN + 1:
        return ", ".join(names)
    return f"{', '.join(names[:PASSED_NAMES_SHOWN])} and {len(names) - PASSED_NAMES_SHOWN} more"


def _group_line(title: str, checks: list[Mapping[str, Any]]) -> str:
    if not checks:
        return f"- {title}: none configured"
    ran = [c for c in checks if c["status"] in RAN]
    left_out = [c["name"] for c in checks if c["status"] not in RAN]
    tail = f"; not run: {', '.join(left_out)}" if left_out else ""
    if not ran:
        return f"- {title}: not selected ({', '.join(left_out)})"
    bad = [c for c in ran if c["severity"] != "passed"]
    if not bad:
        return f"- {title}: OK ({_names(ran)}){tail}"
    words = {"passed": "flaky", "not_evaluated": "not evaluated"}
    shown = ", ".join(f"{c['name']} {words.get(c['status'], 'failed')}" for c in bad)
    return f"- {title}: {len(ran) - len(bad)}/{len(ran)} OK ({shown}){tail}"


def _groups(document: Document) -> Iterator[Line]:
    def by_kind(kind: str) -> list[Mapping[str, Any]]:
        return [c for c in document["checks"] if c["kind"] == kind]

    yield _group_line("Health check", by_kind("health")), {}
    yield _group_line("Dependencies", by_kind("dependency")), {}
    yield _group_line("Critical paths", by_kind("critical_path")), {}
    metrics = by_kind("metric")
    if metrics:
        yield _group_line("Metrics", metrics), {}
    custom = by_kind("custom")
    if custom:
        yield _group_line("Custom smoke tests", custom), {}


def _inconclusive(document: Document) -> Iterator[Line]:
    if document["verdict"].get("unattributed"):
        yield from _unattributed(document)
        return
    yield (
        "? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified",
        {"yellow": True, "bold": True},
    )
    yield "", {}
    yield "NOT EVALUATED (required):", {"yellow": True}
    unverified = _ranked(
        [c for c in document["checks"] if c["required"] and c["status"] in ("not_evaluated", "not_run")]
    )
    for number, check in enumerate(unverified, 1):
        yield (
            f"{number}. {KIND_TITLES.get(check['kind'], 'Check')}: {check['name']}: {check['reason']}",
            {"yellow": True},
        )
    others = [c for c in _with(document, "warning") if c not in unverified]
    if others:
        yield "Warnings (non-critical):", {"yellow": True}
        for check in others:
            yield f"- {check['name']}: {check['reason']}", {"yellow": True}
    yield "", {}
    yield from _groups(document)
    yield "Impact: the deployment is neither verified nor rolled back: the runner, not the service, is at fault", {}
    yield "Next: fix what kept the checks from running (see the reasons above), then re-run the smoke suite", {}


def _unattributed(document: Document) -> Iterator[Line]:
    yield (
        (
            "? INCONCLUSIVE: the results cannot be attributed to the deploy - "
            "no rollback, nothing marked, deployment NOT verified"
        ),
        {"yellow": True, "bold": True},
    )
    yield f"Reason: {document['verdict']['unattributed']}", {"yellow": True}
    failed = _with(document, "critical")
    if failed:
        yield "Failed (not counted against the deploy):", {"yellow": True}
        for check in failed:
            yield f"- {KIND_TITLES.get(check['kind'], 'Check')} {check['name']}: {check['reason']}", {"yellow": True}
    yield "", {}
    yield from _groups(document)
    if any(c.get("precondition") and c["status"] == "failed" for c in document["checks"]):
        yield (
            "Next: fix the runner's setup the precondition names (the smoke credentials, the network), then re-run",
            {},
        )
    else:
        yield "Next: wait until the rollout is complete (or pass --smoke-wait-rollout), then re-run the smoke suite", {}


def _partial(document: Document) -> Iterator[Line]:
    unselected = [c for c in document["checks"] if c["required"] and c["status"] in ("not_selected", "skipped")]
    names = ", ".join(c["name"] for c in unselected)
    how = "not selected or skipped" if any(c["status"] == "skipped" for c in unselected) else "not selected"
    yield f"◐ PARTIAL: required checks {how} ({names}) - deployment NOT verified", {"yellow": True, "bold": True}
    for reason in sorted({c["reason"] for c in unselected}):
        yield f"- {reason}", {}
    yield from _groups(document)


def _passed(document: Document) -> Iterator[Line]:
    yield "✓ Smoke tests passed (all health checks OK)", {"green": True, "bold": True}
    yield from _groups(document)
    yield "Deployment stable. Monitoring active.", {"green": True}


def _warnings(document: Document, headline: bool = True) -> Iterator[Line]:
    warnings = _with(document, "warning")
    if headline:
        yield "⚠ WARNING: Non-critical test failed (deployment continues)", {"yellow": True, "bold": True}
    for check in warnings:
        label = "not evaluated: a problem of the runner" if check["status"] == "not_evaluated" else "non-critical"
        yield (
            f"- {KIND_TITLES.get(check['kind'], 'Check')} {check['name']}: {check['reason']} ({label})",
            {"yellow": True},
        )
    yield "", {}
    yield "Impact: Minor feature degradation", {}
    yield "Monitoring: Alert if pattern persists", {}
    yield f"Action: Check {', '.join(c['name'] for c in warnings)} status in next 30min", {}
    # The same advice once, with every check it covers.
    covered: dict[str, list[str]] = {}
    for check in warnings:
        for step in check["remediation"]["steps"]:
            covered.setdefault(step, []).append(check["name"])
    for step, names in covered.items():
        yield f"  {', '.join(names)}: {step}", {}


def _critical(document: Document) -> Iterator[Line]:
    rollback, decision = document["rollback"], document["decision"]
    tail = (
        CRITICAL_TAILS.get(rollback["status"], "") if rollback else f" - No automatic rollback ({decision['reason']})"
    )
    yield f"✗ CRITICAL: Smoke tests failed{tail}", {"red": True, "bold": True}
    yield "", {}
    yield "CRITICAL FAILURES:", {"red": True}
    advised: dict[tuple[Any, ...], int] = {}  # the same remediation is printed once: "as for 1."
    for number, check in enumerate(_with(document, "critical"), 1):
        fix = check["remediation"]
        yield f"{number}. {KIND_TITLES.get(check['kind'], 'Check')}: {check['name']}: {check['reason']}", {"red": True}
        if check["attributed_to"] and decision["action"] == "no_rollback_helps":
            yield (
                (
                    f"Likely cause: dependency {check['attributed_to']} failed "
                    "(rollback: false: a rollback does not fix it)"
                ),
                {},
            )
        elif check["attributed_to"]:
            yield f"Likely cause: dependency {check['attributed_to']} failed (counts with it toward a rollback)", {}
        if check.get("shared_cause"):
            yield f"Same cause: {check['shared_cause']} (counts once, with it)", {}
        if not check["rollback"]:
            yield "Rollback: false for this check: it alerts, but rolling back does not fix it", {}
        advice = (fix["issue"], fix["impact"], *fix["steps"])
        if advice in advised:
            yield f"Issue, impact and next steps: as for {advised[advice]}. above", {}
            continue
        advised[advice] = number
        yield f"Issue: {fix['issue']}", {}
        yield f"Impact: {fix['impact']}", {}
        for step in fix["steps"]:
            yield f"Next: {step}", {}
    warnings = _with(document, "warning")
    if warnings:
        yield "", {}
        yield "Warnings (non-critical):", {"yellow": True}
        for check in warnings:
            yield f"- {check['name']}: {check['reason']}", {"yellow": True}
    yield from _not_run(document)
    yield "", {}
    yield from _rollback_lines(document)
    yield "", {}
    yield from _timeline(document)


def _not_run(document: Document) -> Iterator[Line]:
    """Required checks a critical run cut off (fail_fast, a certain rollback, -x): named, by reason."""
    by_reason: dict[str, list[Mapping[str, Any]]] = {}
    for check in document["checks"]:
        if check["required"] and check["status"] == "not_run":
            by_reason.setdefault(str(check["reason"]), []).append(check)
    for reason, checks in by_reason.items():
        yield f"Not run ({len(checks)} required): {_names(checks)}: {reason}", {"yellow": True}


def _rollback_lines(document: Document) -> Iterator[Line]:
    rollback = document["rollback"]
    if rollback is None:
        yield f"Rollback: not triggered ({document['decision']['reason']})", {}
        if document["manual_rollback_command"]:  # none without a Deployment in the config
            yield f"Manual rollback if needed: {document['manual_rollback_command']}", {}
        return
    status = rollback["status"]
    markup = {"red": True, "bold": True} if status in ROLLBACK_NEEDS_A_HUMAN else {}
    yield f"{ROLLBACK_HEADLINES.get(status, status)}:", markup
    current, target = rollback["current_images"], rollback["target_images"]
    for name, image in current.items():
        yield f"Current: {image}", {}
        yield f"Rollback to: {target.get(name, '?')}" + (f" (container {name})" if len(current) > 1 else ""), {}
    if rollback["to_revision"] is not None:
        verified = " (verified by an earlier green smoke run)" if rollback.get("target_verified") else ""
        yield f"Revision: {rollback['from_revision']} -> {rollback['to_revision']}{verified}", {}
    last = rollback["progress"][-1] if rollback["progress"] else rollback["message"]
    yield f"Status: {last}", markup
    if rollback["message"] and rollback["message"] != last:
        yield rollback["message"], markup
    if rollback["confirmation"]:
        yield f"Confirmation: {rollback['confirmation']}", {}
    if rollback["verification"]:
        yield f"Verification: {rollback['verification']}", {}
    for step in rollback.get("next_steps") or []:
        yield f"Next: {step}", {}


def _timeline(document: Document) -> Iterator[Line]:
    yield "Timeline:", {}
    rollback_status = document["rollback"]["status"] if document["rollback"] else ""
    labels = {
        "deployment_completed": "Deployment completed",
        "checks_started": "Smoke checks started",
        "failures_detected": "Critical failures detected",
        "rollback_started": "Rollback started",
        "rollback_finished": "Rollback complete"
        if rollback_status == "completed"
        else f"Rollback ended: {rollback_status}",
    }
    for event in document["timeline"]:
        yield f"{_clock(event['at'])} - {labels.get(event['event'], event['event'])}", {}
