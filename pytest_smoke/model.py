"""The run's data, and how a check's result travels on its pytest report. Plain Python, no pytest.

A generated item (or a custom test in a smoke run) carries what the controller needs in
``report.user_properties`` as ``smoke_<key>`` pairs, because under pytest-xdist the controller
never sees the item itself, only its serialized reports. One encoder, one decoder.

:class:`RunSummary` is what the run concluded (verdict, decision, rollback, timeline, notes): the
one input of the report document, which every renderer reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

if TYPE_CHECKING:  # types only: the model sits below every layer that produces these
    from .cluster.rollback import RollbackResult
    from .verdict import Decision, Verdict

# What a check is, how it ended, and what the run calls for: the words every layer shares.
CheckKind = Literal["health", "dependency", "critical_path", "custom"]
Status = Literal["passed", "failed", "not_evaluated", "not_run", "skipped", "not_selected"]
Action = Literal[
    "none", "rollback", "confirm", "disabled", "below_threshold", "no_rollback_helps", "dry_run", "vetoed",
    "inconclusive", "not_evaluated",
]
RollbackStatus = Literal[
    "completed", "still_failing", "failed", "superseded", "refused", "dry_run", "awaiting_confirmation", "not_configured",
]

CHECK_KINDS: tuple[CheckKind, ...] = ("health", "dependency", "critical_path", "custom")


def check_kind(value: Any) -> CheckKind:
    """A kind read back from a report: one of CHECK_KINDS, else "custom" (a developer's test)."""
    return next((kind for kind in CHECK_KINDS if kind == value), "custom")


PREFIX = "smoke_"
# Facts a check reports for the outputs (endpoint, HTTP status, timing, attempts, summary).
FACT_KEYS = ("endpoint", "status", "elapsed_ms", "attempts", "redirects", "summary")


def encode(key: str, value: Any) -> tuple[str, Any]:
    return (PREFIX + key, value)


def decode(user_properties: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The ``smoke_*`` properties of a report, prefix removed; the last value of a key wins."""
    return {k[len(PREFIX) :]: v for k, v in user_properties if isinstance(k, str) and k.startswith(PREFIX)}


def facts_of(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {key: properties[key] for key in FACT_KEYS if key in properties}


@dataclass
class Timeline:
    checks_started: float = field(default_factory=time.time)
    deployment_completed: float | None = None
    failures_detected: float | None = None
    rollback_started: float | None = None
    rollback_finished: float | None = None


@dataclass
class RunSummary:
    verdict: Verdict
    decision: Decision
    rollback: RollbackResult | None = None
    timeline: Timeline = field(default_factory=Timeline)
    notes: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    exit_status: int = 0
