"""The body of every generated test: run one check and record what it found on the item.

Plain of pytest's machinery beyond the item and the skip: collection makes one test function per
section that calls :func:`run_generated_check` with the item's request and its check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..checks import CheckFailed, CheckNotEvaluated, CheckResult
from ..checks.scheduler import NotStarted
from ..model import FACT_KEYS, PREFIX, encode
from ..redact import Redactor
from .run import SmokeRun, get_run

if TYPE_CHECKING:
    from ..model import Check

# Properties one attempt adds; cleared before the next attempt (pytest-rerunfailures).
ATTEMPT_KEYS = frozenset({"outcome", "failure_kind", "reason", "internal", "warning", *FACT_KEYS})


def run_generated_check(request: pytest.FixtureRequest, check: Check) -> None:
    """The body of every generated test: run one check (or take its result from the pool) and
    record its outcome and facts on the item, passed or not, for every report and the controller.
    Whatever escapes the check runner is ours, never the service's: it is not evaluated."""
    item = request.node
    run = get_run(item.config)
    assert run is not None
    item.user_properties[:] = [
        (k, v) for k, v in item.user_properties if not (k.startswith(PREFIX) and k[len(PREFIX) :] in ATTEMPT_KEYS)
    ]
    facts: dict[str, Any] = {}
    outcome = "not_evaluated"
    try:
        result = _result_of(run, check)
        assert isinstance(result, CheckResult)
        facts = {**result.facts, "summary": result.summary}
        if result.warnings:
            _record(item, run.redactor, "warning", "; ".join(result.warnings))
        outcome = "passed"
    except NotStarted as exc:  # NotFinished too: abandoned in flight
        outcome = "not_run"
        pytest.skip(f"{exc.word}: {exc.reason}")
    except CheckFailed as failure:
        outcome = "failed"
        facts = {**failure.facts, "summary": failure.reason}
        _record(item, run.redactor, "failure_kind", failure.kind)
        _record(item, run.redactor, "reason", failure.reason)
        raise
    except CheckNotEvaluated as problem:
        _record(item, run.redactor, "failure_kind", problem.kind)
        _record(item, run.redactor, "reason", problem.reason)
        raise
    except Exception as exc:  # pytest's outcomes (skip, exit) are BaseExceptions and pass through
        ours = CheckNotEvaluated.from_exception(exc)
        _record(item, run.redactor, "failure_kind", ours.kind)
        _record(item, run.redactor, "reason", ours.reason)
        raise ours from None
    finally:
        _record(item, run.redactor, "outcome", outcome)
        shown = {key: run.redactor.value(facts[key]) for key in FACT_KEYS if key in facts}
        item.user_properties.extend(encode(key, value) for key, value in shown.items())  # redacted above
        if shown:  # what a report viewer (pytest-html, -rP) shows for the check, passed or not
            item.add_report_section("call", "smoke", "\n".join(f"{key}: {value}" for key, value in shown.items()))


def _result_of(run: SmokeRun, check: Check) -> Any:
    key = check.node_name
    if run.scheduler is not None and key in run.scheduler and key not in run.consumed:
        run.consumed.add(key)  # a rerun (pytest-rerunfailures) sends the request again
        # The backstop of a pooled check: the run budget bounds every check, queueing included.
        return run.scheduler.result(key, timeout=run.pooled_wait_bound())
    if run.stop_reason is not None:
        raise NotStarted(run.stop_reason)
    return run.run_one(check)


def _record(item: pytest.Item, redactor: Redactor, key: str, value: Any) -> None:
    item.user_properties.append(encode(key, redactor.text(value) if isinstance(value, str) else value))
