"""Issue 32: no secret, no control byte and no unbounded body on any path, custom tests included.
Each case runs against a real local server (or real Redis, PostgreSQL, a real config file) that
does the hostile thing, and asserts what the operator would see: the exit status, the line, the
absence of the secret or the raw byte in every output."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
from test_output_trust import Recorder, every_output, run

from pytest_smoke.notify import dispatch
from pytest_smoke.redact import Redactor

from conftest import gzip_bomb
from helpers import health
from servers import free_port

ESCAPED_PASSWORD = 'jp"Sekret\\77x'  # a quote and a backslash: escaped once more at each echo
ROUTING_KEY = "abcdef0123456789abcdef0123456789"


def test_a_secret_echoed_with_json_escaping_twice_is_masked_in_every_output(pytester, write_config, monkeypatch):
    monkeypatch.setenv("LOGIN_PASSWORD", ESCAPED_PASSWORD)

    def echo(request):  # the request body inside a JSON string, inside a JSON string
        inner = json.dumps({"received": request.request_body.decode()})
        return (
            500,
            [("Content-Type", "application/json")],
            json.dumps({"error": json.dumps({"detail": inner})}).encode(),
        )

    server = Recorder(echo)
    try:
        write_config(
            {
                "base_url": server.url,
                "critical_paths": [
                    {
                        "name": "login",
                        "steps": [
                            {
                                "name": "sign in",
                                "method": "POST",
                                "endpoint": "/login",
                                "payload": {"password": "${LOGIN_PASSWORD}"},
                                "required_status": 200,
                            },
                        ],
                    }
                ],
            }
        )
        result = run(pytester, "-vv", "-l")
    finally:
        server.stop()
    assert result.ret == 1
    shown = every_output(pytester, result)
    assert "Sekret" not in shown  # no escaping depth lets any part of it through
    assert "***" in shown


def test_a_service_echoing_a_key_in_upper_case_or_hex_is_masked():
    leaked = f"invalid routing key {ROUTING_KEY.upper()} (hex {ROUTING_KEY.encode().hex()})"
    server = Recorder(lambda r: (400, [("Content-Type", "application/json")], json.dumps({"message": leaked}).encode()))
    try:
        channels = {"pd": {"type": "pagerduty", "routing_key": ROUTING_KEY, "events_url": server.url + "/v2/enqueue"}}
        results = dispatch(_critical_document(), channels, ["pd"], Redactor([ROUTING_KEY]))
    finally:
        server.stop()
    assert results[0]["status"] == "failed"
    assert results[0]["detail"].startswith("PagerDuty answered 400: invalid routing key ***")
    assert ROUTING_KEY.upper() not in results[0]["detail"] and ROUTING_KEY.encode().hex() not in results[0]["detail"]


def _critical_document():
    return {
        "config": "smoke.json",
        "environment": None,
        "deployment": None,
        "base_url": "http://127.0.0.1:1",
        "finished_at": "2026-12-07T00:00:00Z",
        "verdict": {"state": "critical", "critical": 1, "warnings": 0},
        "decision": {"reason": "1 required check failed"},
        "rollback": None,
        "checks": [{"name": "health", "severity": "critical", "reason": "/health returned 503"}],
        "manual_rollback_command": "",
        "rerun_command": "pytest --smoke-config smoke.json",
    }


def test_a_webhook_redirected_to_another_origin_is_not_followed_with_the_report_and_its_key():
    elsewhere = Recorder(lambda r: (200, [("Content-Type", "application/json")], b'{"id": "T-1"}'))
    other_origin = elsewhere.url.replace("127.0.0.1", "localhost")
    first = Recorder(lambda r: (307, [("Location", other_origin + "/collect")], b""))
    try:
        channels = {
            "hook": {"type": "webhook", "url": first.url + "/hook", "headers": {"X-Api-Key": "key-hook-0192837465"}}
        }
        results = dispatch(_critical_document(), channels, ["hook"], Redactor(["key-hook-0192837465"]))
    finally:
        first.stop()
        elsewhere.stop()
    assert elsewhere.seen == []  # neither the report nor the key went there
    assert results[0]["status"] == "failed"
    assert "to another origin" in results[0]["detail"] and "not followed" in results[0]["detail"]


@pytest.mark.parametrize("channel_type", ["webhook", "incident-webhook", "slack"])
def test_a_bombed_channel_answer_is_read_up_to_the_cap(channel_type):
    bomb = gzip_bomb()  # 1 MB on the wire, 200 MB inflated
    server = Recorder(lambda r: (200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], bomb))
    try:
        key = "webhook_url" if channel_type == "slack" else "url"
        channels = {"c": {"type": channel_type, key: server.url + "/in"}}
        results = dispatch(_critical_document(), channels, ["c"], Redactor())
    finally:
        server.stop()
    # Delivered (the service said 200); the answer was never inflated past 1 MiB to find a ticket in it.
    assert results[0]["status"] in ("sent", "failed")
    assert "MemoryError" not in results[0]["detail"]
    if channel_type == "incident-webhook":
        assert (
            results[0]["detail"] == "body larger than 1024 KiB was not read in full" or results[0]["status"] == "sent"
        )


def test_a_pushgateway_label_from_a_secret_variable_is_refused_before_any_request(pytester, write_config, monkeypatch):
    monkeypatch.setenv("TEAM_TOKEN", "team-s3cr3t-label")
    write_config(
        {
            "base_url": "http://127.0.0.1:1",
            "health_checks": [health("h", "/health")],
            "monitoring": {"pushgateway": {"url": "http://127.0.0.1:1", "labels": {"team": "${TEAM_TOKEN}"}}},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "monitoring.pushgateway.labels.team: a Pushgateway label is sent in the clear" in result.stderr.str()
    assert "team-s3cr3t-label" not in result.stdout.str() + result.stderr.str()


def test_a_secret_label_that_reaches_the_push_is_not_pushed(pushgateway):
    from pytest_smoke.notify import pushgateway as push_module

    document = _critical_document() | {"checks": [], "verdict": {"state": "passed", "critical": 0, "warnings": 0}}
    with pytest.raises(push_module.SecretInLabel):
        push_module.push(
            document,
            {"url": pushgateway.url, "labels": {"team": "team-s3cr3t-label"}},
            {},
            Redactor(["team-s3cr3t-label"]),
        )
    import urllib.request

    with urllib.request.urlopen(pushgateway.url + "/metrics", timeout=5) as answer:
        assert b"team-s3cr3t-label" not in answer.read()


# -- control bytes from a custom test ---------------------------------------------------------------


FORGED = "\x1b[2K\r\u2713 Smoke tests passed"


def test_control_bytes_a_custom_test_read_never_reach_the_terminal(pytester, write_config):
    server = Recorder(lambda r: (200, [("Content-Type", "text/plain")], FORGED.encode()))
    try:
        write_config({"base_url": server.url, "health_checks": [health("h", "/")]})
        pytester.makepyfile(
            test_custom=textwrap.dedent("""
            import pytest

            @pytest.mark.smoke_required
            def test_banner(smoke_http):
                body = smoke_http.get("/").text
                print(body)
                assert body == "expected"
        """)
        )
        result = run(pytester, "-vv", "-rA")
    finally:
        server.stop()
    assert result.ret == 1
    out = result.stdout.str()
    assert "\x1b[2K" not in out and "\r" not in out  # not in the diff, the captured output or the summary
    assert "\\x1b[2K\\r" in out  # shown, escaped


def test_a_location_header_with_escape_sequences_is_escaped_in_the_captured_smoke_call(pytester, write_config):
    server = Recorder(lambda r: (302, [("Location", "/next\x1b]0;owned\x07")], b""))
    try:
        write_config({"base_url": server.url, "health_checks": [health("h", "/", follow_redirects=False)]})
        result = run(pytester, "-rA")
    finally:
        server.stop()
    assert "\x1b]0;" not in result.stdout.str() and "\x07" not in result.stdout.str()


# -- bounded bodies ---------------------------------------------------------------------------------


CHILD = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


def test_a_gzip_bomb_read_through_smoke_http_fails_cleanly_in_bounded_memory(pytester, write_config, fault_server):
    write_config({"base_url": fault_server.url, "health_checks": [health("h", "/badjson", expected_status=200)]})
    pytester.makepyfile(
        test_custom=textwrap.dedent("""
        import pytest

        @pytest.mark.smoke_required
        def test_report(smoke_http):
            assert smoke_http.get("/gzip-bomb").json() == {}
    """)
    )
    (pytester.path / "child.py").write_text(CHILD)
    # 1 GiB of address space: the 200 MB the bomb inflates to, read whole, and its copies exceed it.
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [
            sys.executable,
            "child.py",
            str(1024**3),
            "--smoke-config",
            "smoke.json",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-k",
            "test_report",
            "-q",
        ],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Our cap, not the service's fault: the required test is not evaluated (INCONCLUSIVE), never a rollback.
    assert proc.returncode == 12, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "GET " in proc.stdout and "/gzip-bomb: body over 1024 KiB after decompression" in proc.stdout
    assert "INCONCLUSIVE" in proc.stdout
    assert "MemoryError" not in proc.stdout + proc.stderr


def test_smoke_http_timeout_bounds_the_whole_exchange_body_included(pytester, write_config, fault_server):
    write_config({"base_url": fault_server.url, "health_checks": [health("h", "/badjson")]})
    pytester.makepyfile(
        test_custom=textwrap.dedent("""
        import pytest

        @pytest.mark.smoke_required
        def test_slow(smoke_http):
            smoke_http.get("/trickle", timeout=1)
    """)
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "-k", "test_slow")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*GET http://127.0.0.1:*/trickle: timed out after 1 s"])
    assert "run_with_deadline" not in result.stdout.str()  # the test's own line, not the plugin's threads


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("/gzip-bomb", "Prometheus answered more than 1024 KiB (after decompression): not read further"),
        ("/big", "Prometheus answered more than 1024 KiB (after decompression): not read further"),
        ("/trickle", "did not answer within 2 s"),
    ],
)
def test_a_metric_api_answer_is_capped_and_bounded_in_time(pytester, write_config, fault_server, mode, reason):
    write_config(
        {
            "base_url": fault_server.url,
            "metric_checks": [
                {
                    "name": "errors",
                    "url": fault_server.url + mode,
                    "query": "up",
                    "condition": "result > 0",
                    "timeout_seconds": 2,
                }
            ],
        }
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "-p", "no:cacheprovider", "--smoke-report", "report.json"
    )
    report = json.loads((pytester.path / "report.json").read_text())
    assert reason in report["checks"][0]["reason"]
    assert report["checks"][0]["status"] == "not_evaluated"
    assert result.ret != 0


def test_a_redis_reply_over_the_cap_is_not_evaluated_never_a_failure(redis_server):
    import redis as redis_client
    from test_dependencies import dep

    from pytest_smoke.checks import CheckContext, CheckNotEvaluated, run_check
    from pytest_smoke.model import Check

    client = redis_client.Redis.from_url(redis_server.url)
    client.set("smoke:big", b"x" * (3 * 1024 * 1024))
    try:
        with pytest.raises(CheckNotEvaluated) as problem:  # our limit: never counts toward a rollback
            run_check(
                Check.of("dependency", dep("cache", "redis", url=redis_server.url, command="GET smoke:big")),
                CheckContext(),
            )
    finally:
        client.delete("smoke:big")
        client.close()
    assert problem.value.reason == (
        f"not evaluated: Redis at 127.0.0.1:{redis_server.port} answered GET with more than 1024 KiB: not read further "
        "(a smoke check reads a small reply: PING, or GET of a small key)"
    )


# -- pieces of secrets ------------------------------------------------------------------------------


def test_a_dsn_password_with_an_unencoded_at_sign_never_shows_its_second_half(pytester, write_config):
    dsn = f"postgresql://app:Pa55@W0rdSecondHalf@127.0.0.1:{free_port()}/db"
    write_config(
        {"base_url": "http://127.0.0.1:1", "dependency_checks": [{"name": "db", "type": "postgres", "dsn": dsn}]}
    )
    result = run(pytester, "-vv", "-l")
    shown = every_output(pytester, result)
    assert "W0rdSecondHalf" not in shown and "Pa55" not in shown
    assert result.ret in (1, 3)  # the database is unreachable: a failure (or not evaluated), never a crash


# -- config files -----------------------------------------------------------------------------------


def config_error(pytester, name="smoke.yaml", *args):
    result = pytester.runpytest("--smoke-config", name, "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return result.stderr.str()


def test_a_config_that_is_not_a_regular_file_is_refused_without_reading(pytester):
    os.symlink("/dev/zero", pytester.path / "zero.json")
    os.mkfifo(pytester.path / "pipe.yaml")
    assert "zero.json: not a regular file (a device, a FIFO or a socket)" in config_error(pytester, "zero.json")
    assert "pipe.yaml: not a regular file (a device, a FIFO or a socket)" in config_error(pytester, "pipe.yaml")


def test_a_config_over_the_size_cap_is_refused_before_parsing(pytester):
    (pytester.path / "smoke.yaml").write_text(
        "base_url: http://x\nhealth_checks: []\n#" + "x" * (3 * 1024 * 1024) + "\n"
    )
    assert "a config may have at most 1048576 bytes" in config_error(pytester)


def test_a_huge_variable_value_is_refused_with_its_name(pytester, monkeypatch):
    (pytester.path / "smoke.yaml").write_text(
        "base_url: http://x\nheaders: {X-Token: '${BIG_TOKEN}'}\nhealth_checks: [{name: a, endpoint: /h}]\n"
    )
    # In process: 2 MB is over the kernel's limit for one environment string of a child process.
    monkeypatch.setenv("BIG_TOKEN", "t" * 2_000_000)
    result = pytester.runpytest_inprocess("--smoke-config", "smoke.yaml", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = result.stderr.str()
    assert (
        "headers.X-Token: environment variable BIG_TOKEN holds 2000000 characters: "
        "a ${VAR} value may have at most 65536" in message
    )


def test_a_hex_number_of_thousands_of_digits_is_a_usage_error(pytester):
    (pytester.path / "smoke.yaml").write_text(
        "base_url: http://x\nhealth_checks: [{name: a, endpoint: /h, timeout_seconds: 0x" + "f" * 5000 + "}]\n"
    )
    assert "health_checks[0].timeout_seconds: a number of 20000 bits is out of range (at most 2**63)" in config_error(
        pytester
    )


def test_duplicate_yaml_keys_are_refused_as_in_json(pytester):
    (pytester.path / "smoke.yaml").write_text(
        "base_url: http://x\nhealth_checks: [{name: a, endpoint: /h}]\nbase_url: http://y\n"
    )
    assert "smoke.yaml:3: duplicate key 'base_url'" in config_error(pytester)


def test_a_merge_key_override_is_still_yaml(pytester):
    server = Recorder(lambda r: (200, [("Content-Type", "application/json")], b'{"status": "ok"}'))
    try:
        (pytester.path / "smoke.yaml").write_text(
            f"base_url: {server.url}\nhealth_checks:\n- &base {{name: a, endpoint: /health, timeout_seconds: 3}}\n"
            "- <<: *base\n  name: b\n"
        )
        result = pytester.runpytest("--smoke-config", "smoke.yaml", "-p", "no:cacheprovider", "-v")
    finally:
        server.stop()
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*health?b? PASSED*"])


@pytest.mark.parametrize("name", ["smoke.json", "smoke.yaml"])
def test_a_byte_order_mark_is_accepted_alike_in_json_and_yaml(pytester, name):
    server = Recorder(lambda r: (200, [("Content-Type", "application/json")], b'{"status": "ok"}'))
    try:
        doc = {"base_url": server.url, "health_checks": [health("h", "/health")]}
        (pytester.path / name).write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
        result = pytester.runpytest("--smoke-config", name, "-p", "no:cacheprovider")
    finally:
        server.stop()
    assert result.ret == 0, result.stderr.str()


# -- the adversarial review's findings ----------------------------------------------------------------


TOKEN = "tok_9f8e7d6c5b4a3f2e1d0c9b8a"


def echo_server():
    def answer(request):
        if request.path.startswith("/esc"):
            return 200, [("Content-Type", "text/plain")], FORGED.encode() + b"\x07 \xe2\x80\xae evil"
        return 200, [("Content-Type", "application/json")], json.dumps({"headers": dict(request.headers)}).encode()

    return Recorder(answer)


def run_against_echo(pytester, write_config, monkeypatch, test_source, *args):
    """A custom test reading what a service echoes: the run's token (from ${API_TOKEN}), and control bytes."""
    monkeypatch.setenv("API_TOKEN", TOKEN)
    server = echo_server()
    try:
        write_config(
            {
                "base_url": server.url,
                "headers": {"Authorization": "Bearer ${API_TOKEN}"},
                "health_checks": [health("h", "/ok")],
            }
        )
        pytester.makepyfile(test_custom=textwrap.dedent(test_source))
        return run(pytester, *args)
    finally:
        server.stop()


def test_what_a_custom_test_warns_logs_and_records_is_redacted_and_escaped(pytester, write_config, monkeypatch):
    result = run_against_echo(
        pytester,
        write_config,
        monkeypatch,
        """
            import logging
            import warnings

            def test_echo(smoke_http, record_property):
                body = smoke_http.get("/esc").text
                echoed = smoke_http.get("/echo").json()["headers"]["Authorization"]
                warnings.warn(UserWarning("service said: " + body))
                warnings.warn(UserWarning("echoed auth: " + echoed))
                logging.getLogger("mine").warning("service said: %s", body)
                record_property("echo", echoed)
                record_property("banner", body)
        """,
        "-rA",
        "--log-cli-level=WARNING",
    )
    shown = every_output(pytester, result)
    assert TOKEN not in shown and TOKEN[-10:] not in shown
    assert "\x1b[2K" not in shown and "\x07" not in shown and "\u202e" not in shown
    result.stdout.fnmatch_lines(["*UserWarning: echoed auth: Bearer ***", "*service said: \\x1b[2K\\r*"])


def test_a_secrets_tail_at_the_start_of_pytests_diff_is_masked(pytester, write_config, monkeypatch):
    result = run_against_echo(
        pytester,
        write_config,
        monkeypatch,
        """
            def test_diff(smoke_http):
                auth = smoke_http.get("/echo").json()["headers"]["Authorization"]
                assert "x" * 50 + auth + "!" == "x" * 50 + auth + "?"
        """,
    )
    assert "identical leading characters" in result.stdout.str()
    assert TOKEN[-6:] not in every_output(pytester, result)


def test_an_email_address_variable_does_not_mask_its_domain_everywhere(pytester, write_config, monkeypatch):
    monkeypatch.setenv("LOGIN_EMAIL", "smoke-bot@shop-example.invalid")
    write_config(
        {
            "base_url": "http://shop-example.invalid:1",
            "critical_paths": [
                {
                    "name": "login",
                    "steps": [
                        {"name": "in", "method": "POST", "endpoint": "/login", "payload": {"email": "${LOGIN_EMAIL}"}}
                    ],
                }
            ],
        }
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(["*DNS lookup failed for shop-example.invalid*"])


def test_an_smtp_server_streaming_its_reply_forever_is_cut_at_the_cap():
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def flood():
        connection, _ = listener.accept()
        with connection:
            line = b"220-" + b"x" * 500 + b"\r\n"
            for _ in range(200_000):  # 100 MB at most, and the client stops long before
                if stop.is_set():
                    break
                try:
                    connection.sendall(line)
                except OSError:
                    break

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        channels = {
            "mail": {
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "starttls": False,
                "from": "smoke@example.invalid",
                "to": ["ops@example.invalid"],
            }
        }
        results = dispatch(_critical_document(), channels, ["mail"], Redactor())
    finally:
        stop.set()
        listener.close()
        thread.join(10)
    assert results[0]["status"] == "failed"
    assert "reply over 64 KiB: not read further" in results[0]["detail"]


def test_smoke_http_send_called_directly_is_bounded_too(pytester, write_config, fault_server):
    write_config({"base_url": fault_server.url, "health_checks": [health("h", "/badjson")]})
    pytester.makepyfile(
        test_custom=textwrap.dedent("""
        import requests

        def test_send(smoke_http):
            request = smoke_http.prepare_request(requests.Request("GET", smoke_http.base_url + "/gzip-bomb"))
            smoke_http.send(request)
    """)
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "-k", "test_send")
    result.stdout.fnmatch_lines(["*GET http://127.0.0.1:*/gzip-bomb: body over 1024 KiB after decompression*"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("x: " + "[" * 30000 + "]" * 30000 + "\n", "the document is nested too deeply"),
        ("headers:\n  ? 0x" + "f" * 5000 + "\n  : v\n", "the key a number of 20000 bits is not a string"),
    ],
)
def test_hostile_yaml_shapes_are_usage_errors_not_crashes(pytester, text, message):
    (pytester.path / "smoke.yaml").write_text("base_url: http://x\nhealth_checks: [{name: a, endpoint: /h}]\n" + text)
    assert message in config_error(pytester)
