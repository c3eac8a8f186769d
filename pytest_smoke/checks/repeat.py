"""``repeat: N``: one check sent N times, judged on the spread (k6's thresholds, Gatus' conditions).

A single request says little about a service behind a balancer: one hung pod of three answers a
third of the requests late or never. A repeated check sends its request (or walks its critical
path) N times, one after the other, each on a connection of its own so that a Kubernetes Service
spreads them over its pods, and each bounded by the check's ``timeout_seconds``. It then judges:

- ``max_failure_ratio`` (default 0: every repetition must pass): the share of repetitions that
  failed, as a single run of the check would have failed;
- ``p50_ms``, ``p95_ms``, ``p99_ms``: percentiles of the passing repetitions' durations, as k6's
  ``http_req_duration{expected_response:true}``; nearest-rank, so a percentile is a duration that
  was measured.

A repetition the runner could not evaluate (a bug, the run budget) makes the whole check not
evaluated, unless the failures already decided it. The repetitions stop early once more have failed
than the ratio allows: the outcome cannot change, and a hung service should not hold the run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .base import CheckFailed, CheckNotEvaluated, CheckResult

PERCENTILES = (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99))


def percentile(durations: list[float], rank: float) -> float:
    """Nearest-rank percentile of ``durations`` (not empty): always one of the measured values."""
    ordered = sorted(durations)
    return ordered[max(math.ceil(rank / 100 * len(ordered)), 1) - 1]


@dataclass
class Spread:
    """What N repetitions showed."""

    planned: int
    durations_ms: list[float] = field(default_factory=list)  # the passing repetitions'
    failures: list[CheckFailed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return len(self.durations_ms) + len(self.failures)

    def figures(self) -> dict[str, float]:
        """The percentiles and the maximum of the passing repetitions, in ms, rounded to 0.1."""
        if not self.durations_ms:
            return {}
        shown = {key: percentile(self.durations_ms, rank) for key, rank in PERCENTILES}
        shown["max_ms"] = max(self.durations_ms)
        return {key: round(value, 1) for key, value in shown.items()}

    def spread_text(self) -> str:
        figures = self.figures()
        if not figures:
            return "no repetition passed"
        return ", ".join(f"{key[:-3]} {figures[key]:g} ms" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))


def allowed_failures(planned: int, expect: Mapping[str, Any]) -> int:
    """How many of ``planned`` repetitions may fail: ``max_failure_ratio`` of them, rounded down."""
    return math.floor(float(expect.get("max_failure_ratio", 0)) * planned + 1e-9)


def run_repeated(
    planned: int,
    expect: Mapping[str, Any],
    time_left: Callable[[], float],
    once: Callable[[float], Any],
    per_repetition_seconds: float,
) -> CheckResult:
    """Run ``once(seconds)`` up to ``planned`` times and judge the spread against ``expect``.

    ``once`` raises :class:`CheckFailed` for a failed repetition (the service's fault) and
    :class:`CheckNotEvaluated` when it could not tell; ``time_left`` is what remains of the
    check's deadline (the run budget can shorten it).
    """
    spread = Spread(planned)
    tolerated = allowed_failures(planned, expect)
    for number in range(1, planned + 1):
        if time_left() < per_repetition_seconds - 0.05:
            # Each repetition is owed its whole timeout: a shortened one could fail a healthy service.
            raise CheckNotEvaluated(
                f"not evaluated: only {spread.ran} of {planned} repetitions could run with their whole"
                f" timeout_seconds before the check's deadline ({len(spread.failures)} failed)",
                kind="budget",
            )
        started = time.monotonic()
        try:
            result = once(per_repetition_seconds)
        except CheckNotEvaluated as problem:
            problem.reason = f"{problem.reason} (repetition {number} of {planned})"
            raise
        except CheckFailed as failure:
            spread.failures.append(failure)
            if len(spread.failures) > tolerated:
                raise _too_many_failures(spread, tolerated, expect) from None
            continue
        spread.durations_ms.append((time.monotonic() - started) * 1000)
        if isinstance(result, CheckResult):
            spread.warnings.extend(warning for warning in result.warnings if warning not in spread.warnings)
    return _judged(spread, expect)


def _too_many_failures(spread: Spread, tolerated: int, expect: Mapping[str, Any]) -> CheckFailed:
    first = spread.failures[0]
    ratio = float(expect.get("max_failure_ratio", 0))
    allowance = f"max_failure_ratio {ratio:g} allows {tolerated}" if ratio else "every repetition must pass"
    stopped = f", stopped after {spread.ran} of {spread.planned}" if spread.ran < spread.planned else ""
    return CheckFailed(
        f"{len(spread.failures)} of {spread.ran} repetitions failed ({allowance}{stopped}); first: {first.reason}",
        first.details,
        kind=first.kind,
        **{**first.facts, **_facts(spread)},
    )


def _judged(spread: Spread, expect: Mapping[str, Any]) -> CheckResult:
    figures = spread.figures()
    passed = len(spread.durations_ms)
    over = [
        (key, figures[key], float(expect[key]))
        for key, _ in PERCENTILES
        if key in expect and figures and figures[key] > float(expect[key])
    ]
    if not figures:  # every repetition failed: whatever the ratio allows, nothing passed
        first = spread.failures[0]
        raise CheckFailed(
            f"no repetition of {spread.planned} passed; first: {first.reason}",
            first.details,
            kind=first.kind,
            **{**first.facts, **_facts(spread)},
        )
    if over:
        key, value, limit = over[0]
        raise CheckFailed(
            f"{key[:-3]} over {passed} passing repetitions is {value:g} ms, over the limit of {limit:g} ms"
            f" ({spread.spread_text()})",
            kind="latency",
            **_facts(spread),
        )
    failed = f", {len(spread.failures)} failed (allowed)" if spread.failures else ""
    summary = f"{passed} of {spread.planned} repetitions passed{failed}; {spread.spread_text()}"
    warnings = list(spread.warnings)
    if spread.failures:
        warnings.insert(
            0, f"{len(spread.failures)} of {spread.planned} repetitions failed; first: {spread.failures[0].reason}"
        )
    return CheckResult(summary=summary, facts=_facts(spread), warnings=warnings)


def _facts(spread: Spread) -> dict[str, Any]:
    """For the JSON report and the dashboards: the counts, the share that failed, the spread."""
    return {
        "repetitions": spread.ran,
        "repetitions_failed": len(spread.failures),
        "failure_ratio": round(len(spread.failures) / spread.ran, 4) if spread.ran else 0.0,
        **spread.figures(),
    }
