"""What the incident channels (pagerduty, opsgenie, incident-webhook) share: which action an event
calls for, the deduplication key, and one JSON POST that honours a short ``Retry-After``.

Severity follows the verdict: a critical run or a failed rollback opens (triggers) an incident, a
warning does so only when the channel's ``notify_on`` lists ``warning``, and a green run resolves
the incident of the same Deployment and revision. After a rollback the incident stays open: a
bad revision that reached production is for people to review.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

from ..checks.http import Reply
from ..report.document import headline
from ..report.shape import ReportDocument
from .http_post import ChannelError, post_json

MAX_RETRY_AFTER_SECONDS = 5.0  # a longer wait is the answer itself: rate limited
# Incident channels also hear a green run, to resolve what an earlier run opened.
DEFAULT_NOTIFY_ON = ("rollback", "rollback_failed", "awaiting_confirmation", "rollback_refused", "critical", "passed")


@dataclass
class Delivery:
    """What a channel reports: a line for the verdict, and the ticket the service returned."""

    detail: str
    ticket: str | None = None


def action(event: str) -> tuple[str, str]:
    """("trigger", severity) or ("resolve", "")."""
    if event == "passed":
        return "resolve", ""
    return "trigger", "warning" if event == "warning" else "critical"


def dedup_key(document: ReportDocument) -> str:
    """One incident per Deployment and revision: ``pytest-smoke/production/shop/web/rev-7``. Without
    a Deployment, per service address (two services whose configs share a file name never share an
    incident). A fleet target has its own (``pytest-smoke/production/eu-west-1/shop/web/rev-7``):
    the same Deployment in two clusters is two incidents."""
    deployment, fleet = document["deployment"], document.get("fleet")
    parts = ["pytest-smoke", document.get("environment") or "default"]
    if fleet:
        parts.append(fleet["target"])
    if deployment:
        parts += [deployment["namespace"], deployment["name"]]
        if deployment["revision"] is not None:
            parts.append(f"rev-{deployment['revision']}")
    else:
        parts.append(str(document.get("base_url") or document.get("config", "")))
    return "/".join(parts)


def summary_line(document: ReportDocument) -> str:
    """The incident's title: what failed, where."""
    deployment = document["deployment"]
    where = f" on {deployment['namespace']}/{deployment['name']}" if deployment else ""
    if deployment and deployment["revision"] is not None:
        where += f" (revision {deployment['revision']})"
    failed = [check["name"] for check in document["checks"] if check["severity"] == "critical"]
    tail = f": {', '.join(failed)}" if failed else ""
    return f"{headline(document)}{where}{tail}"


def post(url: str, body: Any, headers: Mapping[str, str], what: str) -> Reply:
    """POST ``body`` as JSON; on 429 with a short Retry-After, wait and try once more. Any answer
    other than 2xx raises, naming the status and the service's own error message."""
    for attempt in (1, 2):
        response = post_json(url, body, headers, what)
        if response.status == 429 and attempt == 1:
            wait = _retry_after(response)
            if wait is not None and wait <= MAX_RETRY_AFTER_SECONDS:
                time.sleep(wait)
                continue
        if response.status >= 300:
            raise ChannelError(f"{what} answered {response.status}{_error_text(response)}")
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: Reply) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _error_text(response: Reply) -> str:
    """The service's explanation: PagerDuty's message and errors, Opsgenie's message and errors."""
    if response.status == 429:
        after = response.headers.get("Retry-After")
        return f" (rate limited{f'; Retry-After: {after} s' if after else ''})"
    try:
        answer = response.json()
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    parts = [str(answer["message"])] if answer.get("message") else []
    errors = answer.get("errors")
    if isinstance(errors, list):
        parts += [str(error) for error in errors]
    elif isinstance(errors, dict):
        parts += [f"{key}: {value}" for key, value in errors.items()]
    return f": {'; '.join(parts)}" if parts else ""


def lookup(answer: Any, path: str) -> Any:
    """``body.ticket.id`` in a JSON answer (the leading ``body`` names the answer itself)."""
    parts = path.split(".")
    if parts and parts[0] == "body":
        parts = parts[1:]
    value = answer
    for part in parts:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value
