"""One failure stays one (issue 29): a check's answer never reaches another check through a shared
connection, against a real local server that answers an error before reading the request body
(as Python's http.server and several small frameworks do), and the bundled demo's faults explain
exactly the failures reported."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from helpers import health
from servers import LocalHTTPServer


class AnswersBeforeReading(BaseHTTPRequestHandler):
    """200 to every GET; 500 to a POST, without reading its body (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, {"status": "ok"})

    def do_POST(self):
        self.answer(500, {"error": "order service down"})  # the body is left on the connection


def run(pytester, *args):
    return pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", *args)


def test_an_error_answered_before_the_body_was_read_fails_one_check_not_two(pytester, write_config):
    server = LocalHTTPServer(AnswersBeforeReading)
    try:
        write_config({
            "base_url": server.url,
            "health_checks": [health(f"h{i}", f"/health/{i}") for i in range(12)],
            "critical_paths": [
                {"name": "place-order", "steps": [{"method": "POST", "endpoint": "/api/orders", "payload": {"sku": "x" * 2000}}]},
                {"name": "browse", "steps": [{"endpoint": "/api/catalog"}]},
            ],
        })
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
        "-p", "no:cacheprovider", "--smoke-config", "demo/smoke-test-hook.json", "demo", "--smoke-report", "report.json",
    )
    assert result.ret == 1
    report = json.loads((pytester.path / "report.json").read_text())
    failed = {c["name"]: c["reason"] for c in report["checks"] if c["status"] == "failed"}
    assert set(failed) == {"readiness", "auth-service", "user-login", "create-read", "test_resources_round_trip"}
    for name, reason in failed.items():  # each one is one of the two faults, never a stray 400
        assert "/health/ready returned 503" in reason or "/api/auth/login) returned 500" in reason \
            or "/api/auth/login returned 500" in reason, (name, reason)


def test_early_hints_before_the_answer_are_skipped_like_100_continue(pytester, write_config):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)  # the accept loop checks ``stop`` this often
    stop = threading.Event()

    def serve():  # a real server that sends 103 Early Hints first, as Node's writeEarlyHints does
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                body = b'{"status": "ok"}'
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
                             b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        write_config({"base_url": url, "health_checks": [health("ready", "/health", expect={"json": {"status": "ok"}})]})
        result = run(pytester)
    finally:
        stop.set()
        listener.close()
        thread.join(5)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["✓ Smoke tests passed (all health checks OK)"])
