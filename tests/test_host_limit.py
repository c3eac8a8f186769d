"""Issue 30: the per-host limit adapts to the service. Driven through the real scheduler with
check functions that behave like a fast host, a host of limited capacity and a hung host; and one
run against a real local server that never answers. No timing is asserted: what is asserted is
how many checks were in flight at once, what the limit became, and what the verdict says."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_smoke.checks.base import CheckResult, CheckTimeout
from pytest_smoke.checks.scheduler import ADAPTIVE_START, CheckScheduler

from helpers import health


class Host:
    """Counts the checks in flight; answers as the test says."""

    def __init__(self, capacity: int | None = None, hung: bool = False, seconds: float = 0.02):
        self.capacity, self.hung, self.seconds = capacity, hung, seconds
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    def check(self) -> CheckResult:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            crowded = self.capacity is not None and self.in_flight > self.capacity
        try:
            if self.hung:
                time.sleep(0.3)
                raise CheckTimeout(0.3, "GET /hang")
            time.sleep(self.seconds * (3 if crowded else 1))
            if crowded:  # more than it can take: the last in line misses its deadline
                raise CheckTimeout(0.1, "GET /busy")
            return CheckResult(summary="ok")
        finally:
            with self.lock:
                self.in_flight -= 1


def run_all(scheduler, host, count, key="h:80"):
    for index in range(count):
        scheduler.submit(index, host.check, host=key)
    results = []
    try:
        for index in range(count):
            try:
                results.append(scheduler.result(index, timeout=30))
            except Exception as exc:  # noqa: BLE001 - what each check ended with
                results.append(exc)
    finally:
        scheduler.shutdown()
    return results


def test_the_limit_rises_on_a_fast_host_and_never_exceeds_max_concurrency():
    host, scheduler = Host(), CheckScheduler(max_workers=12)
    results = run_all(scheduler, host, 120)
    assert all(isinstance(r, CheckResult) for r in results)
    assert ADAPTIVE_START < host.peak <= 12
    described = scheduler.host_limits()["h:80"]
    assert described.startswith("up to ") and "cut" not in described and int(described.split()[2]) >= host.peak


def test_the_limit_falls_on_a_host_that_cannot_take_the_load():
    host, scheduler = Host(capacity=2, seconds=0.05), CheckScheduler(max_workers=16)
    run_all(scheduler, host, 40)
    described = scheduler.host_limits()["h:80"]
    assert "cut to" in described and "after timeouts" in described, described
    peak, last_cut = int(described.split()[2]), int(described.rsplit("cut to ", 1)[1].split()[0])
    assert last_cut <= peak // 2  # halved from what it had reached


def test_an_explicit_limit_stays_fixed():
    host, scheduler = Host(), CheckScheduler(max_workers=16, per_host=3)
    results = run_all(scheduler, host, 60)
    assert all(isinstance(r, CheckResult) for r in results)
    assert host.peak == 3
    assert scheduler.host_limits() == {"h:80": "3 at once (max_concurrency_per_host)"}


def test_a_hung_hosts_remaining_checks_are_not_queued_behind_its_timeouts():
    host, scheduler = Host(hung=True), CheckScheduler(max_workers=16)
    results = run_all(scheduler, host, 10)
    # Every one is the service's timeout (never a pass, never "not started")...
    assert all(isinstance(r, CheckTimeout) for r in results)
    # ...and once the first round timed out before the host ever answered (hung), the other eight
    # ran together: ten hung checks cost two timeouts.
    assert host.peak >= 10 - ADAPTIVE_START
    assert scheduler.host_limits()["h:80"].endswith("(stopped answering: the rest started at once)")


@pytest.mark.parametrize("neighbour_answers_first", [True, False])
def test_a_check_that_sends_a_body_is_never_retried_after_a_crowded_timeout(neighbour_answers_first):
    from pytest_smoke.checks.base import CheckNotEvaluated

    scheduler, started, answered = CheckScheduler(max_workers=2, per_host=2), threading.Event(), threading.Event()
    attempts = []

    def neighbour():
        started.wait(5)
        if not neighbour_answers_first:
            time.sleep(0.5)  # still in flight when the POST times out: the host said nothing meanwhile
        answered.set()
        return CheckResult(summary="ok")

    def post_order():
        attempts.append(1)
        started.set()
        if neighbour_answers_first:
            answered.wait(5)
        time.sleep(0.2)
        raise CheckTimeout(1, "POST /orders")

    scheduler.submit("n", neighbour, host="h:80")
    scheduler.submit("post", post_order, host="h:80", retry_safe=False)
    try:
        with pytest.raises((CheckTimeout, CheckNotEvaluated)) as problem:
            scheduler.result("post", timeout=10)
    finally:
        scheduler.shutdown()
    assert attempts == [1]  # never sent twice
    if neighbour_answers_first:  # the host served the others: the service's own timeout, a failure
        assert isinstance(problem.value, CheckTimeout)
        assert problem.value.details.endswith("because it sends a request body and its first attempt may still be applied")
    else:  # nothing came back from anyone: our load may explain it, and it cannot be retried
        assert isinstance(problem.value, CheckNotEvaluated)
        assert "with no answer from h:80 meanwhile; not retried" in problem.value.reason


def test_a_hung_host_ends_as_failures_and_the_verdict_says_it_stopped_answering(pytester, write_config, fault_server):
    write_config({"base_url": fault_server.url, "health_checks": [health(f"c{i}", f"/hang?i={i}", timeout_seconds=1) for i in range(8)]})
    result = pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "--smoke-report", "report.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ CRITICAL: Smoke tests failed*",
                                 f"Note: checks in flight to 127.0.0.1:{fault_server.port}: up to 2 at once*(stopped answering: the rest started at once)"])
    import json

    report = json.loads((pytester.path / "report.json").read_text())
    assert [c["failure_kind"] for c in report["checks"]] == ["timeout"] * 8


def test_a_retry_behind_requests_we_abandoned_is_not_evaluated_not_failed():
    # A report with a short budget times out beside a check; each request we stop waiting for may
    # still be served, and nothing else answers to show the host got through it: the retry alone
    # that times out again judged nothing of the service's own.
    from pytest_smoke.checks.base import CheckNotEvaluated

    scheduler = CheckScheduler(max_workers=4)

    def times_out(seconds: float):
        def check():
            time.sleep(0.1)
            raise CheckTimeout(seconds, "GET /slow")
        return check

    scheduler.submit("report", times_out(0.1), host="h:80", allowed_seconds=0.1)
    scheduler.submit("check", times_out(1.0), host="h:80", allowed_seconds=1.0)
    try:
        with pytest.raises(CheckNotEvaluated, match=r"and again when retried, while \d requests? we had stopped waiting for may still have kept h:80 busy"):
            scheduler.result("check", timeout=30)
    finally:
        scheduler.shutdown()


def test_a_host_slow_to_start_is_not_hung_its_first_answer_ends_that():
    # The first two requests time out (a cold start) before the host ever answered: the rest start
    # at once, they are answered, and the two that timed out are retried alone and pass.
    lock, calls = threading.Lock(), []

    def cold_then_fast():
        with lock:
            calls.append(1)
            cold = len(calls) <= ADAPTIVE_START
        time.sleep(0.3 if cold else 0.02)
        if cold:
            raise CheckTimeout(0.3, "GET /cold")
        return CheckResult(summary="ok")

    scheduler = CheckScheduler(max_workers=16)
    for index in range(10):
        scheduler.submit(index, cold_then_fast, host="h:80", allowed_seconds=0.3)
    try:
        results = [scheduler.result(index, timeout=30) for index in range(10)]
    finally:
        scheduler.shutdown()
    assert all(isinstance(r, CheckResult) for r in results)
    assert sum(bool(r.warnings) for r in results) == ADAPTIVE_START  # the two retried alone say so
    assert "stopped answering" not in scheduler.host_limits()["h:80"]
