"""Classify check outcomes and decide what the run calls for. Plain Python, no pytest.

A check has three outcomes that matter: it **passed**, it **failed** (the service answered wrongly
or not at all), or it was **not evaluated** (the runner's fault: a bug, a missing tool, the run
budget). Only a failure counts toward a rollback. The seed's failure-handling table, with a floor:

- a required check that ran and failed (a timeout included) is **critical**;
- an optional check that failed is a **warning**: the deployment continues;
- a check that could not be evaluated is a **warning** and never alone triggers a rollback, but
  a *required* check that was not evaluated, or never ran (``-x``, the run budget, a crashed
  worker), makes the run **inconclusive**: no rollback, never "verified", a distinct exit code;
- a required check the user did not select (``-k``, ``-m``, ``--deselect``, ``enabled: false``,
  a skip marker) makes the run **partial**: the exit code follows what ran, never "verified";
- ``critical >= critical_failure_threshold`` calls for a rollback; with
  ``requires_ops_confirmation`` a single critical failure waits for confirmation, two or more
  ("multiple failures detected") roll back at once. Failures that a failed dependency explains
  count once with it, and a check with ``rollback: false`` alerts but never counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final, Iterable, Mapping

from .model import Action, CheckKind, Status

# Process exit codes. 0 to 5 keep pytest's meaning.
EXIT_OK = 0  # everything passed, or only warnings: the deployment continues
EXIT_CRITICAL = 1  # critical failures (rolled back, awaiting confirmation, dry run, or rollback off)
EXIT_INTERRUPTED = 2  # Ctrl-C, SIGTERM, collection errors: no verdict, no rollback
EXIT_INTERNAL_ERROR = 3  # pytest's INTERNALERROR: no verdict, no rollback
EXIT_USAGE = 4  # config or usage error: nothing was checked, nothing was rolled back
EXIT_NO_CHECKS = 5  # nothing was collected
EXIT_ROLLBACK_FAILED = 10  # a rollback was attempted and failed: a human must act now
EXIT_ROLLOUT_NOT_READY = 11  # --smoke-wait-rollout: the deployment never finished rolling out; no check ran
EXIT_INCONCLUSIVE = 12  # a required check was not evaluated or never ran: the deploy is not verified

CRITICAL = "critical"
WARNING = "warning"
PASSED = "passed"
SKIPPED = "skipped"
NOT_RUN = "not_run"
NOT_SELECTED = "not_selected"
INCONCLUSIVE = "inconclusive"
PARTIAL = "partial"
NO_CHECKS = "no_checks"

# Statuses of an Outcome.
STATUS_PASSED: Final = "passed"
STATUS_FAILED: Final = "failed"
STATUS_NOT_EVALUATED: Final = "not_evaluated"  # the runner could not tell: never the service's fault
STATUS_NOT_RUN: Final = "not_run"  # cut off: -x/--maxfail, fail_fast, the run budget, a crash
STATUS_SKIPPED: Final = "skipped"  # the user's own skip marker or pytest.skip
STATUS_NOT_SELECTED: Final = "not_selected"  # deselected with -k, -m, --deselect, or enabled: false
RAN = (STATUS_PASSED, STATUS_FAILED, STATUS_NOT_EVALUATED)

# Root cause first: a dependency failure explains the health and path failures after it.
KIND_RANK = {"dependency": 0, "health": 1, "critical_path": 2, "custom": 3}


@dataclass
class Outcome:
    """One check's result as the verdict sees it."""

    nodeid: str
    name: str
    kind: CheckKind
    required: bool
    status: Status
    reason: str = ""
    failure_kind: str = ""
    duration: float = 0.0
    finished_at: float = field(default_factory=time.time)
    facts: dict[str, Any] = field(default_factory=dict)
    details: str = ""
    warning: str = ""  # a passing check that still deserves attention: flaky, failed cleanup
    rollback: bool = True  # False: its failure alerts but does not count toward a rollback
    order: int = 0  # config order (custom tests after, in collection order)
    attributed_to: str = ""  # the failed dependency that likely explains this failure

    @property
    def severity(self) -> str:
        if self.status == STATUS_PASSED:
            return WARNING if self.warning else PASSED
        if self.status == STATUS_FAILED:
            return CRITICAL if self.required else WARNING
        if self.status == STATUS_NOT_EVALUATED:
            return WARNING
        return {STATUS_NOT_RUN: NOT_RUN, STATUS_NOT_SELECTED: NOT_SELECTED}.get(self.status, SKIPPED)

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (KIND_RANK.get(self.kind, 3), self.order, self.nodeid)


@dataclass
class Verdict:
    outcomes: list[Outcome]

    def __post_init__(self) -> None:
        self.outcomes = sorted(self.outcomes, key=lambda o: (o.order, o.nodeid))
        failed_dependencies = [o.name for o in self.critical if o.kind == "dependency"]
        for outcome in self.critical:
            explained = outcome.kind != "dependency" and failed_dependencies
            outcome.attributed_to = ", ".join(failed_dependencies) if explained else ""

    def _by_severity(self, severity: str) -> list[Outcome]:
        return sorted((o for o in self.outcomes if o.severity == severity), key=lambda o: o.sort_key)

    @property
    def critical(self) -> list[Outcome]:
        """Critical failures, root cause (dependencies) first, then config order."""
        return self._by_severity(CRITICAL)

    @property
    def warnings(self) -> list[Outcome]:
        return self._by_severity(WARNING)

    @property
    def passed(self) -> list[Outcome]:
        return self._by_severity(PASSED)

    @property
    def unverified_required(self) -> list[Outcome]:
        """Required checks that were not evaluated or never ran: the run proves nothing about them."""
        return [o for o in self.outcomes if o.required and o.status in (STATUS_NOT_EVALUATED, STATUS_NOT_RUN)]

    @property
    def unselected_required(self) -> list[Outcome]:
        """Required checks the user left out of this run (deselected, disabled or skipped)."""
        return [o for o in self.outcomes if o.required and o.status in (STATUS_NOT_SELECTED, STATUS_SKIPPED)]

    @property
    def complete(self) -> bool:
        """Every required check selected, run and evaluated."""
        return not self.unverified_required and not self.unselected_required

    @property
    def state(self) -> str:
        if not any(o.status in RAN or o.status == STATUS_NOT_RUN for o in self.outcomes):
            return NO_CHECKS
        if self.critical:
            return CRITICAL
        if self.unverified_required:
            return INCONCLUSIVE
        if self.unselected_required:
            return PARTIAL
        if self.warnings:
            return WARNING
        return PASSED

    @property
    def verified(self) -> bool:
        """A complete green run: the only kind that may mark a revision as known-good."""
        return self.state in (PASSED, WARNING) and self.complete

    def rollback_failures(self) -> list[Outcome]:
        """The critical failures that count toward the rollback threshold.

        A failed dependency is the likely root cause of the health, path and custom failures
        beside it: they count once, with it. A check with ``rollback: false`` never counts; when
        only such dependencies failed, the failures beside them count once together.
        """
        critical = self.critical
        dependencies = [o for o in critical if o.kind == "dependency"]
        others = [o for o in critical if o.kind != "dependency" and o.rollback]
        if any(o.rollback for o in dependencies):
            return [o for o in dependencies if o.rollback]  # the others count with them
        if dependencies:
            # Only dependencies that a rollback cannot fix failed: what they may explain counts
            # once, so an unrelated bad deploy is still caught, never doubled.
            return others[:1]
        return others


def classify(outcomes: Iterable[Outcome]) -> Verdict:
    return Verdict(list(outcomes))


@dataclass
class Decision:
    """What the verdict calls for. ``action`` is one of:

    ``none`` (nothing to do), ``rollback`` (do it now), ``confirm`` (needs ops confirmation),
    ``disabled`` (auto_rollback is off), ``below_threshold``, ``no_rollback_helps`` (every
    critical failure says ``rollback: false``), ``dry_run`` (--smoke-no-rollback), ``vetoed``
    (a pytest_smoke_decision hook said no), ``inconclusive`` (a required check was not evaluated),
    ``not_evaluated`` (interrupted run).
    """

    action: Action
    reason: str
    critical_count: int = 0
    threshold: int = 1

    @property
    def wants_rollback(self) -> bool:
        return self.action in ("rollback", "confirm", "dry_run")


def decide(verdict: Verdict, auto_rollback: Mapping[str, Any], *, dry_run: bool = False) -> Decision:
    critical = verdict.critical
    counted = verdict.rollback_failures()
    count = len(counted)
    threshold = int(auto_rollback.get("critical_failure_threshold", 1))
    if not critical:
        if verdict.state == INCONCLUSIVE:
            names = ", ".join(o.name for o in verdict.unverified_required)
            return Decision("inconclusive", f"required checks not evaluated ({names}): no rollback", 0, threshold)
        return Decision("none", "no critical failures", 0, threshold)
    explained = _attribution(critical, counted)
    if count == 0:
        names = ", ".join(o.name for o in critical if not o.rollback) or ", ".join(o.name for o in critical)
        return Decision(
            "no_rollback_helps", f"rolling back does not fix {names} (rollback: false){explained}", 0, threshold
        )
    if not auto_rollback.get("enabled", False):
        return Decision("disabled", "auto_rollback is not enabled", count, threshold)
    if count < threshold:
        return Decision(
            "below_threshold", f"{count} critical failure(s){explained}, below the threshold of {threshold}", count, threshold
        )
    if dry_run:
        return Decision("dry_run", "--smoke-no-rollback: dry run, nothing is changed", count, threshold)
    if auto_rollback.get("requires_ops_confirmation", True) and count == 1:
        return Decision("confirm", f"1 critical failure{explained}: rollback needs ops confirmation", count, threshold)
    if count > 1:
        return Decision(
            "rollback", f"multiple failures detected ({count} critical{explained}): immediate rollback", count, threshold
        )
    return Decision("rollback", f"critical failure detected{explained}: automatic rollback", count, threshold)


def _attribution(critical: list[Outcome], counted: list[Outcome]) -> str:
    attributed = [o for o in critical if o.attributed_to]
    if not attributed:
        return ""
    roots = ", ".join(sorted({o.attributed_to for o in attributed}))
    return f"; {len(attributed)} other failure(s) attributed to {roots} count with it"


def exit_code(verdict: Verdict, rollback_status: str | None) -> int:
    if rollback_status in ("failed", "still_failing"):
        return EXIT_ROLLBACK_FAILED
    if verdict.critical:
        return EXIT_CRITICAL
    if verdict.state == INCONCLUSIVE:
        return EXIT_INCONCLUSIVE
    return EXIT_OK
