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

import dataclasses
from typing import Iterable

from .model import CRITICAL, INCONCLUSIVE, ROLLBACK_NEEDS_A_HUMAN, Decision, Outcome, Verdict
from .settings import AutoRollback

# Process exit codes. 0 to 5 keep pytest's meaning.
EXIT_OK = 0  # everything passed, or only warnings: the deployment continues
EXIT_CRITICAL = 1  # critical failures (rolled back, awaiting confirmation, dry run, or rollback off)
EXIT_INTERRUPTED = 2  # Ctrl-C, SIGTERM, collection errors: no verdict, no rollback
EXIT_INTERNAL_ERROR = 3  # pytest's INTERNALERROR: no verdict, no rollback
EXIT_USAGE = 4  # config or usage error: nothing was checked, nothing was rolled back
EXIT_NO_CHECKS = 5  # nothing was collected
EXIT_ROLLBACK_FAILED = 10  # a rollback was due and did not happen, or not whole: a human must act now
EXIT_ROLLOUT_NOT_READY = 11  # --smoke-wait-rollout: the deployment never finished rolling out; no check ran
EXIT_INCONCLUSIVE = 12  # a required check was not evaluated or never ran: the deploy is not verified


def classify(outcomes: Iterable[Outcome]) -> Verdict:
    """The verdict over copies of ``outcomes`` (the tally's own are never changed), in config
    order, with each critical failure's attribution: the dependency that explains it, or the
    shared cause it counts once with."""
    ordered = sorted((dataclasses.replace(o) for o in outcomes), key=lambda o: (o.order, o.nodeid))
    critical = sorted((o for o in ordered if o.severity == CRITICAL), key=lambda o: o.sort_key)
    failed_dependencies = [o.name for o in critical if o.kind == "dependency"]
    for outcome in critical:
        explained = outcome.kind != "dependency" and failed_dependencies
        outcome.attributed_to = ", ".join(failed_dependencies) if explained else ""
    counted = _rollback_failures(critical)
    return Verdict(ordered, rollback_failures=counted, independent_causes=_one_per_cause(counted))


def _rollback_failures(critical: list[Outcome]) -> list[Outcome]:
    """The critical failures that count toward the rollback threshold.

    A failed dependency is the likely root cause of the health, path and custom failures beside
    it: they count once, with it. A check with ``rollback: false`` never counts, and neither does
    what it explains: when only such dependencies failed, every other failure is attributed to
    them, and rolling back cannot help (docs/exit-codes.md).
    """
    dependencies = [o for o in critical if o.kind == "dependency"]
    others = [o for o in critical if o.kind != "dependency" and o.rollback]
    if any(o.rollback for o in dependencies):
        return [o for o in dependencies if o.rollback]  # the others count with them
    if dependencies:
        return []  # an outage of what the deploy did not change: explained, never rolled back
    return others


# Failures that name one shared cause are one cause: every check whose credentials were refused
# (401/403, a database or a cache saying no). A crashlooping service refusing every connection is
# not merged: that is the deploy, and it must roll back at once.
SHARED_CAUSES = {
    "http_auth": "credentials refused (401/403)",
    "http_forbidden": "credentials refused (401/403)",  # one cause with 401s: the smoke user's access
    "db_auth": "database credentials refused",
    "redis_auth": "Redis credentials refused",
    "queue_auth": "queue credentials refused",
}


def _cause_of(outcome: Outcome) -> str:
    return SHARED_CAUSES.get(outcome.failure_kind, "")


def _one_per_cause(failures: list[Outcome]) -> list[Outcome]:
    """The first failure of each shared cause stands for it; the rest are attributed to it."""
    seen: dict[str, Outcome] = {}
    counted = []
    for outcome in failures:
        cause = _cause_of(outcome)
        if cause and cause in seen:
            outcome.shared_cause = f"{cause}, as {seen[cause].name}"
            continue
        if cause:
            seen[cause] = outcome
        counted.append(outcome)
    return counted


def decide(
    verdict: Verdict,
    auto_rollback: AutoRollback,
    *,
    dry_run: bool = False,
    held: str = "",
) -> Decision:
    """What the verdict calls for. ``held``: why a rollback that is due must wait for a human
    (--smoke-hold-rollback); it is planned by nobody and written by nobody."""
    threshold = auto_rollback.critical_failure_threshold
    nothing_to_roll_back = _without_rollback(verdict, threshold)
    if nothing_to_roll_back is not None:
        return nothing_to_roll_back
    count = len(verdict.rollback_failures)
    explained = _attribution(verdict.critical, verdict.rollback_failures)
    if not auto_rollback.enabled:
        return Decision("disabled", "auto_rollback is not enabled", count, threshold)
    if count < threshold:
        return Decision(
            "below_threshold",
            f"{count} critical failure(s){explained}, below the threshold of {threshold}",
            count,
            threshold,
        )
    if dry_run:
        return Decision("dry_run", "--smoke-no-rollback: dry run, nothing is changed", count, threshold)
    if held:
        return Decision("held", f"rollback held: {held}", count, threshold)
    causes = len(verdict.independent_causes)
    if auto_rollback.requires_ops_confirmation and causes == 1:
        failures = "1 critical failure" if count == 1 else f"{count} critical failures, one cause"
        return Decision("confirm", f"{failures}{explained}: rollback needs ops confirmation", count, threshold)
    if causes > 1:
        return Decision(
            "rollback",
            f"multiple failures detected ({count} critical{explained}): immediate rollback",
            count,
            threshold,
        )
    return Decision("rollback", f"critical failure detected{explained}: automatic rollback", count, threshold)


def _without_rollback(verdict: Verdict, threshold: int) -> Decision | None:
    """The decision when no rollback can be due: results not attributable to the deploy, nothing
    critical, or only failures that rolling back does not fix. None: a rollback may be due."""
    critical = verdict.critical
    if verdict.attribution_problem:
        return Decision("inconclusive", f"{verdict.attribution_problem}: no rollback, nothing marked", 0, threshold)
    if not critical:
        if verdict.state == INCONCLUSIVE:
            names = ", ".join(o.name for o in verdict.unverified_required)
            return Decision("inconclusive", f"required checks not evaluated ({names}): no rollback", 0, threshold)
        return Decision("none", "no critical failures", 0, threshold)
    if verdict.rollback_failures:
        return None
    names = ", ".join(o.name for o in critical if not o.rollback) or ", ".join(o.name for o in critical)
    attributed = [o.name for o in critical if o.attributed_to]
    because = f", which explains {', '.join(attributed)}" if attributed else ""
    return Decision("no_rollback_helps", f"rolling back does not fix {names} (rollback: false){because}", 0, threshold)


def _attribution(critical: list[Outcome], counted: list[Outcome]) -> str:
    attributed = [o for o in critical if o.attributed_to]
    shared = [o for o in critical if o.shared_cause and not o.attributed_to]
    text = ""
    if attributed:
        roots = ", ".join(sorted({o.attributed_to for o in attributed}))
        text += f"; {len(attributed)} other failure(s) attributed to {roots} count with it"
    if shared:
        causes = ", ".join(sorted({o.shared_cause.partition(", as ")[0] for o in shared}))
        text += f"; {len(shared)} other failure(s) share one cause ({causes}) and count once"
    return text


def exit_code(verdict: Verdict, rollback_status: str | None) -> int:
    if rollback_status in ROLLBACK_NEEDS_A_HUMAN:
        return EXIT_ROLLBACK_FAILED
    if verdict.state == INCONCLUSIVE:
        return EXIT_INCONCLUSIVE
    if verdict.critical:
        return EXIT_CRITICAL
    return EXIT_OK
