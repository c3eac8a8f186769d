"""Generic webhook: the JSON report POSTed; an id in the answer is the incident reference."""

from __future__ import annotations

from typing import Any, Mapping

import requests

from .incident import Delivery

TIMEOUT_SECONDS = 10
REFERENCE_KEYS = ("incident", "ticket", "id", "key", "number")


def send(document: Mapping[str, Any], channel: Mapping[str, Any], event: str) -> Delivery | str:
    body = {"event": event, **document}
    response = requests.post(channel["url"], json=body, headers=dict(channel.get("headers") or {}), timeout=TIMEOUT_SECONDS)
    if response.status_code >= 300:
        raise RuntimeError(f"webhook answered {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        return "delivered"
    if isinstance(answer, dict):
        for key in REFERENCE_KEYS:
            if isinstance(answer.get(key), (str, int)):
                return Delivery(f"Incident ticket created: {answer[key]}", ticket=str(answer[key]))
    return "delivered"
