"""How a check's result travels on its pytest report. Plain Python, no pytest.

A generated item (or a custom test in a smoke run) carries what the controller needs in
``report.user_properties`` as ``smoke_<key>`` pairs, because under pytest-xdist the controller
never sees the item itself, only its serialized reports. One encoder, one decoder.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

PREFIX = "smoke_"
# Facts a check reports for the outputs (endpoint, HTTP status, timing, attempts, summary).
FACT_KEYS = ("endpoint", "status", "elapsed_ms", "attempts", "summary")


def encode(key: str, value: Any) -> tuple[str, Any]:
    return (PREFIX + key, value)


def decode(user_properties: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The ``smoke_*`` properties of a report, prefix removed; the last value of a key wins."""
    return {k[len(PREFIX) :]: v for k, v in user_properties if isinstance(k, str) and k.startswith(PREFIX)}


def facts_of(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {key: properties[key] for key in FACT_KEYS if key in properties}
