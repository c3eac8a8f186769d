"""Notification channels: ``slack``, ``webhook`` and ``email``, and the incident channels
``pagerduty``, ``opsgenie`` and ``incident-webhook`` (see ``incident.py``).

``rollback_strategy.notify_channels`` names channels defined under ``notifications``. A channel is
told about events in its ``notify_on`` list (default: rollback, rollback_failed,
awaiting_confirmation, rollback_refused, critical; add ``warning`` or ``passed`` to hear more).
A failing channel is reported as a warning line; it never breaks the run or loses a report.
Everything sent comes from the already-redacted report document.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Mapping

from ..checks.base import CheckTimeout, Deadline, run_with_deadline
from ..redact import Redactor
from ..report.shape import ReportDocument
from .http_post import ChannelError
from .incident import DEFAULT_NOTIFY_ON as INCIDENT_NOTIFY_ON

SENDERS = {
    "slack": "pytest_smoke.notify.slack",
    "webhook": "pytest_smoke.notify.webhook",
    "email": "pytest_smoke.notify.email",
    "pagerduty": "pytest_smoke.notify.pagerduty",
    "opsgenie": "pytest_smoke.notify.opsgenie",
    "incident-webhook": "pytest_smoke.notify.incident_webhook",
}
INCIDENT_TYPES = frozenset({"pagerduty", "opsgenie", "incident-webhook"})
DEFAULT_NOTIFY_ON = ("rollback", "rollback_failed", "awaiting_confirmation", "rollback_refused", "critical")
ROLLBACK_EVENTS = {
    "completed": "rollback",
    "failed": "rollback_failed",
    "still_failing": "rollback_failed",
    "unmarked": "rollback_failed",
    "not_configured": "rollback_failed",
    "superseded": "rollback_refused",
    "awaiting_confirmation": "awaiting_confirmation",
    "refused": "rollback_refused",
    "held": "rollback_refused",
    "dry_run": "dry_run",
}


def event_of(document: ReportDocument) -> str:
    rollback = document.get("rollback")
    if rollback and rollback["status"] in ROLLBACK_EVENTS:
        return ROLLBACK_EVENTS[rollback["status"]]
    return str(document["verdict"]["state"])


def notify_on_default(channel_type: str) -> tuple[str, ...]:
    """The events a channel hears unless its ``notify_on`` says otherwise; an incident channel
    also hears a green run, to resolve what an earlier run opened."""
    return INCIDENT_NOTIFY_ON if channel_type in INCIDENT_TYPES else DEFAULT_NOTIFY_ON


CHANNEL_DEADLINE_SECONDS = 15.0
SECOND_WAVE_SECONDS = 5.0  # the least the other channels get after the incident channels


def dispatch(
    document: ReportDocument,
    channels: Mapping[str, Mapping[str, Any]],
    names: list[str],
    redactor: Redactor,
    deadline_seconds: float = CHANNEL_DEADLINE_SECONDS,
) -> list[dict[str, Any]]:
    """Send to each named channel; returns one record per channel: name, type, status, detail
    (and ``ticket`` when the service opened one).

    Incident channels go first, so that the other channels' messages name the ticket; within each
    wave channels are sent in parallel, each within one total deadline whatever its server does
    (a trickling webhook included): a late channel is a warning and never holds the run.
    """
    event = event_of(document)
    results: list[dict[str, Any] | None] = []
    pending: list[tuple[int, str, Mapping[str, Any]]] = []
    for name in names:
        channel = channels.get(name)
        if channel is None:
            if event in DEFAULT_NOTIFY_ON:  # it would have been told: say that nobody was
                results.append(
                    {
                        "channel": name,
                        "type": None,
                        "status": "skipped",
                        "detail": f"channel {name!r} is not defined under notifications",
                    }
                )
            continue
        if event not in channel.get("notify_on", notify_on_default(channel["type"])):
            continue
        results.append(None)
        pending.append((len(results) - 1, name, channel))

    # One deadline for both waves: the second gets what the first left, and at least a few
    # seconds, so that slow incident channels cannot silence the others.
    deadline = Deadline(deadline_seconds)
    incidents = [entry for entry in pending if entry[2]["type"] in INCIDENT_TYPES]
    _send_wave(incidents, document, event, results, redactor, deadline)
    tickets = [r["ticket"] for r in results if r is not None and r.get("ticket")]
    told = {**document, "incidents": tickets} if tickets else document
    others = [entry for entry in pending if entry not in incidents]
    second = (
        deadline if not incidents else Deadline(max(deadline.remaining(), min(SECOND_WAVE_SECONDS, deadline_seconds)))
    )
    _send_wave(others, told, event, results, redactor, second)
    return [r for r in results if r is not None]


def _send_wave(
    pending: list[tuple[int, str, Mapping[str, Any]]],
    document: ReportDocument,
    event: str,
    results: list[dict[str, Any] | None],
    redactor: Redactor,
    deadline: Any,
) -> None:
    if not pending:
        return
    deadline_seconds = round(deadline.seconds, 1)
    threads = []
    for index, name, channel in pending:

        def send(index: int = index, name: str = name, channel: Mapping[str, Any] = channel) -> None:
            try:
                sender = importlib.import_module(SENDERS[channel["type"]])
                detail = run_with_deadline(
                    lambda: sender.send(document, channel, event), deadline, what=f"channel {name}"
                )
            except CheckTimeout:
                results[index] = {
                    "channel": name,
                    "type": channel["type"],
                    "status": "failed",
                    "detail": f"no answer within {deadline_seconds:g} s; not waiting any longer",
                }
            except Exception as exc:  # a dead channel is a warning, never a crash
                said = str(exc) if isinstance(exc, ChannelError) else f"{exc.__class__.__name__}: {exc}"
                results[index] = {
                    "channel": name,
                    "type": channel["type"],
                    "status": "failed",
                    "detail": redactor.excerpt(said, 300),
                }
            else:
                ticket = getattr(detail, "ticket", None)
                text = str(getattr(detail, "detail", detail) or "")
                record = {
                    "channel": name,
                    "type": channel["type"],
                    "status": "sent",
                    "detail": redactor.excerpt(text, 300),
                }
                if ticket:
                    record["ticket"] = redactor.excerpt(str(ticket), 200)
                results[index] = record

        thread = threading.Thread(target=send, name=f"smoke-notify {name}", daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(deadline.remaining() + 1.0)
    for index, name, channel in pending:
        if results[index] is None:
            results[index] = {
                "channel": name,
                "type": channel["type"],
                "status": "failed",
                "detail": f"no answer within {deadline_seconds:g} s; not waiting any longer",
            }
