"""Notification channels: ``slack``, ``webhook`` and ``email``.

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


CHANNEL_DEADLINE_SECONDS = 15.0


def dispatch(
    document: Mapping[str, Any],
    channels: Mapping[str, Mapping[str, Any]],
    names: list[str],
    redactor: Redactor,
    deadline_seconds: float = CHANNEL_DEADLINE_SECONDS,
) -> list[dict[str, Any]]:
    """Send to each named channel; returns one record per channel: name, type, status, detail.

    Channels are sent in parallel, each within one total deadline whatever its server does (a
    trickling webhook included): a late channel is a warning and never holds the run.
    """
    from ..checks.base import CheckTimeout, Deadline, run_with_deadline

    event = event_of(document)
    results: list[dict[str, Any] | None] = []
    pending = []
    for name in names:
        channel = channels.get(name)
        if channel is None:
            if event in DEFAULT_NOTIFY_ON:  # it would have been told: say that nobody was
                results.append({"channel": name, "type": None, "status": "skipped",
                                "detail": f"channel {name!r} is not defined under notifications"})
            continue
        if event not in channel.get("notify_on", DEFAULT_NOTIFY_ON):
            continue
        results.append(None)
        pending.append((len(results) - 1, name, channel))

    deadline = Deadline(deadline_seconds)
    threads = []
    for index, name, channel in pending:
        def send(index: int = index, name: str = name, channel: Mapping[str, Any] = channel) -> None:
            try:
                sender = importlib.import_module(SENDERS[channel["type"]])
                detail = run_with_deadline(lambda: sender.send(document, channel, event), deadline, what=f"channel {name}")
            except CheckTimeout:
                results[index] = {"channel": name, "type": channel["type"], "status": "failed",
                                  "detail": f"no answer within {deadline_seconds:g} s; not waiting any longer"}
            except Exception as exc:  # a dead channel is a warning, never a crash
                results[index] = {"channel": name, "type": channel["type"], "status": "failed",
                                  "detail": redactor.excerpt(f"{exc.__class__.__name__}: {exc}", 300)}
            else:
                results[index] = {"channel": name, "type": channel["type"], "status": "sent",
                                  "detail": redactor.excerpt(detail or "", 300)}

        thread = threading.Thread(target=send, name=f"smoke-notify {name}", daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(deadline.remaining() + 1.0)
    for index, name, channel in pending:
        if results[index] is None:
            results[index] = {"channel": name, "type": channel["type"], "status": "failed",
                              "detail": f"no answer within {deadline_seconds:g} s; not waiting any longer"}
    return [r for r in results if r is not None]
