"""Output an operator can trust: no secret in any form, no injected bytes, no mangled words, no
config bomb. Each case runs against a real local server that does the hostile thing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import health
from pytest_smoke.redact import Redactor
from servers import LocalHTTPServer

API_KEY = "key-SECRET-7301-abcdef"
SID = "COOKIESECRET_q8w7e6r5t4y3u2i1"


def run(pytester, *args):
    return pytester.runpytest(
        "--smoke-config", "smoke.json", "-p", "no:cacheprovider", "-p", "no:randomly",
        "--junitxml=junit.xml", "--smoke-report=report.json", "--smoke-markdown=report.md", *args,
    )


def every_output(pytester, result):
    files = [(pytester.path / name).read_text(encoding="utf-8") for name in ("junit.xml", "report.json", "report.md")]
    return "\n".join([result.stdout.str(), result.stderr.str(), *files])


class Recorder:
    """A loopback server that records the headers it received and answers with ``answer``."""

    def __init__(self, answer):
        self.seen = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append(dict(self.headers))
                status, headers, body = answer(self)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = LocalHTTPServer(Handler)
        self.url = self.http.url

    def stop(self):
        self.http.stop()


def test_configured_headers_never_follow_a_redirect_to_another_origin(pytester, write_config, monkeypatch):
    monkeypatch.setenv("API_KEY", API_KEY)
    other = Recorder(lambda r: (200, [("Content-Type", "application/json")], b'{"status": "ok"}'))
    # The same loopback server under another name is another origin, as a browser sees it.
    elsewhere = other.url.replace("127.0.0.1", "localhost")
    first = Recorder(lambda r: (302, [("Location", elsewhere + "/landing")], b""))
    try:
        write_config({"base_url": first.url, "headers": {"X-Api-Key": "${API_KEY}", "Cookie": "sid=abc12345"},
                      "health_checks": [health("basic", "/health")]})
        result = run(pytester)
    finally:
        first.stop()
        other.stop()
    assert result.ret == 0
    assert first.seen[0]["X-Api-Key"] == API_KEY  # the origin it was configured for got it
    assert len(other.seen) == 1 and "X-Api-Key" not in other.seen[0] and "Cookie" not in other.seen[0]


def test_an_echoing_server_cannot_leak_a_secret_cut_in_half(pytester, write_config, monkeypatch):
    monkeypatch.setenv("SID", SID)

    def echo(request):
        # The headers echoed back, positioned so the cookie straddles the 300-character excerpt.
        body = ("x" * 280 + json.dumps({"Cookie": request.headers.get("Cookie")})).encode()
        return 503, [("Content-Type", "application/json")], body

    server = Recorder(echo)
    try:
        write_config({"base_url": server.url, "headers": {"Cookie": "sid=${SID}"},
                      "health_checks": [health("echo", "/health")]})
        result = run(pytester, "-vv", "-l")
    finally:
        server.stop()
    assert result.ret == 1
    everything = every_output(pytester, result)
    for prefix in (SID, SID[:12], SID[:6]):
        assert prefix not in everything


def test_a_secret_query_parameter_is_masked_everywhere(pytester, write_config):
    server = Recorder(lambda r: (503, [("Content-Type", "text/plain")], b"down"))
    try:
        write_config({"base_url": server.url, "health_checks": [health("signed", "/health?sig=s1gnature-abc123&page=2")]})
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    everything = every_output(pytester, result)
    assert "s1gnature-abc123" not in everything
    result.stdout.fnmatch_lines(["request: GET http://127.0.0.1:*/health?sig=***&page=2"])


@pytest.mark.parametrize(
    "message",
    [
        "/api/auth/token returned 404 (expected 200)",
        "GET /api/change-password: timed out after 5 s",
        "response: 401, 4005 ms: (empty body)",
        "step 2/3 (POST /api/token) returned 500 (expected any 2xx)",
        "Basic authentication is not enabled",
        "Database connection failed: password authentication failed for user app",
        "header Authorization is missing",
    ],
)
def test_real_messages_come_out_unmasked(message):
    assert Redactor().text(message) == message


@pytest.mark.parametrize(
    "text, masked",
    [
        ("Authorization: Bearer eyJhbGciOi.J9.sig-123", "Authorization: Bearer ***"),
        ('{"password": "hunter22"}', '{"password": "***"}'),
        ("postgresql://app:s3cret@db/app", "postgresql://app:***@db/app"),
        ("GET /cb?code=4/0AbcD&state=x", "GET /cb?code=***&state=x"),
    ],
)
def test_values_are_masked(text, masked):
    assert Redactor().text(text) == masked


ANSI = b"\x1b[1A\x1b[2K\x1b[32m\xe2\x9c\x93 Smoke tests passed\x1b[0m\x07"


@pytest.mark.parametrize(
    "body, content_type, shown",
    [
        (ANSI, "text/plain", "\\x1b[1A\\x1b[2K\\x1b[32m✓ Smoke tests passed\\x1b[0m\\x07"),
        (bytes(range(256)) * 40, "application/octet-stream", "(binary, 10240 bytes, application/octet-stream)"),
    ],
    ids=["ansi", "binary"],
)
def test_bytes_from_the_service_are_data(pytester, write_config, body, content_type, shown):
    server = Recorder(lambda r: (503, [("Content-Type", content_type)], body))
    try:
        write_config({"base_url": server.url, "health_checks": [health("hostile", "/health")]})
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    out = result.stdout.str()
    assert "\x1b[1A" not in out and "\x00" not in out and "\x07" not in out
    assert shown in out
    json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))  # valid JSON
    ET.parse(pytester.path / "junit.xml")  # valid XML


def test_a_yaml_alias_bomb_is_a_usage_error(pytester, write_config):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    write_config("\n".join(lines) + "\n", name="smoke.yaml")
    result = pytester.runpytest("--smoke-config", "smoke.yaml", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "smoke.yaml: the document expands to more than 100000 values (YAML aliases): refusing to load it" in result.stderr.str()


def test_an_internal_error_shows_no_environment_even_with_showlocals(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-Unrelated-Secret-77")
    monkeypatch.setenv("DEPLOY_TOKEN", "deploy-Unrelated-Token-88")
    pytester.makeconftest(
        """
        from pytest_smoke.checks import register_check_type

        def broken(spec, ctx):
            raise RuntimeError("bug in a custom check type")

        register_check_type("broken", broken)
        """
    )
    write_config({"base_url": demo.url, "dependency_checks": [{"name": "inventory", "type": "broken"}]})
    for flags in (["-vv", "-l"], ["-vv", "-l", "--full-trace"]):
        result = run(pytester, *flags)
        assert result.ret == 12
        everything = every_output(pytester, result)
        assert "aws-Unrelated-Secret-77" not in everything and "deploy-Unrelated-Token-88" not in everything
