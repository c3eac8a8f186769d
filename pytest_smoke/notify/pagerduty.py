"""``pagerduty``: PagerDuty Events API v2. ``trigger`` on a critical run or a failed rollback
(and on a warning when ``notify_on`` lists it), ``resolve`` when a later run of the same
Deployment and revision is green. The ``dedup_key`` names the Deployment and the revision."""

from __future__ import annotations

from typing import Any, Mapping

from ..report.shape import ReportDocument
from .incident import Delivery, action, dedup_key, post, summary_line

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024  # the Events API's limit on payload.summary


def send(document: ReportDocument, channel: Mapping[str, Any], event: str) -> Delivery:
    event_action, severity = action(event)
    key = dedup_key(document)
    body: dict[str, Any] = {"routing_key": channel["routing_key"], "event_action": event_action, "dedup_key": key}
    if event_action == "trigger":
        deployment = document["deployment"]
        body["payload"] = {
            "summary": summary_line(document)[:SUMMARY_LIMIT],
            "source": f"{deployment['namespace']}/{deployment['name']}" if deployment else str(document["config"]),
            "severity": severity,
            "timestamp": document["finished_at"],
            "component": deployment["name"] if deployment else "smoke",
            "group": document.get("environment") or "default",
            "class": "post-deploy smoke test",
            "custom_details": {
                "verdict": document["verdict"]["state"],
                "decision": document["decision"]["reason"],
                "rollback": document["rollback"]["status"] if document["rollback"] else None,
                "failed": {c["name"]: c["reason"] for c in document["checks"] if c["severity"] == "critical"},
                "manual_rollback_command": document["manual_rollback_command"],
                "rerun_command": document["rerun_command"],
            },
        }
    answer = post(channel.get("events_url") or EVENTS_URL, body, {}, "PagerDuty").json()
    returned = str(answer.get("dedup_key") or key) if isinstance(answer, dict) else key
    if event_action == "resolve":
        return Delivery(f"incident resolved: {returned}")
    return Delivery(f"Incident ticket created: {returned}", ticket=returned)
