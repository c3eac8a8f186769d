"""``opsgenie``: Opsgenie Alert API v2. Create the alert (its alias names the Deployment and the
revision, so a repeat run deduplicates), and close it by alias when a later run is green."""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from ..report.shape import ReportDocument
from .incident import Delivery, action, dedup_key, post, summary_line

API_URL = "https://api.opsgenie.com"
MESSAGE_LIMIT = 130  # the API's limit on message
ALIAS_LIMIT = 512


def send(document: ReportDocument, channel: Mapping[str, Any], event: str) -> Delivery:
    event_action, severity = action(event)
    alias = dedup_key(document)[:ALIAS_LIMIT]
    base = str(channel.get("api_url") or API_URL).rstrip("/")
    headers = {"Authorization": f"GenieKey {channel['api_key']}"}
    if event_action == "resolve":
        url = f"{base}/v2/alerts/{quote(alias, safe='')}/close?identifierType=alias"
        post(
            url,
            {"source": "pytest-deploy-smoke", "note": "a later smoke run of this revision is green"},
            headers,
            "Opsgenie",
        )
        return Delivery(f"alert closed: {alias}")
    deployment = document["deployment"]
    body = {
        "message": summary_line(document)[:MESSAGE_LIMIT],
        "alias": alias,
        "description": "\n".join(
            f"{c['name']}: {c['reason']}" for c in document["checks"] if c["severity"] in ("critical", "warning")
        ),
        "priority": "P1" if severity == "critical" else "P3",
        "source": "pytest-deploy-smoke",
        "entity": f"{deployment['namespace']}/{deployment['name']}" if deployment else str(document["config"]),
        "tags": ["smoke", document["verdict"]["state"]],
        "details": {
            "verdict": str(document["verdict"]["state"]),
            "rollback": str(document["rollback"]["status"] if document["rollback"] else None),
            "manual_rollback_command": str(document["manual_rollback_command"]),
        },
    }
    answer = post(f"{base}/v2/alerts", body, headers, "Opsgenie").json()
    request_id = answer.get("requestId") if isinstance(answer, dict) else None
    tail = f" (request {request_id})" if request_id else ""
    return Delivery(f"Incident ticket created: {alias}{tail}", ticket=alias)
