"""Critical paths: multi-step workflows against the real demo service."""

from __future__ import annotations

import time

import pytest

from pytest_smoke.checks import CheckContext, CheckFailed, run_check
from pytest_smoke.model import Check
from pytest_smoke.redact import Redactor

from helpers import assert_cut_short

LOGIN = {"method": "POST", "endpoint": "/api/auth/login", "payload": {"email": "test@example.com", "password": "test"}}
TOKEN_LOGIN = {**LOGIN, "save": {"token": "body.access_token"}}
BEARER = {"Authorization": "Bearer {token}"}


def path(*steps, **extra):
    return {"name": extra.pop("name", "flow"), "steps": list(steps), "timeout_seconds": 10, **extra}


def run_path(demo, spec):
    ctx = CheckContext(base_url=demo.url, redactor=Redactor())
    return run_check(Check.of("critical_path", spec), ctx), ctx


def fail_path(demo, spec):
    ctx = CheckContext(base_url=demo.url, redactor=Redactor())
    with pytest.raises(CheckFailed) as failure:
        run_check(Check.of("critical_path", spec), ctx)
    return failure.value, ctx


def test_seed_user_login_works_over_a_cookie_session(demo):
    result, ctx = run_path(
        demo, path(LOGIN, {"method": "GET", "endpoint": "/api/user/profile", "required_status": 200})
    )
    assert result.summary == "2 step(s) passed"
    assert demo.requests == [("POST", "/api/auth/login"), ("GET", "/api/user/profile")]


def test_profile_without_login_fails_naming_the_step_and_showing_a_curl_line(demo):
    failure, _ = fail_path(
        demo, path({"method": "GET", "endpoint": "/api/user/profile", "required_status": 200}, name="profile")
    )
    assert failure.reason == "step 1/1 (GET /api/user/profile) returned 401 (expected 200)"
    assert "response: 401, " in failure.details and '{"error": "not authenticated"}' in failure.details
    assert "saved so far: (nothing)" in failure.details
    assert f"reproduce: curl -sS -X GET {demo.url}/api/user/profile" in failure.details


def test_token_login_create_then_read_by_saved_id_and_cleanup(demo):
    spec = path(
        TOKEN_LOGIN,
        {
            "method": "POST",
            "endpoint": "/api/resources",
            "headers": BEARER,
            "payload": {"title": "smoke"},
            "required_status": 201,
            "save": {"rid": "body.id", "hdr": "headers.X-Resource-Id"},
        },
        {"method": "GET", "endpoint": "/api/resources/{rid}", "expect": {"json": {"title": "smoke"}}},
        {
            "method": "GET",
            "endpoint": "/api/resources",
            "params": {"check": "{hdr}"},
            "save": {"first": "body.items.0.id"},
        },
        cleanup=[{"method": "DELETE", "endpoint": "/api/resources/{first}", "required_status": 204}],
    )
    result, _ = run_path(demo, spec)
    assert result.warnings == []
    assert ("GET", "/api/resources/1") in demo.requests
    assert ("DELETE", "/api/resources/1") in demo.requests
    assert demo.resources == {}  # nothing left behind


def test_cleanup_runs_after_a_failure_and_a_failed_cleanup_is_only_a_warning(demo):
    spec = path(
        TOKEN_LOGIN,
        {
            "method": "POST",
            "endpoint": "/api/resources",
            "headers": BEARER,
            "payload": {"title": "x"},
            "save": {"rid": "body.id"},
        },
        {"method": "GET", "endpoint": "/api/resources/{rid}", "expect": {"json": {"title": "y"}}},
        cleanup=[
            {"method": "DELETE", "endpoint": "/api/resources/{rid}", "required_status": 204},
            {"method": "DELETE", "endpoint": "/api/resources/999", "required_status": 204},
        ],
    )
    failure, _ = fail_path(demo, spec)
    assert failure.reason == 'step 3/3 (GET /api/resources/1) body.title is "x", expected "y"'
    assert demo.resources == {}
    assert (
        "warning: cleanup failed: cleanup step 2/2 (DELETE /api/resources/999) returned 404 (expected 204)"
        in failure.details
    )


def test_cleanup_step_needing_a_value_never_saved_is_skipped_with_a_warning(demo):
    demo.faults.add("login-500")
    spec = path(TOKEN_LOGIN, cleanup=[{"method": "DELETE", "endpoint": "/api/resources/{token}"}])
    failure, _ = fail_path(demo, spec)
    assert "returned 500 (expected any 2xx)" in failure.reason
    assert "warning: cleanup step 1 skipped: {token} was never saved" in failure.details
    assert ("DELETE", "/api/resources/{token}") not in demo.requests


def test_missing_save_path_names_the_path_and_the_keys_there(demo):
    failure, _ = fail_path(demo, path({**LOGIN, "save": {"token": "body.user.token"}}))
    assert (
        failure.reason
        == "step 1/1 (POST /api/auth/login) cannot save 'token': body.user.token not found (body.user has keys: email)"
    )
    failure, _ = fail_path(demo, path({"endpoint": "/api/resources", "save": {"first": "body.items.0.id"}}))
    assert "body.items.0.id not found (body.items has a list of 0)" in failure.reason


def test_literal_braces_and_saved_values_in_templates(demo):
    spec = path(
        TOKEN_LOGIN,
        {
            "method": "POST",
            "endpoint": "/api/resources",
            "headers": BEARER,
            "payload": {"title": "{{literal}} for {token}"},
            "required_status": 201,
            "save": {"rid": "body.id"},
        },
    )
    run_path(demo, spec)
    title = demo.resources[1]["title"]
    assert title.startswith("{literal} for ") and len(title) > len("{literal} for ")


def test_rate_limit_engages(demo):
    result, _ = run_path(demo, path({"endpoint": "/api/limited", "rate_limit": {"requests": 30, "expect_status": 429}}))
    assert result.summary == "1 step(s) passed"
    assert len(demo.requests) == 6  # passes as soon as the limit answers: 5 allowed + the 429


def test_rate_limit_not_enforced(demo):
    demo.faults.add("no-rate-limit")
    failure, _ = fail_path(demo, path({"endpoint": "/api/limited", "rate_limit": {"requests": 12}}, name="rate"))
    assert (
        failure.reason
        == "step 1/1 (GET /api/limited) rate limiting not enforced after 12 requests (no 429; got 12x 200)"
    )
    assert failure.kind == "rate_limit_not_enforced"


def test_one_deadline_covers_every_step(demo):
    slow = {"endpoint": "/slow?ms=600"}
    started = time.monotonic()
    failure, _ = fail_path(demo, path(*[slow] * 10, timeout_seconds=1.5))
    elapsed = time.monotonic() - started
    assert "step 3/10 (GET /slow?ms=600)" in failure.reason and "timed out after 1.5 s" in failure.reason
    assert_cut_short(elapsed, 1.5, unbounded=10 * 0.6)


def test_failure_report_redacts_saved_tokens_and_passwords(demo):
    spec = path(
        TOKEN_LOGIN,
        {"method": "GET", "endpoint": "/api/user/profile", "headers": BEARER, "expect": {"json": {"email": "other"}}},
    )
    failure, ctx = fail_path(demo, spec)
    shown = ctx.redactor.text(str(failure))
    token = next(iter(demo.tokens))
    assert token not in shown
    assert "saved so far: token=***" in shown
    assert "-H 'Authorization: ***'" in shown
    assert "-b 'session=***'" in shown


def test_unknown_template_variable_is_a_config_error_before_any_request(pytester, write_config, demo):
    write_config({"base_url": demo.url, "critical_paths": [path(LOGIN, {"endpoint": "/api/resources/{rid}"})]})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*critical_paths[[]0[]].steps[[]1[]].endpoint: unknown template variable {rid} (saved so far: "
            "nothing is saved before this step*"
        ]
    )
    assert demo.requests == []


def test_password_and_tokens_appear_in_no_output(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("LOGIN_PASSWORD", "Pa55-smoke-login")
    import demo_service

    monkeypatch.setattr(demo_service, "DEMO_PASSWORD", "Pa55-smoke-login", raising=False)
    login = {**TOKEN_LOGIN, "payload": {"email": "test@example.com", "password": "${LOGIN_PASSWORD}"}}
    write_config(
        {
            "base_url": demo.url,
            "critical_paths": [
                path(
                    login,
                    {"endpoint": "/api/user/profile", "headers": BEARER, "expect": {"body_contains": "nobody"}},
                    name="wrong-profile",
                ),
                path(
                    {**login, "payload": {"email": "wrong@example.com", "password": "${LOGIN_PASSWORD}"}},
                    name="bad-login",
                ),
                path(login, name="login-only"),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v", "-rA", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=2)
    everything = result.stdout.str() + result.stderr.str() + (pytester.path / "junit.xml").read_text()
    assert "Pa55-smoke-login" not in everything
    assert '"password": "***"' in everything


def test_critical_path_items_through_pytest(pytester, write_config, demo):
    demo.faults.add("profile-401")
    write_config(
        {
            "base_url": demo.url,
            "critical_paths": [
                path(LOGIN, {"endpoint": "/api/user/profile", "required_status": 200}, name="user-login"),
                path({"endpoint": "/api/resources", "required_status": 200}, name="core-api"),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*smoke.json::critical_path[[]user-login[]] FAILED*",
            "*smoke.json::critical_path[[]core-api[]] PASSED*",
            "step 2/2 (GET /api/user/profile) returned 401 (expected 200)",
            "severity: critical (required check)",
        ]
    )


def test_built_in_template_values_make_unique_names_per_run_and_per_use(pytester, write_config, demo):
    import json
    import re
    import time

    create = {
        "method": "POST",
        "endpoint": "/api/resources",
        "headers": BEARER,
        "required_status": 201,
        "payload": {"title": "smoke-{run_id}", "note": "{uuid} {uuid} {timestamp}"},
        "save": {"rid": "body.id"},
    }
    read = {"endpoint": "/api/resources/{rid}", "expect": {"json": {"title": "smoke-{run_id}"}}}
    write_config({"base_url": demo.url, "critical_paths": [path(TOKEN_LOGIN, create, read, name="unique")]})
    started = int(time.time())
    for _ in range(2):
        assert pytester.runpytest("--smoke-config", "smoke.json").ret == 0
    titles = [r["title"] for r in demo.resources.values()]
    assert len(titles) == 2 and len(set(titles)) == 2 and all(re.fullmatch(r"smoke-[0-9a-f]{12}", t) for t in titles)
    for resource in demo.resources.values():
        first, second, stamp = resource["note"].split()
        assert first != second and len(first) == 36  # a fresh UUID at each use
        assert started - 1 <= int(stamp) <= time.time()  # the run's start, epoch seconds
    assert json.dumps(list(demo.resources.values())).count("{") == 2  # every template was filled


def test_saving_under_a_built_in_name_is_a_config_error(tmp_path):
    import json

    from pytest_smoke.config import ConfigError, load_config

    (tmp_path / "smoke.json").write_text(
        json.dumps(
            {
                "base_url": "http://127.0.0.1:9",
                "critical_paths": [path({**TOKEN_LOGIN, "save": {"run_id": "body.access_token"}})],
            }
        )
    )
    with pytest.raises(
        ConfigError, match=r"critical_paths\[0\]\.steps\[0\]\.save\.run_id: \{run_id\} is a built-in template value"
    ):
        load_config(tmp_path / "smoke.json")


@pytest.mark.parametrize("budget, warned", [(1, True), (4, False)])
def test_cleanup_timeout_seconds_gives_a_slow_cleanup_its_time(demo, budget, warned):
    slow_cleanup = {"endpoint": "/slow?ms=2000"}  # a slow proxy in front of the delete
    result, _ = run_path(demo, path(LOGIN, cleanup=[slow_cleanup], cleanup_timeout_seconds=budget))
    assert result.warnings == (
        ["cleanup failed: cleanup step 1/1 (GET /slow?ms=2000) timed out after 1 s (no response)"] if warned else []
    )


def test_basic_auth_in_a_cleanup_step_is_sent_and_a_template_in_it_is_a_config_error(tmp_path):
    import json

    from pytest_smoke.config import ConfigError, load_config

    def doc(auth):
        return {
            "base_url": "http://127.0.0.1:9",
            "critical_paths": [path(LOGIN, cleanup=[{"method": "POST", "endpoint": "/auth", "basic_auth": auth}])],
        }

    (tmp_path / "smoke.json").write_text(json.dumps(doc({"username": "admin", "password": "Cleanup-Secret-31"})))
    config = load_config(tmp_path / "smoke.json")
    (cleanup,) = config.checks[0].spec["cleanup"]
    assert "basic_auth" not in cleanup and cleanup["headers"]["Authorization"].startswith("Basic ")
    assert "Cleanup-Secret-31" in config.secrets
    assert "Cleanup-Secret-31" not in repr(config.checks)  # reporters record a parameter's repr
    (tmp_path / "smoke.json").write_text(json.dumps(doc({"username": "user-{run_id}", "password": "x"})))
    with pytest.raises(ConfigError, match=r"cleanup\[0\]\.basic_auth\.username: basic_auth takes no \{templates\}"):
        load_config(tmp_path / "smoke.json")


def test_run_id_is_one_value_across_xdist_workers(pytester, write_config, demo):
    create = {
        "method": "POST",
        "endpoint": "/api/resources",
        "headers": BEARER,
        "required_status": 201,
        "payload": {"title": "smoke-{run_id}"},
    }
    write_config(
        {
            "base_url": demo.url,
            "critical_paths": [path(TOKEN_LOGIN, create, name="first"), path(TOKEN_LOGIN, create, name="second")],
        }
    )
    assert pytester.runpytest_subprocess("--smoke-config", "smoke.json", "-n", "2").ret == 0
    titles = [r["title"] for r in demo.resources.values()]
    assert len(titles) == 2 and titles[0] == titles[1], titles


def test_a_create_applied_after_its_timeout_is_cleaned_up_by_its_run_id_name(pytester, write_config):
    """Kinto's case: the create timed out, the service applied it later, and nothing was saved to
    clean up by. A name built from {run_id} is known to the cleanup all the same."""
    import threading
    from http.server import BaseHTTPRequestHandler

    from servers import LocalHTTPServer, QuietHandler

    store: set[str] = set()
    release = threading.Event()

    class SlowCreate(QuietHandler, BaseHTTPRequestHandler):
        def do_PUT(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            store.add(self.path)  # applied, but the answer comes too late
            release.wait(10)
            self.answer(201, {})

        def do_DELETE(self):
            store.discard(self.path)
            self.answer(204, b"")

    server = LocalHTTPServer(SlowCreate)
    try:
        create = {"method": "PUT", "endpoint": "/buckets/smoke-{run_id}", "payload": {}, "required_status": 201}
        write_config(
            {
                "base_url": server.url,
                "critical_paths": [
                    path(
                        create, timeout_seconds=1, cleanup=[{"method": "DELETE", "endpoint": "/buckets/smoke-{run_id}"}]
                    )
                ],
            }
        )
        result = pytester.runpytest("--smoke-config", "smoke.json")
    finally:
        release.set()
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*step 1/1 (PUT /buckets/smoke-*) timed out after 1 s*"])
    assert store == set()  # the cleanup deleted what the timed-out create left behind
