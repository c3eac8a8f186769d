"""One failure stays one (issue 29): a check's answer never reaches another check through a shared
connection, against a real local server that answers an error before reading the request body
(as Python's http.server and several small frameworks do), and the bundled demo's faults explain
exactly the failures reported."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from helpers import health
from servers import LocalHTTPServer, QuietHandler


class AnswersBeforeReading(QuietHandler, BaseHTTPRequestHandler):
    """200 to every GET; 500 to a POST, without reading its body (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.answer(200, {"status": "ok"})

    def do_POST(self):
        self.answer(500, {"error": "order service down"})  # the body is left on the connection


def run(pytester, *args):
    return pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", *args)


def test_an_error_answered_before_the_body_was_read_fails_one_check_not_two(pytester, write_config):
    server = LocalHTTPServer(AnswersBeforeReading)
    try:
        write_config(
            {
                "base_url": server.url,
                "health_checks": [health(f"h{i}", f"/health/{i}") for i in range(12)],
                "critical_paths": [
                    {
                        "name": "place-order",
                        "steps": [{"method": "POST", "endpoint": "/api/orders", "payload": {"sku": "x" * 2000}}],
                    },
                    {"name": "browse", "steps": [{"endpoint": "/api/catalog"}]},
                ],
            }
        )
        for concurrency in ("1", "4"):
            result = run(pytester, "--smoke-concurrency", concurrency)
            result.assert_outcomes(passed=13, failed=1)
            result.stdout.fnmatch_lines(["1. Critical Path: place-order: *returned 500*"])
            assert "Bad request" not in result.stdout.str()
    finally:
        server.stop()


def test_the_demo_faults_report_only_the_failures_they_explain(pytester, monkeypatch):
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).parent.parent / "example_suites" / "demo", pytester.path / "demo")
    monkeypatch.setenv("DEMO_FAULTS", "ready-503,login-500")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--smoke-config",
        "demo/smoke-test-hook.json",
        "demo",
        "--smoke-report",
        "report.json",
    )
    assert result.ret == 1
    report = json.loads((pytester.path / "report.json").read_text())
    failed = {c["name"]: c["reason"] for c in report["checks"] if c["status"] == "failed"}
    assert set(failed) == {"readiness", "auth-service", "user-login", "create-read", "test_resources_round_trip"}
    for name, reason in failed.items():  # each one is one of the two faults, never a stray 400
        assert (
            "/health/ready returned 503" in reason
            or "/api/auth/login) returned 500" in reason
            or "/api/auth/login returned 500" in reason
        ), (name, reason)


class RawServer:
    """A real TCP server on 127.0.0.1 that reads one request head and sends ``answer`` bytes, then
    closes: for answers no HTTP library would produce. ``stop()`` ends it."""

    def __init__(self, answer: bytes, request_end: bytes = b"\r\n\r\n"):
        import socket
        import threading

        self.answer, self.request_end = answer, request_end
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)  # the accept loop checks ``stopped`` this often
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import socket

        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                request = b""
                while self.request_end not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                conn.sendall(self.answer)

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


def ok_json(body: bytes, head: bytes = b"") -> bytes:
    return (
        head + b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def judged(pytester, write_config, answer: bytes, **check):
    server = RawServer(answer)
    try:
        write_config({"base_url": server.url, "health_checks": [health("ready", "/health", **check)]})
        return run(pytester)
    finally:
        server.stop()


def test_early_hints_before_the_answer_are_skipped_like_100_continue(pytester, write_config):
    # As Node's writeEarlyHints, h2o and some CDNs send them.
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
    result = judged(pytester, write_config, ok_json(b'{"status": "ok"}', head=hints), expect={"json": {"status": "ok"}})
    assert result.ret == 0
    result.stdout.fnmatch_lines(["✓ Smoke tests passed (all health checks OK)"])


def test_what_the_service_sent_wrongly_is_its_failure_never_the_runners(pytester, write_config):
    deep = judged(pytester, write_config, ok_json(b"[" * 3000 + b"]" * 3000), expect={"json": {"status": "ok"}})
    assert deep.ret == 1  # a failure of the service: never "not evaluated (RecursionError)"
    deep.stdout.fnmatch_lines(["1. Health Check: ready: *body is not valid JSON (nested too deeply to read)*"])
    garbage = judged(pytester, write_config, b"HELLO \x1b[2K not http\r\n\r\n")
    assert garbage.ret == 1
    garbage.stdout.fnmatch_lines(["1. Health Check: ready: 127.0.0.1:* answered something that is not HTTP: *"])
    assert "cannot reach" not in garbage.stdout.str() and "\x1b[2K" not in garbage.stdout.str()


def test_every_check_refused_with_the_same_credentials_is_one_cause(pytester, write_config, demo, kube):
    from helpers import deployment_patches, smoke_doc

    demo.faults.add("profile-401")  # the smoke user's token is refused everywhere
    doc = smoke_doc(demo, kube, confirm=True)
    doc["health_checks"] = [health(f"profile-{i}", "/api/user/profile") for i in range(3)]
    doc["critical_paths"] = []
    write_config(doc)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - Rollback awaiting ops confirmation",  # one cause: not "multiple failures"
            "Same cause: credentials refused (401/403), as profile-0 (counts once, with it)",
        ]
    )
    assert "multiple failures detected" not in result.stdout.str()
    assert deployment_patches(kube) == []


def test_a_failed_precondition_is_inconclusive_never_a_rollback(pytester, write_config, demo, kube):
    from helpers import deployment_patches, smoke_doc

    doc = smoke_doc(demo, kube, confirm=False)
    doc["critical_paths"] = [
        {
            "name": "smoke-user-can-log-in",
            "precondition": True,  # the pipeline's secret is stale
            "steps": [
                {
                    "method": "POST",
                    "endpoint": "/api/auth/login",
                    "payload": {"email": "test@example.com", "password": "rotated"},
                }
            ],
        }
    ]
    demo.faults.add("ready-503")  # a real failure too: it must not count while the runner's setup is broken
    write_config(doc)
    result = run(pytester)
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            "? INCONCLUSIVE: the results cannot be attributed to the deploy - no rollback, nothing marked, "
            "deployment NOT verified",
            "Reason: precondition smoke-user-can-log-in failed (step 1/1 (POST /api/auth/login) returned 401*): "
            "the runner's own setup (credentials, network, a test account) is at fault, not the deploy",
            "Next: fix the runner's setup the precondition names*",
        ]
    )
    assert deployment_patches(kube) == []


def test_a_server_that_answers_redis_hello_with_a_plain_string_fails_the_check(write_config):
    from pytest_smoke.checks import CheckContext, CheckFailed, run_check
    from pytest_smoke.model import Check
    from pytest_smoke.redact import Redactor

    server = RawServer(b"+OK\r\n", request_end=b"\r\n")  # not a RESP3 map: redis-py cannot read it as HELLO's answer
    try:
        url = server.url.replace("http://", "redis://") + "/0?protocol=3"
        check = Check.of("dependency", {"name": "cache", "type": "redis", "url": url, "timeout_seconds": 3})
        try:
            run_check(check, CheckContext(redactor=Redactor()))
        except CheckFailed as failure:  # the server's answer: never "not evaluated (AttributeError)"
            assert failure.reason.startswith(
                f"Redis at {url.split('//')[1].split('/')[0]} answered something that is not the Redis protocol"
            )
        else:
            raise AssertionError("a server that does not speak Redis passed the check")
    finally:
        server.stop()


# -- found by the second adversarial review -------------------------------------------------------------


@pytest.mark.skipif(pytest.version_tuple < (9,), reason="subtests are built into pytest 9")
def test_a_required_custom_test_failing_in_a_subtest_is_critical(pytester, write_config, demo):
    pytester.makepyfile(
        test_fields="""
        import pytest

        @pytest.mark.smoke_required
        def test_readiness_fields(smoke_http, subtests):
            reply = smoke_http.get("/health/ready")
            with subtests.test(field="status"):
                assert reply.status_code == 200, f"readiness answered {reply.status_code}"
    """
    )
    demo.faults.add("ready-503")
    write_config({"base_url": demo.url, "health_checks": []})
    result = run(pytester, "test_fields.py")
    assert result.ret == 1  # never "passed", never verified
    result.stdout.fnmatch_lines(
        ["1. Smoke Test: test_readiness_fields: 1 failed subtest(s): AssertionError: readiness answered 503*"]
    )


def test_a_precondition_that_fails_by_the_services_fault_counts_like_any_failure(pytester, write_config, demo, kube):
    from helpers import deployment_patches, smoke_doc

    doc = smoke_doc(demo, kube, confirm=False)
    doc["critical_paths"][0]["precondition"] = True  # the login: but it answers 500, the service's fault
    demo.faults.add("login-500")
    write_config(doc)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ CRITICAL: Smoke tests failed - Rollback completed"])
    assert deployment_patches(kube)


def test_shared_credentials_are_one_cause_but_never_hold_back_a_crashloop():
    from pytest_smoke.model import Outcome
    from pytest_smoke.settings import AutoRollback
    from pytest_smoke.verdict import classify, decide

    def failed(name, kind, reason):
        return Outcome(
            nodeid=name, name=name, kind="health", required=True, status="failed", failure_kind=kind, reason=reason
        )

    refused = [failed(f"c{i}", "connection_refused", "connection refused at web:80") for i in range(3)]
    assert (
        decide(classify(refused), AutoRollback.of({"enabled": True, "critical_failure_threshold": 2})).action
        == "rollback"
    )
    denied = [failed(f"a{i}", "http_auth", "returned 401") for i in range(3)]
    decision = decide(classify(denied), AutoRollback.of({"enabled": True, "critical_failure_threshold": 2}))
    assert decision.action == "confirm"  # past the threshold, but one cause: a human confirms
    assert "2 other failure(s) share one cause (credentials refused (401/403)) and count once" in decision.reason
    optional = failed("login", "http_auth", "returned 401")
    optional.precondition, optional.required = True, False
    assert classify([optional, *refused]).attribution_problem == ""  # an optional precondition stops nothing


def test_a_success_answered_before_the_body_was_read_never_reaches_the_next_check(pytester, write_config):
    class AcceptsBeforeReading(AnswersBeforeReading):
        def do_POST(self):
            self.answer(202, {"queued": True})  # the body is left on the connection

    server = LocalHTTPServer(AcceptsBeforeReading)
    try:
        write_config(
            {
                "base_url": server.url,
                "health_checks": [health(f"h{i}", f"/health/{i}") for i in range(3)],
                "critical_paths": [
                    {
                        "name": "enqueue",
                        "steps": [{"method": "POST", "endpoint": "/api/jobs", "payload": {"x": "y" * 2000}}],
                    },
                    {"name": "browse", "steps": [{"endpoint": "/api/catalog"}]},
                ],
            }
        )
        result = run(pytester, "--smoke-concurrency", "1")
    finally:
        server.stop()
    result.assert_outcomes(passed=5)


def test_endless_informational_answers_are_the_services_failure_not_a_hang(pytester, write_config):
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 50
    result = judged(pytester, write_config, ok_json(b'{"status": "ok"}', head=hints))
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["1. Health Check: ready: * answered something that is not HTTP: *more than 10 informational (1xx) answers*"]
    )


def test_a_redis_error_of_ours_while_encoding_is_not_blamed_on_the_server(redis_server):
    from pytest_smoke.checks import CheckContext, CheckNotEvaluated, run_check
    from pytest_smoke.model import Check
    from pytest_smoke.redact import Redactor

    url = redis_server.url.rstrip("/") + ("&" if "?" in redis_server.url else "?") + "encoding=ascii"
    check = Check.of(
        "dependency", {"name": "cache", "type": "redis", "url": url, "command": "GET café", "timeout_seconds": 3}
    )
    with pytest.raises(CheckNotEvaluated):  # our config cannot be sent: nothing about a healthy Redis
        run_check(check, CheckContext(redactor=Redactor()))
