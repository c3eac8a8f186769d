"""``incident-webhook``: the run's JSON report POSTed to a ticketing service; the ticket id is read
from its answer at ``ticket_id_path`` (``body.ticket.id``)."""

from __future__ import annotations

from typing import Any, Mapping

from ..report.shape import ReportDocument
from .incident import Delivery, action, lookup, post


def send(document: ReportDocument, channel: Mapping[str, Any], event: str) -> Delivery:
    event_action, severity = action(event)
    body = {"event": event, "action": event_action, "severity": severity or "info", **document}
    response = post(channel["url"], body, channel.get("headers") or {}, "the incident webhook")
    try:
        ticket = lookup(response.json(), channel.get("ticket_id_path", "body.id"))
    except ValueError:
        ticket = None
    if isinstance(ticket, (str, int)) and not isinstance(ticket, bool) and str(ticket):
        return Delivery(f"Incident ticket created: {ticket}", ticket=str(ticket))
    if event_action == "resolve":
        return Delivery("resolution delivered")
    return Delivery(f"delivered; no ticket id at {channel.get('ticket_id_path', 'body.id')} in the answer")
