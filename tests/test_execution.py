"""How generated checks execute: a bounded concurrent pool, ordering, -k/-x/xdist, fail_fast, the
run budget and lazy imports. Concurrency is proven by a barrier endpoint, not by timing."""

from __future__ import annotations

import json

import pytest

from helpers import assert_cut_short, health, session_seconds


def barrier_checks(n, **extra):
    return [health(f"b{i}", f"/barrier?n={n}", timeout_seconds=8, **extra) for i in range(n)]


def test_checks_run_concurrently_yet_report_in_order(pytester, write_config, demo):
    # Each /barrier?n=6 request answers only once 6 are in flight together.
    write_config(
        {"base_url": demo.url, "health_checks": barrier_checks(6), "max_concurrency": 8, "max_concurrency_per_host": 8}
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines([f"*health[[]b{i}[]] PASSED*" for i in range(6)])


def test_a_whole_float_in_an_integer_setting_runs_as_that_integer(pytester, write_config, demo):
    # JSON Schema counts 2.0 as an integer; the pool once received the float and every check came
    # out "not evaluated" (urllib3: 'float' object cannot be interpreted as an integer).
    write_config(
        {
            "base_url": demo.url,
            "health_checks": barrier_checks(2),
            "max_concurrency": 2.0,
            "max_concurrency_per_host": 2.0,
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["✓ Smoke tests passed*"])


def test_a_whole_float_status_is_that_status(pytester, write_config, demo):
    # expected_status: 200.0 fits the schema; the check used to end "not evaluated" (TypeError), exit 12.
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [
                health("h", "/health", expected_status=200.0),
                health("r", "/health/ready", expected_status=[200.0, 204]),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    demo.faults.add("ready-503")
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*/health/ready returned 503 (expected 200 or 204)*"])


def test_the_config_named_twice_with_keep_duplicates_still_reaches_a_verdict(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("h", "/health")]})
    result = pytester.runpytest("--smoke-config", "smoke.json", ".", "smoke.json", "--keep-duplicates")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["✓ Smoke tests passed*"])


def test_concurrency_one_runs_checks_one_after_another(pytester, write_config, demo):
    checks = [health(f"b{i}", "/barrier?n=3&wait=1", timeout_seconds=4, required=False) for i in range(2)]
    write_config({"base_url": demo.url, "health_checks": checks})
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-concurrency", "1")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["/barrier?n=3&wait=1 returned 503 (expected 200)"])


def test_the_pool_is_bounded(pytester, write_config, demo):
    # 4 requests must meet, but only 3 may be in flight: none of them can pass. The service gives
    # up after 1 s (503), and the 4th request, sent after that, finds the barrier broken (503).
    write_config(
        {
            "base_url": demo.url,
            "max_concurrency_per_host": 8,
            "health_checks": [
                health(f"b{i}", "/barrier?n=4&wait=1", timeout_seconds=4, required=False) for i in range(4)
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-concurrency", "3")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [f"- Health Check b{i}: /barrier?n=4&wait=1 returned 503 (expected 200) (non-critical)" for i in range(4)]
    )


def test_deselected_checks_are_never_sent(pytester, write_config, demo):
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [
                health("basic", "/health"),
                health("ready", "/health/ready"),
                health("live", "/health/live"),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-k", "not ready")
    result.assert_outcomes(passed=2, deselected=1)
    assert sorted(p for _, p in demo.requests) == ["/health", "/health/live"]


def test_maxfail_stops_checks_that_have_not_started(pytester, write_config, demo):
    demo.faults.add("ready-503")
    checks = [health("ready", "/health/ready")] + [health(f"slow{i}", "/slow?ms=300") for i in range(6)]
    write_config({"base_url": demo.url, "health_checks": checks})
    result = pytester.runpytest("--smoke-config", "smoke.json", "-x", "--smoke-concurrency", "2")
    result.assert_outcomes(failed=1)
    assert sum(1 for _, p in demo.requests if p == "/slow") < 6


def test_fail_fast_skips_checks_not_yet_started(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "fail_fast": True,
            "health_checks": [health("ready", "/health/ready"), health("basic", "/health")],
            "critical_paths": [{"name": "core-api", "steps": [{"endpoint": "/api/resources"}]}],
        }
    )
    pytester.makepyfile(test_custom="def test_custom(): pass")
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-concurrency", "1", "-rs")
    result.assert_outcomes(failed=1, skipped=3)
    result.stdout.fnmatch_lines(["SKIPPED*not started: fail_fast after the critical failure of ready"])
    assert [p for _, p in demo.requests] == ["/health/ready"]
    assert result.ret == 1


def test_fail_fast_abandons_checks_in_flight_once_a_rollback_is_due(pytester, write_config, demo, kube):
    demo.faults.add("ready-503")
    slow = [health(f"slow{i}", "/slow?ms=3000") for i in range(4)]  # first in item order: pytest waits on them first
    write_config(
        {
            "base_url": demo.url,
            "fail_fast": True,
            "max_concurrency": 8,
            "max_concurrency_per_host": 8,
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": False},
            "health_checks": [*slow, health("readiness", "/health/ready")],
            "rollback_strategy": {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*CRITICAL: Smoke tests failed - Rollback completed*"])
    checks = {c["name"]: c for c in json.loads((pytester.path / "report.json").read_text())["checks"]}
    assert checks["readiness"]["status"] == "failed"
    for name in ("slow0", "slow1", "slow2", "slow3"):  # never "passed": they judged nothing
        assert (checks[name]["status"], checks[name]["reason"]) == (
            "not_run",
            "not finished: fail_fast: a rollback is due after the critical failure of readiness",
        )


def test_a_rollback_that_needs_no_confirmation_does_not_wait_for_checks_not_yet_started(
    pytester, write_config, demo, kube
):
    # Without fail_fast: the readiness 503 makes the rollback certain and nobody confirms it, so the
    # checks still queued are not started (they could not change it); the ones in flight finish.
    demo.faults.add("ready-503")
    slow = [health(f"slow{i}", "/slow?ms=500") for i in range(6)]
    write_config(
        {
            "base_url": demo.url,
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": False},
            "health_checks": [health("readiness", "/health/ready"), *slow],
            "rollback_strategy": {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*CRITICAL: Smoke tests failed - Rollback completed*",
            "Not run (* required): slow*: not started: a rollback is due after the critical failure of readiness; "
            "no check left could change that",
        ]
    )
    checks = {c["name"]: c for c in json.loads((pytester.path / "report.json").read_text())["checks"]}
    assert checks["readiness"]["status"] == "failed"
    outcomes = [(checks[f"slow{i}"]["status"], checks[f"slow{i}"]["reason"]) for i in range(6)]
    not_started = (
        "not_run",
        "not started: a rollback is due after the critical failure of readiness; no check left could change that",
    )
    assert all(outcome in (("passed", ""), not_started) for outcome in outcomes), outcomes
    assert outcomes.count(not_started) >= 4  # at most the first round was in flight


def test_a_rollback_a_check_could_still_veto_waits_for_every_check(pytester, write_config, demo, kube):
    # A rollback: false dependency may explain the failure (then no rollback helps), so the checks
    # queued behind the 503 still run, even with no confirmation.
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": False},
            "health_checks": [
                health("readiness", "/health/ready"),
                *(health(f"slow{i}", "/slow?ms=300") for i in range(4)),
            ],
            "dependency_checks": [{"name": "shared", "type": "http", "url": f"{demo.url}/health", "rollback": False}],
            "rollback_strategy": {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.assert_outcomes(passed=5, failed=1)


def test_a_rollback_that_waits_for_confirmation_gets_every_result(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": True},
            "health_checks": [
                health("readiness", "/health/ready"),
                *(health(f"slow{i}", "/slow?ms=100") for i in range(4)),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.assert_outcomes(passed=4, failed=1)  # a person decides: every check ran


def test_fail_fast_waits_for_checks_in_flight_when_one_failure_is_not_yet_a_rollback(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "fail_fast": True,
            "max_concurrency": 8,
            "max_concurrency_per_host": 8,
            "auto_rollback": {"enabled": True, "critical_failure_threshold": 2},
            "health_checks": [health("slow", "/slow?ms=500"), health("readiness", "/health/ready")],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.assert_outcomes(passed=1, failed=1)  # the check in flight reported its own result


def test_optional_failure_does_not_trigger_fail_fast(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [health("ready", "/health/ready", required=False), health("basic", "/health")],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-fail-fast", "--smoke-concurrency", "1")
    result.assert_outcomes(failed=1, passed=1)


def test_run_budget_cutting_a_required_check_makes_the_run_inconclusive(pytester, write_config, demo):
    demo.faults.add("live-hang")
    write_config(
        {
            "base_url": demo.url,
            "timeout_seconds": 2,
            "health_checks": [health("basic", "/health"), health("live", "/health/live", timeout_seconds=20)],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    assert_cut_short(session_seconds(result), 2, unbounded=20)  # the budget, not the check's own 20 s
    # The service was not given its 20 s: that is not its failure, and not a pass either.
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            "? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified",
            "1. Health Check: live: not evaluated: the run budget of 2 s ran out before the check's own 20 s were up",
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    live = next(c for c in report["checks"] if c["name"] == "live")
    assert (live["status"], live["failure_kind"], live["severity"]) == ("not_evaluated", "budget", "warning")
    assert report["verdict"]["state"] == "inconclusive" and report["verdict"]["verified"] is False


def test_xdist_sends_each_check_once(pytester, write_config, demo):
    checks = [health(f"h{i}", f"/health?i={i}") for i in range(8)]
    write_config({"base_url": demo.url, "health_checks": checks})
    result = pytester.runpytest("--smoke-config", "smoke.json", "-n", "2")
    result.assert_outcomes(passed=8)
    assert len(demo.requests) == 8


def test_reported_duration_is_the_checks_own(pytester, write_config, demo):
    write_config(
        {"base_url": demo.url, "health_checks": [health("slow", "/slow?ms=600"), health("fast", "/slow?ms=650")]}
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text())
    # The second item only waited for a check that ran alongside the first, yet reports its own time.
    assert all(c["duration_seconds"] >= 0.55 for c in report["checks"])


def test_http_only_run_imports_no_heavy_client(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish():
            heavy = sorted(m for m in ("kubernetes", "psycopg", "pika", "redis", "junit_xml") if m in sys.modules)
            print("HEAVY-MODULES", heavy)
        """
    )
    result = pytester.runpytest_subprocess("--smoke-config", "smoke.json", "-s")  # a fresh interpreter's modules
    result.stdout.fnmatch_lines(["*HEAVY-MODULES []"])


@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_concurrency_is_a_usage_error(pytester, write_config, demo, value):
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-concurrency", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
