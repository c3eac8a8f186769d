"""Health checks run for real over HTTP, as pytest items a user can select and read."""

from __future__ import annotations

import json
import re
import time

import pytest

from pytest_smoke.checks import CheckContext, CheckFailed, run_check
from pytest_smoke.model import Check

from helpers import assert_cut_short, health, session_seconds


def suite(demo, *checks, **top):
    return {"base_url": demo.url, "health_checks": list(checks), **top}


def test_items_pass_against_a_healthy_service_and_hit_each_endpoint(pytester, write_config, demo):
    write_config(
        suite(demo, health("basic", "/health"), health("ready", "/health/ready"), health("live", "/health/live"))
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["smoke.json::health[[]basic[]] PASSED*", "smoke.json::health[[]ready[]] PASSED*"])
    assert sorted(p for _, p in demo.requests) == ["/health", "/health/live", "/health/ready"]


def test_failure_is_one_operator_line_then_request_and_excerpt(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(suite(demo, health("readiness", "/health/ready")))
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "/health/ready returned 503 (expected 200); failing: database: connection failed",
            "severity: critical (required check)",
            f"request: GET {demo.url}/health/ready",
            'response: 503, * ms: {"status": "unavailable", "database": "connection failed"}',
        ]
    )
    assert "Traceback" not in out and "site-packages" not in out


def test_connection_refused_names_the_address(pytester, write_config):
    from servers import free_port

    port = free_port()
    write_config({"base_url": f"http://127.0.0.1:{port}", "health_checks": [health("h", "/health", required=False)]})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.stdout.fnmatch_lines([f"connection refused at 127.0.0.1:{port}", "severity: warning (optional check)"])


def test_expected_status_list_and_method(pytester, write_config, demo):
    write_config(
        suite(
            demo,
            health("missing-ok", "/nope", expected_status=[200, 404]),
            health("head", "/health", method="HEAD"),
            health("wrong", "/nope", expected_status=[200, 204]),
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["/nope returned 404 (expected 200 or 204)"])
    assert ("HEAD", "/health") in demo.requests


@pytest.mark.parametrize(
    "expect, problem",
    [
        ({"json": {"status": "ok"}}, None),
        ({"json": {"status": "degraded"}}, 'body.status is "ok", expected "degraded"'),
        ({"json": {"version": "1"}}, "body.version is missing (keys: status)"),
        ({"body_contains": '"ok"'}, None),
        ({"body_contains": "healthy"}, "body does not contain 'healthy'"),
        ({"headers": {"Content-Type": "application/json"}}, None),
        ({"headers": {"Content-Type": "text/html"}}, "header Content-Type is 'application/json', expected 'text/html'"),
        ({"headers": {"X-Request-Id": True}}, "header X-Request-Id is missing"),
        ({"max_response_time_ms": 5000}, None),
    ],
)
def test_expect_conditions(demo, expect, problem):
    ctx = CheckContext(base_url=demo.url)
    spec = health("h", "/health", expect=expect)
    if problem is None:
        result = run_check(Check.of("health", spec), ctx)
        assert result.facts["status"] == 200
    else:
        with pytest.raises(CheckFailed) as failure:
            run_check(Check.of("health", spec), ctx)
        assert failure.value.reason == f"/health: {problem}"


def test_max_response_time_fails_a_slow_endpoint(demo):
    spec = health("slow", "/slow?ms=300", expect={"max_response_time_ms": 50})
    with pytest.raises(CheckFailed, match=r"/slow\?ms=300: responded in \d+ ms \(limit 50 ms\)"):
        run_check(Check.of("health", spec), CheckContext(base_url=demo.url))


def test_json_expectation_on_a_non_json_body(fault_server):
    spec = health("h", "/reset", expect={"json": {"a": 1}})
    with pytest.raises(CheckFailed):
        run_check(Check.of("health", spec), CheckContext(base_url=fault_server.url))


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers", "/hang"])
def test_deadline_covers_the_whole_exchange(fault_server, path):
    spec = health("slow", path, timeout_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(CheckFailed) as failure:
        run_check(Check.of("health", spec), CheckContext(base_url=fault_server.url))
    elapsed = time.monotonic() - started
    assert "timed out after 1.5 s" in failure.value.reason
    assert failure.value.kind == "timeout"
    assert_cut_short(elapsed, 1.5, unbounded=fault_server.max_seconds)


def test_trickling_server_fails_on_time_as_a_pytest_item(pytester, write_config, fault_server):
    write_config({"base_url": fault_server.url, "health_checks": [health("trickle", "/trickle", timeout_seconds=2)]})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert_cut_short(session_seconds(result), 2, unbounded=fault_server.max_seconds)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["GET http://127.0.0.1:*/trickle: timed out after 2 s (200 received, body still arriving)"]
    )


def test_k_and_m_select_generated_and_custom_checks(pytester, write_config, demo):
    write_config(
        suite(demo, health("basic", "/health"), health("live", "/health/live", required=False)),
    )
    pytester.makepyfile(
        test_custom="""
        import pytest

        @pytest.mark.smoke_required
        def test_custom_required():
            pass

        @pytest.mark.smoke_optional
        def test_custom_optional():
            pass
        """
    )
    opts = ["--smoke-config", "smoke.json", "--strict-markers"]
    required = pytester.runpytest(*opts, "-m", "smoke_required", "-v")
    required.assert_outcomes(passed=2, deselected=2)
    required.stdout.fnmatch_lines(["*health[[]basic[]] PASSED*", "*test_custom_required PASSED*"])
    by_kind = pytester.runpytest(*opts, "-k", "health and live", "-v")
    by_kind.assert_outcomes(passed=1, deselected=3)
    assert [p for _, p in demo.requests].count("/health/live") == 1  # deselected checks are never sent
    dependency = pytester.runpytest(*opts, "-k", "dependency")
    assert dependency.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_generated_checks_are_reported_before_custom_tests(pytester, write_config, demo):
    write_config(suite(demo, health("basic", "/health")))
    pytester.makepyfile(test_custom="def test_custom(): pass")
    result = pytester.runpytest("--smoke-config", "smoke.json", "--collect-only", "-q")
    lines = [line for line in result.outlines if "::" in line]
    assert lines == ["smoke.json::health[basic]", "test_custom.py::test_custom"]


def test_a_check_run_one_by_one_carries_a_pytest_timeout_backstop_and_a_pooled_one_waits_bounded(
    pytester, write_config, demo
):
    pytester.makeconftest(
        """
        def pytest_runtest_setup(item):
            mark = item.get_closest_marker("timeout")
            print("TIMEOUT", item.name, mark.args[0] if mark else None)
        """
    )
    write_config(suite(demo, health("basic", "/health", timeout_seconds=3)))
    result = pytester.runpytest("--smoke-config", "smoke.json", "-s")
    result.stdout.fnmatch_lines(["*TIMEOUT health[[]basic[]] 13.0"])
    # In the pool, an item only waits for its result, and that wait is bounded by the run budget
    # (CheckScheduler.result): no mark, and no pytest-timeout timer (see the next test).
    write_config(suite(demo, health("basic", "/health", timeout_seconds=3), health("other", "/health/live")))
    result = pytester.runpytest("--smoke-config", "smoke.json", "-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*TIMEOUT health[[]basic[]] None", "*TIMEOUT health[[]other[]] None"])


MARK_AT_COLLECTION = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.timeout(1))
"""

# Found by review: a mark added as each item starts, after the run loop began, once set a timer.
MARK_AS_THE_ITEM_STARTS = """
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.add_marker(pytest.mark.timeout(1))
    yield
"""


@pytest.mark.parametrize(
    "how",
    ["--timeout", "a mark at collection", "a mark as the item starts, thread method", "-p pytest_timeout, one by one"],
)
def test_a_global_pytest_timeout_never_cuts_a_checks_wait(pytester, write_config, demo, monkeypatch, how):
    # Two 1.5 s answers, one at a time per host: the second item waits 3 s for its result. With the
    # thread method a timer would end the whole process (exit 1, no verdict, no report).
    write_config(
        suite(
            demo,
            health("slow-a", "/slow?ms=1500", timeout_seconds=8),
            health("slow-b", "/slow?ms=1500", timeout_seconds=8),
            max_concurrency_per_host=1,
        )
    )
    args = ["--smoke-config", "smoke.json", "--smoke-report", "report.json"]
    if how == "--timeout":
        args += ["--timeout", "1"]
    elif how == "a mark at collection":
        pytester.makeconftest(MARK_AT_COLLECTION)
    elif how.startswith("a mark as the item starts"):
        pytester.makeconftest(MARK_AS_THE_ITEM_STARTS)
        args += ["--timeout-method", "thread"]
    else:  # loaded under its module name, checks run one by one with their own backstops
        monkeypatch.delenv("PYTEST_ADDOPTS")  # it names pytest-timeout by its entry point
        args = ["-p", "deploy_smoke", "-p", "pytest_timeout", *args, "--timeout", "1", "--smoke-concurrency", "1"]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["✓ Smoke tests passed*"])
    assert (pytester.path / "report.json").exists()


OBSERVE_TIMERS = """
def pytest_timeout_set_timer(item, settings):
    print("SETTIMER", item.name, settings.timeout, settings.func_only)
"""


def test_a_pooled_checks_timer_starts_past_the_bound_of_its_wait(pytester, write_config, demo):
    # Found by review: declining the timer left a developer's hung fixture unbounded. The timer
    # still starts, longer by the wait's own bound (run budget 20 s + backstop 10 s + cleanup).
    pytester.makeconftest(OBSERVE_TIMERS)
    write_config(suite(demo, health("a", "/health"), health("b", "/health/live"), timeout_seconds=20))
    result = pytester.runpytest("--smoke-config", "smoke.json", "-s", "--timeout", "2")
    assert result.ret == 0
    timers = {name: float(seconds) for name, seconds in re.findall(r"SETTIMER (\S+) ([\d.]+)", result.stdout.str())}
    assert set(timers) == {"health[a]", "health[b]"}
    assert all(2 + 20 + 10 - 1 < seconds <= 2 + 20 + 10 + 30 for seconds in timers.values()), timers


SLOW_READINESS_FIXTURE = """
import time

import pytest

@pytest.fixture(autouse=True, scope="session")
def wait_until_ready():
    time.sleep(11.5)
"""


def test_a_one_by_one_checks_backstop_never_times_a_developers_fixture(pytester, write_config, demo):
    # Found by review: the backstop (timeout + 10 s) timed setup too, and with the thread method
    # a slow autouse readiness wait ended a healthy run with exit 1 and no verdict.
    pytester.makeconftest(SLOW_READINESS_FIXTURE)
    write_config(suite(demo, health("basic", "/health", timeout_seconds=1)))
    result = pytester.runpytest_subprocess(
        "--smoke-config", "smoke.json", "--smoke-report", "report.json", "--timeout-method", "thread"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["✓ Smoke tests passed*"])
    assert (pytester.path / "report.json").exists()


def test_checks_queued_for_a_host_are_not_started_once_fail_fast_stops_the_run(pytester, write_config, demo):
    demo.faults.add("ready-503")
    waiting = [health(f"slow-{i}", f"/slow?ms=2000&i={i}", timeout_seconds=5) for i in range(5)]
    write_config(
        suite(
            demo,
            health("ready", "/health/ready"),
            *waiting,
            max_concurrency_per_host=1,
            fail_fast=True,
            auto_rollback={"enabled": True, "requires_ops_confirmation": False},
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-no-rollback")
    assert result.ret == 1
    sent = [path for _, path in demo.requests if path.startswith("/slow")]
    assert len(sent) <= 1  # at most the one already in flight when the failure came in: 2 s, not 10


def test_headers_from_config_are_sent_and_interpolated_secrets_never_shown(pytester, write_config, demo, monkeypatch):
    import requests

    token = requests.post(
        demo.url + "/api/auth/login", json={"email": "test@example.com", "password": "test"}, timeout=5
    ).json()["access_token"]
    monkeypatch.setenv("SMOKE_TOKEN", token)
    write_config(
        suite(
            demo,
            health("authorized", "/api/user/profile", headers={"Authorization": "Bearer ${SMOKE_TOKEN}"}),
            health("json-only", "/api/user/profile", expect={"json": {"email": "nobody"}}),
            headers={"Authorization": "Bearer ${SMOKE_TOKEN}"},
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v", "--junitxml=out.xml")
    result.assert_outcomes(passed=1, failed=1)  # both authenticated: one by its own, one by the default header
    out = result.stdout.str() + result.stderr.str() + (pytester.path / "out.xml").read_text()
    assert 'body.email is "test@example.com", expected "nobody"' in out
    assert token not in out


def test_null_removes_an_inherited_header_from_a_check_a_dependency_and_a_step(pytester, write_config, demo):
    demo.tokens["tok-anonymous-test"] = "test@example.com"
    anonymous = {"Authorization": None}
    write_config(
        {
            "base_url": demo.url,
            "headers": {"Authorization": "Bearer tok-anonymous-test"},  # every check inherits it
            "health_checks": [
                health("me", "/api/user/profile"),
                health("anonymous", "/api/user/profile", headers=anonymous, expected_status=401),
            ],
            "dependency_checks": [
                {
                    "name": "anonymous-api",
                    "type": "http",
                    "url": f"{demo.url}/api/user/profile",
                    "headers": {"authorization": None},
                    "expected_status": 401,
                }
            ],  # any case
            "critical_paths": [
                {
                    "name": "anonymous-path",
                    "steps": [
                        {"endpoint": "/api/user/profile", "headers": anonymous, "required_status": 401},
                        {"endpoint": "/api/user/profile"},
                    ],
                }
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-rA")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["✓ Smoke tests passed*"])


def test_basic_auth_at_every_level_is_sent_inherited_and_never_shown(pytester, write_config, monkeypatch):
    import base64
    from http.server import BaseHTTPRequestHandler

    from servers import LocalHTTPServer, QuietHandler

    accepted = {
        f"Basic {base64.b64encode(pair.encode()).decode()}" for pair in ("ops:Top-Secret-77", "reader:Check-Secret-88")
    }
    seen: list[str] = []

    class BasicAuthOnly(QuietHandler, BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization", ""))
            self.answer(200 if self.headers.get("Authorization") in accepted else 401, b"", "text/plain")

    server = LocalHTTPServer(BasicAuthOnly)
    try:
        monkeypatch.setenv("OPS_PASSWORD", "Top-Secret-77")
        write_config(
            {
                "base_url": server.url,
                "basic_auth": {"username": "ops", "password": "${OPS_PASSWORD}"},
                "health_checks": [
                    health("top", "/a"),
                    health("own", "/b", basic_auth={"username": "reader", "password": "Check-Secret-88"}),
                    health("anonymous", "/c", headers={"Authorization": None}, expected_status=401),
                    health("wrong", "/d", basic_auth={"username": "ops", "password": "not-it"}),
                ],
            }
        )
        result = pytester.runpytest("--smoke-config", "smoke.json", "-vv", "-l", "--smoke-report", "report.json")
    finally:
        server.stop()
    assert result.ret == 1  # only "wrong" fails: 401
    result.stdout.fnmatch_lines(["*1. Health Check: wrong: /d returned 401 (expected 200)*"])
    assert seen.count("") == 1 and len(seen) == 4  # the anonymous check sent none
    shown = result.stdout.str() + result.stderr.str() + (pytester.path / "report.json").read_text()
    for secret in ("Top-Secret-77", "Check-Secret-88", *(value.split()[1] for value in accepted)):
        assert secret not in shown


def test_basic_auth_beside_an_authorization_header_is_a_config_error(tmp_path):
    from pytest_smoke.config import ConfigError, load_config

    path = tmp_path / "smoke.json"
    path.write_text(
        json.dumps(
            {
                "base_url": "http://127.0.0.1:9",
                "health_checks": [
                    health(
                        "h", "/h", headers={"Authorization": "Bearer x"}, basic_auth={"username": "u", "password": "p"}
                    )
                ],
            }
        )
    )
    with pytest.raises(
        ConfigError, match=r"health_checks\[0\]\.basic_auth: basic_auth and headers\.Authorization are both set"
    ):
        load_config(path)


def test_a_405_gets_the_method_advice_and_an_error_page_is_not_called_bad_json(pytester, write_config):
    from http.server import BaseHTTPRequestHandler

    from servers import LocalHTTPServer, QuietHandler

    class PostOnly(QuietHandler, BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer(405, b"<html><body>Method Not Allowed</body></html>", "text/html")

    server = LocalHTTPServer(PostOnly)
    try:
        write_config(
            {"base_url": server.url, "health_checks": [health("method", "/login", expect={"json": {"status": "ok"}})]}
        )
        result = pytester.runpytest("--smoke-config", "smoke.json")
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "1. Health Check: method: /login returned 405 (expected 200)",
            "Issue: The endpoint does not accept this method (405)",
        ]
    )
    assert "not valid JSON" not in result.stdout.str()


def test_error_answers_get_the_advice_of_their_cause(pytester, write_config):
    """MLflow's shapes: a 400 carrying a database error, a 503 error envelope (its keys are not
    failing components), a 403 (permission, not credentials)."""
    from http.server import BaseHTTPRequestHandler

    from servers import LocalHTTPServer, QuietHandler

    answers = {
        "/api/experiments": (
            400,
            {
                "error_code": "BAD_REQUEST",
                "message": '(psycopg2.errors.UndefinedTable) relation "experiments" does not exist',
            },
        ),
        "/api/runs": (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "too busy; sqlstate: XXM00"}),
        "/api/admin": (403, {"error_code": "PERMISSION_DENIED", "message": "Permission denied"}),
        "/api/form": (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing value for 'name'"}),
    }

    class MlflowLike(QuietHandler, BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer(*answers[self.path])

    server = LocalHTTPServer(MlflowLike)
    try:
        write_config({"base_url": server.url, "health_checks": [health(path[5:], path) for path in answers]})
        result = pytester.runpytest("--smoke-config", "smoke.json")
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "1. Health Check: experiments: /api/experiments returned 400 (expected 200)",
            "Issue: The service answered with a database error: the request was likely fine, the database was not",
            "*",
            "2. Health Check: runs: /api/runs returned 503 (expected 200)",
            "Issue, impact and next steps: as for 1. above",
            "3. Health Check: admin: /api/admin returned 403 (expected 200)",
            "Issue: The request was authenticated but forbidden (403)",
            "*",
            "4. Health Check: form: /api/form returned 400 (expected 200)",
            "Issue: The endpoint rejected the request as malformed (400)",
        ]
    )
    assert "failing: error_code" not in result.stdout.str()


def test_smoke_http_sends_the_configs_basic_auth_and_never_shows_it(pytester, write_config, monkeypatch):
    import base64
    from http.server import BaseHTTPRequestHandler

    from servers import LocalHTTPServer, QuietHandler

    wanted = "Basic " + base64.b64encode(b"ops:Top-Secret-77").decode()

    class BasicAuthOnly(QuietHandler, BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer(200 if self.headers.get("Authorization") == wanted else 401, {"who": "ops"})

    server = LocalHTTPServer(BasicAuthOnly)
    try:
        monkeypatch.setenv("OPS_PASSWORD", "Top-Secret-77")
        write_config(
            {
                "base_url": server.url,
                "basic_auth": {"username": "ops", "password": "${OPS_PASSWORD}"},
                "health_checks": [health("h", "/h")],
            }
        )
        pytester.makepyfile(
            test_custom="""
            import pytest

            @pytest.mark.smoke_required
            def test_who_am_i(smoke_http):
                answer = smoke_http.get("/me")
                assert answer.status_code == 200, answer.request.headers["Authorization"]
                assert answer.json() == {"who": "wrong"}, answer.request.headers["Authorization"]
            """
        )
        result = pytester.runpytest("--smoke-config", "smoke.json", "-vv", "-l")
    finally:
        server.stop()
    result.assert_outcomes(passed=1, failed=1)  # the custom test got past the 200: auth was sent
    assert "assert {'who': 'ops'} == {'who': 'wrong'}" in result.stdout.str()
    assert "Top-Secret-77" not in result.stdout.str() and wanted.split()[1] not in result.stdout.str()
