"""Classify check outcomes and decide what the run calls for. Plain Python, no pytest.

The rules come from the seed's failure-handling table:

- a required check that ran and failed (a timeout included) is **critical**;
- an optional check that failed is a **warning**: the deployment continues;
- a check that could not run (setup error, internal error, crashed optional worker) is a
  **warning** and never alone triggers a rollback;
- ``critical >= critical_failure_threshold`` calls for a rollback; with
  ``requires_ops_confirmation`` a single critical failure waits for confirmation, two or more
  ("multiple failures detected") roll back at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# Process exit codes. 0, 1, 4 and 5 keep pytest's meaning.
EXIT_OK = 0  # everything passed, or only warnings: the deployment continues
EXIT_CRITICAL = 1  # critical failures (rolled back, awaiting confirmation, or rollback off)
EXIT_USAGE = 4  # config error: nothing was checked, nothing was rolled back
EXIT_ROLLBACK_FAILED = 10  # a rollback was attempted and failed: a human must act now
EXIT_ROLLOUT_NOT_READY = 11  # --smoke-wait-rollout: the deployment never finished rolling out; no check ran

CRITICAL = "critical"
WARNING = "warning"
PASSED = "passed"
SKIPPED = "skipped"


@dataclass
class Outcome:
    """One check's result as the verdict sees it."""

    nodeid: str
    name: str
    kind: str  # health, dependency, critical_path, custom
    required: bool
    status: str  # passed, failed, error, skipped
    reason: str = ""
    failure_kind: str = ""
    duration: float = 0.0
    finished_at: float = field(default_factory=time.time)
    facts: dict[str, Any] = field(default_factory=dict)
    details: str = ""
    warning: str = ""  # a passing check that still deserves attention: flaky, failed cleanup

    @property
    def severity(self) -> str:
        if self.status == "passed":
            return WARNING if self.warning else PASSED
        if self.status == "skipped":
            return SKIPPED
        if self.status == "failed" and self.required:
            return CRITICAL
        return WARNING


@dataclass
class Verdict:
    outcomes: list[Outcome]

    @property
    def critical(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.severity == CRITICAL]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.severity == WARNING]

    @property
    def passed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.severity == PASSED]

    @property
    def state(self) -> str:
        if not self.outcomes or all(o.status == "skipped" for o in self.outcomes):
            return "no_checks"
        if self.critical:
            return CRITICAL
        if self.warnings:
            return WARNING
        return PASSED


def classify(outcomes: Iterable[Outcome]) -> Verdict:
    return Verdict(list(outcomes))


@dataclass
class Decision:
    """What the verdict calls for. ``action`` is one of:

    ``none`` (nothing to do), ``rollback`` (do it now), ``confirm`` (needs ops confirmation),
    ``disabled`` (auto_rollback is off), ``below_threshold``, ``dry_run`` (--smoke-no-rollback),
    ``vetoed`` (a pytest_smoke_decision hook said no), ``not_evaluated`` (interrupted run).
    """

    action: str
    reason: str
    critical_count: int = 0
    threshold: int = 1

    @property
    def wants_rollback(self) -> bool:
        return self.action in ("rollback", "confirm", "dry_run")


def decide(verdict: Verdict, auto_rollback: Mapping[str, Any], *, dry_run: bool = False) -> Decision:
    count = len(verdict.critical)
    threshold = int(auto_rollback.get("critical_failure_threshold", 1))
    if count == 0:
        return Decision("none", "no critical failures", count, threshold)
    if not auto_rollback.get("enabled", False):
        return Decision("disabled", "auto_rollback is not enabled", count, threshold)
    if count < threshold:
        return Decision(
            "below_threshold", f"{count} critical failure(s), below the threshold of {threshold}", count, threshold
        )
    if dry_run:
        return Decision("dry_run", "--smoke-no-rollback: dry run, nothing is changed", count, threshold)
    if auto_rollback.get("requires_ops_confirmation", True) and count == 1:
        return Decision("confirm", "1 critical failure: rollback needs ops confirmation", count, threshold)
    if count > 1:
        return Decision("rollback", f"multiple failures detected ({count} critical): immediate rollback", count, threshold)
    return Decision("rollback", "critical failure detected: automatic rollback", count, threshold)


def exit_code(verdict: Verdict, rollback_status: str | None) -> int:
    if rollback_status == "failed":
        return EXIT_ROLLBACK_FAILED
    if verdict.critical:
        return EXIT_CRITICAL
    return EXIT_OK
