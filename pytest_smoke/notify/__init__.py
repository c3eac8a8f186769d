"""Notification channels: ``slack``, ``webhook`` and ``email``.

``rollback_strategy.notify_channels`` names channels defined under ``notifications``. A channel is
told about events in its ``notify_on`` list (default: rollback, rollback_failed,
awaiting_confirmation, rollback_refused, critical; add ``warning`` or ``passed`` to hear more).
A failing channel is reported as a warning line; it never breaks the run or loses a report.
Everything sent comes from the already-redacted report document.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from ..redact import Redactor

SENDERS = {
    "slack": "pytest_smoke.notify.slack",
    "webhook": "pytest_smoke.notify.webhook",
    "email": "pytest_smoke.notify.email",
}
DEFAULT_NOTIFY_ON = ("rollback", "rollback_failed", "awaiting_confirmation", "rollback_refused", "critical")
ROLLBACK_EVENTS = {
    "completed": "rollback",
    "failed": "rollback_failed",
    "still_failing": "rollback_failed",
    "superseded": "rollback_refused",
    "awaiting_confirmation": "awaiting_confirmation",
    "refused": "rollback_refused",
    "dry_run": "dry_run",
}


def event_of(document: Mapping[str, Any]) -> str:
    rollback = document.get("rollback")
    if rollback and rollback["status"] in ROLLBACK_EVENTS:
        return ROLLBACK_EVENTS[rollback["status"]]
    return str(document["verdict"]["state"])


def dispatch(
    document: Mapping[str, Any], channels: Mapping[str, Mapping[str, Any]], names: list[str], redactor: Redactor
) -> list[dict[str, Any]]:
    """Send to each named channel; returns one record per channel: name, type, status, detail."""
    event = event_of(document)
    results = []
    for name in names:
        channel = channels.get(name)
        if channel is None:
            if event in DEFAULT_NOTIFY_ON:  # it would have been told: say that nobody was
                results.append({"channel": name, "type": None, "status": "skipped",
                                "detail": f"channel {name!r} is not defined under notifications"})
            continue
        if event not in channel.get("notify_on", DEFAULT_NOTIFY_ON):
            continue
        try:
            sender = importlib.import_module(SENDERS[channel["type"]])
            detail = sender.send(document, channel, event)
        except Exception as exc:  # a dead channel is a warning, never a crash
            results.append({"channel": name, "type": channel["type"], "status": "failed",
                            "detail": redactor.text(f"{exc.__class__.__name__}: {exc}")[:300]})
        else:
            results.append({"channel": name, "type": channel["type"], "status": "sent", "detail": redactor.text(detail or "")})
    return results
