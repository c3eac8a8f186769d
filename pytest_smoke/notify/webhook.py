"""Generic webhook: the JSON report POSTed; an id in the answer is the incident reference."""

from __future__ import annotations

from typing import Any, Mapping

from ..report.shape import ReportDocument
from .http_post import ChannelError, post_json
from .incident import Delivery

REFERENCE_KEYS = ("incident", "ticket", "id", "key", "number")


def send(document: ReportDocument, channel: Mapping[str, Any], event: str) -> Delivery | str:
    body = {"event": event, **document}
    response = post_json(channel["url"], body, channel.get("headers") or {}, "the webhook")
    if response.status >= 300:
        raise ChannelError(f"webhook answered {response.status}")
    try:
        answer = response.json()
    except ValueError:
        return "delivered"
    if isinstance(answer, dict):
        for key in REFERENCE_KEYS:
            if isinstance(answer.get(key), (str, int)):
                return Delivery(f"Incident ticket created: {answer[key]}", ticket=str(answer[key]))
    return "delivered"
