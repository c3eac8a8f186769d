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
        assert problem.value.details.endswith(
            "because it sends a request body and its first attempt may still be applied"
        )
    else:  # nothing came back from anyone: our load may explain it, and it cannot be retried
        assert isinstance(problem.value, CheckNotEvaluated)
        assert "with no answer from h:80 meanwhile; not retried" in problem.value.reason


def test_a_hung_host_ends_as_failures_and_the_verdict_says_it_stopped_answering(pytester, write_config, fault_server):
    write_config(
        {
            "base_url": fault_server.url,
            "health_checks": [health(f"c{i}", f"/hang?i={i}", timeout_seconds=1) for i in range(8)],
        }
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "-p", "no:cacheprovider", "--smoke-report", "report.json"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed*",
            f"Note: checks in flight to 127.0.0.1:{fault_server.port}: up to 2 at once*(stopped answering: "
            "the rest started at once)",
        ]
    )
    import json

    report = json.loads((pytester.path / "report.json").read_text())
    assert [c["failure_kind"] for c in report["checks"]] == ["timeout"] * 8


class SyncServer:
    """A sync app server with ``workers`` workers and a queue, as gunicorn's: a request we stop
    waiting for is still served to the end, and the ones behind it wait."""

    def __init__(self, workers: int):
        self.free_at = [0.0] * workers  # when each worker is next free
        self.lock = threading.Lock()

    def check(self, name: str, service: float, timeout: float):
        def run() -> CheckResult:
            now = time.monotonic()
            with self.lock:
                worker = min(range(len(self.free_at)), key=self.free_at.__getitem__)
                done = max(now, self.free_at[worker]) + service
                self.free_at[worker] = done
            if done - now > timeout:
                time.sleep(timeout)
                raise CheckTimeout(timeout, f"GET /{name}")
            time.sleep(done - now)
            return CheckResult(summary="ok")

        return run


def outcomes_of(checks, per_host=None):
    """Run (name, check, timeout) through one scheduler; what each ended with."""
    scheduler = CheckScheduler(max_workers=16, per_host=per_host)
    for name, check, timeout in checks:
        scheduler.submit(name, check, host="h:80", allowed_seconds=timeout)
    try:
        return {name: _outcome(scheduler, name) for name, _, _ in checks}
    finally:
        scheduler.shutdown()


def test_a_check_retried_behind_its_own_abandoned_attempt_is_not_failed():
    # One worker, answers of 0.3 s under 0.4 s timeouts: the second check times out queued behind
    # the first, and the worker still serves that abandoned attempt when the retry comes. The host
    # gets one timeout to get through it: the retry passes (before: a critical failure).
    server = SyncServer(workers=1)
    results = outcomes_of([(name, server.check(name, 0.3, 0.4), 0.4) for name in ("a", "b")])
    assert all(isinstance(r, CheckResult) for r in results.values()), results


def test_slow_reports_with_short_budgets_do_not_fail_the_quick_checks_behind_them():
    # Two reports of 0.8 s with 0.2 s budgets keep both workers busy after we stop waiting; the
    # quick checks queued behind that work of ours pass, the reports do not.
    server = SyncServer(workers=2)
    checks = [(f"report{i}", server.check(f"report{i}", 0.8, 0.2), 0.2) for i in range(2)]
    checks += [(f"ok{i}", server.check(f"ok{i}", 0.05, 0.4), 0.4) for i in range(10)]
    results = outcomes_of(checks)
    assert all(isinstance(results[f"ok{i}"], CheckResult) for i in range(10)), results
    assert not any(isinstance(results[f"report{i}"], CheckResult) for i in range(2)), results


def test_a_hung_host_under_a_fixed_limit_ends_every_check():
    # Every check that timed out waits for the round before it is judged; under a fixed limit the
    # gate never opens, and none may be left waiting for a wake-up that never comes.
    host = Host(hung=True)
    results = outcomes_of([(f"c{i}", host.check, 0.3) for i in range(4)], per_host=1)
    assert all(isinstance(r, CheckTimeout) for r in results.values()), results


def crowded_then(retry):
    """A check whose first attempt times out beside a neighbour the host answers meanwhile, and
    whose retry does what ``retry`` does; and that neighbour."""
    attempts, neighbour_in = [], threading.Event()

    def neighbour():
        neighbour_in.set()
        time.sleep(0.2)
        return CheckResult(summary="ok")

    def check():
        attempts.append(1)
        if len(attempts) == 1:
            neighbour_in.wait(5)
            time.sleep(0.1)
            raise CheckTimeout(0.1, "GET /slow")
        return retry()

    return check, neighbour


def test_a_crowded_timeout_whose_retry_the_run_could_not_evaluate_is_not_evaluated():
    # The first attempt timed out among others (our load); the retry alone was cut by the run
    # budget: neither judged the service, so it is not its failure.
    from pytest_smoke.checks.base import CheckNotEvaluated

    def cut_by_the_budget():
        raise CheckNotEvaluated(
            "not evaluated: the run budget of 4 s ran out before the check's own 2 s were up", kind="budget"
        )

    slow, neighbour = crowded_then(cut_by_the_budget)
    results = outcomes_of([("slow", slow, 0.1), ("neighbour", neighbour, 1.0)], per_host=2)
    assert isinstance(results["slow"], CheckNotEvaluated), results
    assert "the retry alone was not evaluated (not evaluated: the run budget of 4 s ran out" in str(results["slow"])


def test_the_likelier_explanation_is_said_only_where_the_answers_show_it():
    from pytest_smoke.checks.scheduler import HostGate

    def answers(alone: float, among_others: float) -> str:
        gate = HostGate(None)
        gate.enter(1)
        time.sleep(alone)
        gate.leave(1)
        gate.enter(2)
        gate.enter(3)  # sent second: among others
        time.sleep(among_others)
        gate.leave(3)
        gate.leave(2)
        return gate.likelier()

    assert answers(0.01, 0.3).startswith("; the likelier: our load, its answers took ")
    assert answers(0.3, 0.3).startswith(
        "; the likelier: a hung backend, its answers took no longer with others in flight"
    )


def test_a_host_that_stops_answering_after_its_first_answer_is_still_a_failure():
    # Answered once, then silent, checks with mixed timeouts: our abandoned requests cannot explain
    # silence that lasts a whole timeout past them, so the host is hung and every check a failure
    # (not "not evaluated", which would leave a hung service inconclusive).
    scheduler = CheckScheduler(max_workers=4)

    def hangs(seconds: float):
        def check():
            time.sleep(seconds)
            raise CheckTimeout(seconds, "GET /hang")

        return check

    scheduler.submit("quick", lambda: CheckResult(summary="ok"), host="h:80", allowed_seconds=1.0)
    for name, seconds in (("health", 0.2), ("orders", 0.4), ("users", 0.4)):
        scheduler.submit(name, hangs(seconds), host="h:80", allowed_seconds=seconds)
    try:
        outcomes = {name: _outcome(scheduler, name) for name in ("health", "orders", "users")}
    finally:
        scheduler.shutdown()
    assert all(isinstance(outcome, CheckTimeout) for outcome in outcomes.values()), outcomes


def _outcome(scheduler, key):
    try:
        return scheduler.result(key, timeout=30)
    except Exception as exc:  # noqa: BLE001 - what the check ended with
        return exc


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


def test_on_error_sees_only_what_a_check_finally_ended_with():
    # A crowded first attempt that times out is the scheduler's to judge (retried alone here, and
    # passing): whoever acts on failures (fail_fast, a certain rollback) must not see it.
    from pytest_smoke.checks.base import CheckFailed

    seen = []
    times_out_then_passes_alone, neighbour = crowded_then(lambda: CheckResult(summary="ok alone"))

    def fails():
        raise CheckFailed("GET /broken returned 500", kind="server_error")

    scheduler = CheckScheduler(max_workers=4, per_host=2)
    scheduler.submit("slow", times_out_then_passes_alone, host="h:80", allowed_seconds=0.1, on_error=seen.append)
    scheduler.submit("neighbour", neighbour, host="h:80", allowed_seconds=1.0, on_error=seen.append)
    scheduler.submit("broken", fails, host="other:80", allowed_seconds=1.0, on_error=seen.append)
    try:
        assert isinstance(_outcome(scheduler, "slow"), CheckResult)
        assert isinstance(_outcome(scheduler, "broken"), CheckFailed)
    finally:
        scheduler.shutdown()
    assert [str(error) for error in seen] == ["GET /broken returned 500"]
