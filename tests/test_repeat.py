"""``repeat: N``: a check sent N times and judged on the spread, against a real local service whose
"pods" take turns per connection, the way a Kubernetes Service balances them."""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_smoke.checks import CheckContext, CheckFailed, CheckNotEvaluated, CheckResult
from pytest_smoke.checks.repeat import percentile, run_repeated

from helpers import health
from servers import LocalHTTPServer, QuietHandler


class Pods:
    """A service behind a balancer: connection k goes to pod k mod len(behaviours).

    A behaviour is "ok", "503", "hang" (answers after ``hang_seconds``) or "slow:MS"."""

    def __init__(self, *behaviours: str, hang_seconds: float = 20.0):
        self.behaviours = behaviours
        self.connections = 0
        self.requests: list[tuple[int, str, str]] = []  # (pod, method, path)
        stop = self.stopping = threading.Event()
        turn = itertools.count()
        pods = self

        class Pod(QuietHandler, BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a reused connection stays on its pod

            def setup(self) -> None:
                super().setup()
                self.pod = next(turn) % len(pods.behaviours)
                pods.connections += 1

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                pods.requests.append((self.pod, self.command, self.path))
                behaviour = pods.behaviours[self.pod]
                if behaviour == "hang":
                    stop.wait(hang_seconds)
                elif behaviour.startswith("slow:"):
                    stop.wait(int(behaviour[5:]) / 1000)
                status = 503 if behaviour == "503" else (201 if self.command == "POST" else 200)
                self.answer(status, {"pod": self.pod})

            do_GET = do_POST = do_DELETE = _serve

        self.server = LocalHTTPServer(Pod)
        self.url = self.server.url
        self.max_seconds = hang_seconds

    def stop(self) -> None:
        self.stopping.set()
        self.server.stop()


@pytest.fixture
def pods_factory():
    started: list[Pods] = []

    def start(*behaviours: str, **kwargs) -> Pods:
        started.append(Pods(*behaviours, **kwargs))
        return started[-1]

    yield start
    for pods in started:
        pods.stop()


def run(pytester, write_config, config, *args):
    write_config(config)
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report", "report.json", *args)
    report = json.loads((pytester.path / "report.json").read_text())
    return result, {check["name"]: check for check in report["checks"]}


def test_a_hung_pod_of_three_fails_a_repeated_check_that_one_request_passes(pytester, write_config, pods_factory):
    alone, repeated = pods_factory("ok", "ok", "hang"), pods_factory("ok", "ok", "hang")
    checks = [
        health("once", f"{alone.url}/health/ready", timeout_seconds=1),
        health("repeated", f"{repeated.url}/health/ready", timeout_seconds=1, repeat=9),
    ]
    result, checks_by_name = run(pytester, write_config, {"health_checks": checks})
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*Health Check: repeated: 1 of 3 repetitions failed (every repetition must pass, stopped after 3 of 9);"
            " first: GET http://127.0.0.1:*/health/ready: timed out after 1 s*"
        ]
    )
    assert checks_by_name["once"]["status"] == "passed"
    # A connection of its own for each repetition: the third met the hung pod.
    assert [pod for pod, _, _ in repeated.requests] == [0, 1, 2] and repeated.connections == 3
    assert checks_by_name["repeated"]["facts"]["repetitions_failed"] == 1


def test_a_failure_ratio_tolerates_what_it_allows_and_fails_above_it(pytester, write_config, pods_factory):
    first, second = pods_factory("ok", "ok", "503"), pods_factory("ok", "ok", "503")
    tolerant = health("tolerant", f"{first.url}/api/items", repeat=9, expect={"max_failure_ratio": 0.4})
    strict = health("strict", f"{second.url}/api/items", repeat=9, expect={"max_failure_ratio": 0.2})
    result, checks = run(pytester, write_config, {"health_checks": [tolerant, strict]})
    assert result.ret == 1
    assert checks["tolerant"]["status"] == "passed"
    assert checks["tolerant"]["facts"]["repetitions"] == 9
    assert checks["tolerant"]["facts"]["failure_ratio"] == pytest.approx(3 / 9, abs=1e-3)
    result.stdout.fnmatch_lines(
        [
            "*Health Check: strict: 2 of 6 repetitions failed (max_failure_ratio 0.2 allows 1, stopped after 6 of 9);"
            " first: http://127.0.0.1:*/api/items returned 503 (expected 200)*"
        ]
    )
    # Allowed failures still show: a passing check warns with the share that failed.
    result.stdout.fnmatch_lines(["- tolerant: 3 of 9 repetitions failed; first: http://*/api/items returned 503*"])


def test_percentiles_are_judged_over_the_passing_repetitions(pytester, write_config, pods_factory):
    # Half the pods answer in 600 ms: the median is fast, the tail is not.
    first, second = pods_factory("ok", "slow:600"), pods_factory("ok", "slow:600")
    median_ok = health("median", f"{first.url}/health", repeat=10, expect={"p50_ms": 400})
    tail_slow = health("tail", f"{second.url}/health", repeat=10, expect={"p50_ms": 400, "p95_ms": 300})
    result, checks = run(pytester, write_config, {"health_checks": [median_ok, tail_slow]})
    assert result.ret == 1
    assert checks["median"]["status"] == "passed"
    facts = checks["median"]["facts"]
    assert facts["p50_ms"] < 400 <= facts["p95_ms"] and facts["repetitions"] == 10
    result.stdout.fnmatch_lines(
        ["*Health Check: tail: p95 over 10 passing repetitions is * ms, over the limit of 300 ms (p50 * ms, p95 *"]
    )
    assert checks["tail"]["failure_kind"] == "latency"


def test_a_repeated_http_dependency_and_a_repeated_critical_path(pytester, write_config, pods_factory):
    pods = pods_factory("ok")
    config = {
        "base_url": pods.url,
        "dependency_checks": [
            {"name": "search", "type": "http", "url": f"{pods.url}/search", "repeat": 3, "expect": {"p99_ms": 5000}}
        ],
        "critical_paths": [
            {
                "name": "create-and-delete",
                "repeat": 4,
                "expect": {"p95_ms": 5000, "max_failure_ratio": 0},
                "steps": [
                    {"endpoint": "/api/items/smoke-{run_id}-{repetition}", "method": "POST", "required_status": 201}
                ],
                "cleanup": [{"endpoint": "/api/items/smoke-{run_id}-{repetition}", "method": "DELETE"}],
            }
        ],
    }
    result, checks = run(pytester, write_config, config)
    assert result.ret == 0, result.stdout.str()
    methods = [method for _, method, _ in pods.requests]
    assert methods.count("GET") == 3 and methods.count("POST") == 4 and methods.count("DELETE") == 4
    created = [path for _, method, path in pods.requests if method == "POST"]
    deleted = [path for _, method, path in pods.requests if method == "DELETE"]
    # {repetition}: a name of its own for each walk, known to its cleanup.
    assert len(set(created)) == 4 and deleted == created
    assert created[-1].endswith("-4")
    assert checks["create-and-delete"]["facts"]["repetitions"] == 4
    assert "4 of 4 repetitions passed" in checks["create-and-delete"]["facts"]["summary"]


@pytest.mark.parametrize(
    ("entry", "location", "message"),
    [
        (
            {"health_checks": [health("h", "/h", expect={"p95_ms": 200})]},
            "health_checks[0].expect.p95_ms",
            "p95_ms is judged over repeated runs: add repeat: N (at least 2) to this check",
        ),
        (
            {
                "critical_paths": [
                    {"name": "p", "repeat": 3, "steps": [{"endpoint": "/a", "expect": {"max_failure_ratio": 0.1}}]}
                ]
            },
            "critical_paths[0].steps[0].expect.max_failure_ratio",
            "max_failure_ratio belongs to the critical path's expect, with repeat: N on the path",
        ),
        (
            {"dependency_checks": [{"name": "db", "type": "postgres", "repeat": 3}]},
            "dependency_checks[0]",
            "repeat",
        ),
        ({"health_checks": [health("h", "/h", repeat=1)]}, "health_checks[0].repeat", "expected a number >= 2"),
        (
            {"health_checks": [health("h", "/h", repeat=5, expect={"max_failure_ratio": 1})]},
            "health_checks[0].expect.max_failure_ratio",
            "expected a number < 1",
        ),
        (
            {"health_checks": [health("h", "/h", repeat=5, retries=1)]},
            "health_checks[0].retries",
            "retries and repeat: a repeated check tolerates failures with expect.max_failure_ratio",
        ),
    ],
)
def test_thresholds_without_repetitions_are_config_errors_before_any_request(
    pytester, write_config, entry, location, message
):
    write_config({"base_url": "http://127.0.0.1:9", **entry})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 4
    assert f"smoke.json:{location}" in result.stderr.str().replace("\n", " ") or location in result.stderr.str()
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_nearest_rank_percentiles_are_measured_values():
    durations = [float(ms) for ms in range(1, 21)]  # 1..20 ms
    assert percentile(durations, 50) == 10
    assert percentile(durations, 95) == 19
    assert percentile(durations, 99) == 20
    assert percentile([7.0], 99) == 7


def test_a_repetition_that_could_not_be_evaluated_leaves_the_check_not_evaluated():
    calls = []

    def once(seconds: float) -> CheckResult:
        calls.append(seconds)
        if len(calls) == 2:
            raise CheckNotEvaluated("not evaluated: TypeError: a bug of ours", kind="internal_error")
        return CheckResult()

    with pytest.raises(CheckNotEvaluated, match=r"a bug of ours \(repetition 2 of 5\)"):
        run_repeated(5, {}, lambda: 60.0, once, 1.0)
    assert len(calls) == 2


def test_failures_that_already_decide_the_check_outweigh_a_later_problem_of_ours():
    outcomes = iter([CheckFailed("/h returned 503", kind="http_status"), CheckNotEvaluated("not evaluated: ours")])

    def once(seconds: float) -> CheckResult:
        raise next(outcomes)

    with pytest.raises(CheckFailed, match=r"1 of 1 repetitions failed \(every repetition must pass, stopped"):
        run_repeated(5, {}, lambda: 60.0, once, 1.0)


def test_the_deadline_ending_before_every_repetition_ran_is_not_a_verdict():
    clock = iter([5.0, 3.0, 0.0])
    with pytest.raises(CheckNotEvaluated, match="only 2 of 4 repetitions could run with their whole timeout_seconds"):
        run_repeated(4, {}, lambda: next(clock), lambda seconds: CheckResult(), 2.0)


def test_each_repetition_is_bounded_by_the_timeout_and_the_check_by_n_of_them(pods_factory):
    from pytest_smoke.checks import run_check
    from pytest_smoke.model import Check

    pods = pods_factory("hang", hang_seconds=20)
    check = Check.of(
        "health", health("h", "/h", timeout_seconds=0.5, repeat=4, expect={"max_failure_ratio": 1, "p95_ms": 1000})
    )
    assert check.timeout == 2.0
    started = time.monotonic()
    with pytest.raises(CheckFailed) as failure:
        run_check(check, CheckContext(base_url=pods.url))
    # Every repetition timed out on its own 0.5 s: whatever the ratio allows, nothing passed.
    assert failure.value.reason.startswith("no repetition of 4 passed; first: GET http://127.0.0.1:")
    assert failure.value.kind == "timeout"
    assert failure.value.facts["repetitions_failed"] == 4
    assert time.monotonic() - started < pods.max_seconds


def test_a_warm_up_delay_never_shortens_a_repetition(pods_factory):
    """Each repetition is owed its whole timeout_seconds, after initial_delay_seconds: a slow but
    healthy service is never failed by our own scheduling."""
    from pytest_smoke.checks import run_check
    from pytest_smoke.model import Check

    pods = pods_factory("slow:300")
    spec = health("h", "/h", timeout_seconds=1, repeat=3, initial_delay_seconds=1.5)
    check = Check.of("health", spec)
    assert check.timeout == 4.5
    result = run_check(check, CheckContext(base_url=pods.url))
    assert result.facts["repetitions"] == 3 and result.facts["repetitions_failed"] == 0
