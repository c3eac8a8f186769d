"""Output an operator can trust: no secret in any form, no injected bytes, no mangled words, no
config bomb. Each case runs against a real local server that does the hostile thing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_smoke.redact import Redactor

from helpers import health
from servers import LocalHTTPServer, free_port

API_KEY = "key-SECRET-7301-abcdef"
SID = "COOKIESECRET_q8w7e6r5t4y3u2i1"


def run(pytester, *args):
    return pytester.runpytest(
        "--smoke-config",
        "smoke.json",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--junitxml=junit.xml",
        "--smoke-report=report.json",
        "--smoke-markdown=report.md",
        *args,
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
                length = int(self.headers.get("Content-Length") or 0)
                self.request_body = self.rfile.read(length) if length else b""
                outer.seen.append(dict(self.headers))
                status, headers, body = answer(self)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

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
        write_config(
            {
                "base_url": first.url,
                "headers": {"X-Api-Key": "${API_KEY}", "Cookie": "sid=abc12345"},
                "health_checks": [health("basic", "/health")],
            }
        )
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
        write_config(
            {"base_url": server.url, "headers": {"Cookie": "sid=${SID}"}, "health_checks": [health("echo", "/health")]}
        )
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
        write_config(
            {"base_url": server.url, "health_checks": [health("signed", "/health?sig=s1gnature-abc123&page=2")]}
        )
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
    assert (
        "smoke.yaml: the document expands to more than 100000 values through YAML aliases: refusing to load it"
        in result.stderr.str()
    )


def test_an_internal_error_shows_no_environment_even_with_showlocals(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-Unrelated-Secret-77")
    monkeypatch.setenv("DEPLOY_TOKEN", "deploy-Unrelated-Token-88")
    pytester.makeconftest(
        """
        def broken(spec, ctx):
            raise RuntimeError("bug in a custom check type")

        def pytest_smoke_check_type(name):
            return broken if name == "broken" else None
        """
    )
    write_config({"base_url": demo.url, "dependency_checks": [{"name": "inventory", "type": "broken"}]})
    for flags in (["-vv", "-l"], ["-vv", "-l", "--full-trace"]):
        result = run(pytester, *flags)
        assert result.ret == 12
        everything = every_output(pytester, result)
        assert "aws-Unrelated-Secret-77" not in everything and "deploy-Unrelated-Token-88" not in everything


# -- found by an adversarial review --------------------------------------------------------------------

TOKEN_IN_OBJECT = "tok-ACCESS-5f1e9a7c3b"


def test_a_saved_object_under_a_secret_name_is_masked_inside(pytester, write_config):
    def answer(request):
        if request.path == "/login":
            return (
                200,
                [("Content-Type", "application/json")],
                json.dumps({"auth": {"access": TOKEN_IN_OBJECT}}).encode(),
            )
        return 500, [("Content-Type", "text/plain")], b"orders down"

    server = Recorder(answer)
    try:
        write_config(
            {
                "base_url": server.url,
                "critical_paths": [
                    {
                        "name": "order",
                        "steps": [
                            {
                                "method": "POST",
                                "endpoint": "/login",
                                "payload": {"user": "u"},
                                "save": {"credentials": "body.auth"},
                            },
                            {"method": "POST", "endpoint": "/orders", "payload": {"with": "{credentials}"}},
                        ],
                    }
                ],
            }
        )
        result = run(pytester, "-vv", "-l")
    finally:
        server.stop()
    assert result.ret == 1
    assert server.seen[1]  # the token was really sent on: only its display is masked
    result.stdout.fnmatch_lines(["*saved so far: credentials=****", "*reproduce: curl *--data-raw*"])
    assert TOKEN_IN_OBJECT not in every_output(pytester, result)


def test_a_secret_in_a_long_json_value_is_masked_before_the_cut(pytester, write_config, monkeypatch):
    monkeypatch.setenv("API_KEY", API_KEY)
    server = Recorder(
        lambda r: (
            200,
            [("Content-Type", "application/json")],
            json.dumps({"status": "x" * 70 + r.headers["X-Api-Key"]}).encode(),
        )
    )
    try:
        write_config(
            {
                "base_url": server.url,
                "headers": {"X-Api-Key": "${API_KEY}"},
                "health_checks": [health("echo", "/health", expect={"json": {"status": "ok"}})],
            }
        )
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(['*body.status is "xxx*..., expected "ok"*'])
    everything = every_output(pytester, result)
    assert API_KEY[:6] not in everything


ODD_SECRET = "p'a\"ss/wörd+1 x"


@pytest.mark.parametrize(
    "shown",
    [
        json.dumps(ODD_SECRET),  # a JSON string in a body
        repr(ODD_SECRET),  # an expectation message
        __import__("shlex").quote(ODD_SECRET),  # the curl line
        "p%27a%22ss%2fw%c3%b6rd%2b1%20x",  # lowercase URL encoding
        "Basic " + __import__("base64").b64encode(f"svc:{ODD_SECRET}".encode()).decode(),
        __import__("html").escape(ODD_SECRET),  # an HTML error page echoing the header
    ],
    ids=["json", "repr", "shell", "url-lowercase", "base64-basic", "html"],
)
def test_a_secret_is_masked_in_its_encoded_forms(shown):
    assert "ss/w" not in Redactor([ODD_SECRET]).text(shown).replace("%2f", "/")
    assert "***" in Redactor([ODD_SECRET]).text(shown)


@pytest.mark.parametrize(
    "text, masked",
    [
        ("/s?keyword=boots&country_code=DE&postcode=10115", "/s?keyword=boots&country_code=DE&postcode=10115"),
        ("/cb?jwt=eyJ.x.y&sessionid=abc&auth=q1", "/cb?jwt=***&sessionid=***&auth=***"),
        (
            "(see /s3?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=f00d)",
            "(see /s3?X-Amz-Credential=***&X-Amz-Signature=***)",
        ),
        ("reset password: connection refused", "reset password: connection refused"),
        ('{"password": ""}', '{"password": ""}'),
    ],
)
def test_credential_parameters_are_masked_and_words_are_not(text, masked):
    assert Redactor().text(text) == masked


def test_a_short_secret_is_masked_as_a_word_only():
    assert Redactor(["prod"]).text("production runs prod, prod-eu") == "production runs ***, ***-eu"


def test_custom_tests_cannot_print_a_secret_through_pytest(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.setenv("COLUMNS", "200")  # room for the short summary's message on every pytest version
    write_config(
        {"base_url": demo.url, "headers": {"X-Api-Key": "${API_KEY}"}, "health_checks": [health("basic", "/health")]}
    )
    pytester.makepyfile(
        """
        import logging, os, pytest

        KEY = os.environ["API_KEY"]

        @pytest.mark.smoke_optional
        def test_skips():
            pytest.skip(f"no tenant for {KEY}")

        @pytest.mark.smoke_optional
        @pytest.mark.xfail(reason="known")
        def test_xfails():
            pytest.xfail(f"quota for {KEY}")

        @pytest.mark.smoke_optional
        def test_logs_and_fails():
            logging.getLogger("app").warning("calling with %s", KEY)
            assert KEY == "expected", "the key " + KEY + " was refused"
        """
    )
    result = run(pytester, "-rA", "-vv", "--log-cli-level=INFO")
    assert result.ret == 0  # optional custom tests: warnings only
    # The short summary keeps its reason, masked.
    result.stdout.fnmatch_lines(["FAILED *test_logs_and_fails - AssertionError: the key *** was refused*"])
    assert API_KEY not in every_output(pytester, result)


def test_a_307_to_another_origin_does_not_carry_the_login_body_there(pytester, write_config):
    other = Recorder(lambda r: (200, [("Content-Type", "application/json")], b"{}"))
    elsewhere = other.url.replace("127.0.0.1", "localhost")
    first = Recorder(lambda r: (307, [("Location", elsewhere + "/login")], b""))
    try:
        write_config(
            {
                "base_url": first.url,
                "critical_paths": [
                    {
                        "name": "login",
                        "steps": [
                            {
                                "method": "POST",
                                "endpoint": "/login",
                                "payload": {"user": "u", "password": "hunter2-login"},
                            }
                        ],
                    }
                ],
            }
        )
        result = run(pytester)
    finally:
        first.stop()
        other.stop()
    assert other.seen == []
    assert result.ret == 12  # inconclusive: our refusal to follow, not the service's failure
    result.stdout.fnmatch_lines(["*answered 307 to another origin (http://localhost:*): not followed*"])


def test_a_lone_surrogate_from_the_service_is_data_with_xdist(pytester, write_config):
    server = Recorder(lambda r: (200, [("Content-Type", "application/json")], b'{"status": "\\ud800"}'))
    try:
        write_config(
            {"base_url": server.url, "health_checks": [health("odd", "/health", expect={"json": {"status": "ok"}})]}
        )
        result = run(pytester, "-p", "xdist", "-n", "1")
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(['*body.status is *ud800*, expected "ok"*'])


def test_a_webhook_answer_and_a_markdown_cell_cannot_drive_the_terminal(pytester, write_config, demo):
    hook = Recorder(
        lambda r: (200, [("Content-Type", "application/json")], json.dumps({"id": "\x1b[2J\x07INC-1"}).encode())
    )
    service = Recorder(lambda r: (503, [("Content-Type", "text/plain")], ANSI))
    try:
        write_config(
            {
                "base_url": service.url,
                "health_checks": [health("hostile", "/health")],
                "notifications": {"ops": {"type": "webhook", "url": hook.url + "/hook"}},
                "rollback_strategy": {"notify_channels": ["ops"]},
            }
        )
        result = run(pytester)
    finally:
        hook.stop()
        service.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["Notification sent: ops", "Incident ticket created: \\x1b[2J\\x07INC-1"])
    markdown = (pytester.path / "report.md").read_text(encoding="utf-8")
    assert "\x1b" not in result.stdout.str() and "\x1b" not in markdown and "\x07" not in markdown


def test_an_error_after_a_redirect_names_the_address_it_went_to(pytester, write_config):
    dead_port = free_port()  # nothing listens there
    server = Recorder(lambda r: (302, [("Location", f"http://127.0.0.1:{dead_port}/moved")], b""))
    try:
        write_config({"base_url": server.url, "health_checks": [health("moved", "/health")]})
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"*connection refused at 127.0.0.1:{dead_port}*"])


@pytest.mark.parametrize(
    "text, env, message",
    [
        (
            "base_url: http://x\nhealth_checks: [{name: a, endpoint: /h, timeout_seconds: " + "9" * 5000 + "}]\n",
            {},
            "invalid YAML: Exceeds the limit (4300 digits) for integer string conversion",
        ),
        (
            "base_url: http://x\nhealth_checks: []\nx: [" + ",".join("1" for _ in range(100_001)) + "]\n",
            {},
            "the document has more than 100000 values: refusing to load it",
        ),
        (
            "base_url: http://x\nhealth_checks:\n- {name: a, endpoint: /h}\nenvironments:\n"
            + "".join(f"  e{i}: {{}}\n" for i in range(101)),
            {},
            "environments: 101 environments: at most 100 are supported in one file",
        ),
        (
            "base_url: http://x\nhealth_checks:\n- name: a\n  endpoint: /h\n  expect:\n    json: [&n [&m ["
            + ", ".join(["'${BIG}'"] * 10)
            + "], *m, *m, *m, *m, *m, *m, *m, *m, *m], *n, *n, *n, *n, *n, *n, *n, *n, *n, *n]\n",
            {"BIG": "z" * 50_000},
            "interpolation expands the document beyond 1000000 characters: refusing it",
        ),
    ],
    ids=["huge-integer", "many-values-no-aliases", "many-environments", "interpolation-bomb"],
)
def test_config_bombs_are_usage_errors(pytester, text, env, message):
    (pytester.path / "smoke.yaml").write_text(text)
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    result = pytester.runpytest("--smoke-config", "smoke.yaml", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_huge_body_of_letters_is_excerpted_and_the_check_fails_cleanly(pytester, write_config):
    # A run of letters once made the URL-password rule quadratic: a 100 KB page outlived the
    # item's backstop. It must end as the service's plain failure with a short excerpt.
    server = Recorder(lambda r: (503, [("Content-Type", "text/plain")], b"a" * 200_000))
    try:
        write_config({"base_url": server.url, "health_checks": [health("letters", "/health", timeout_seconds=2)]})
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["response: 503, * ms: aaaa*...", "1. Health Check: letters: /health returned 503 (expected 200)"]
    )


def test_log_arguments_that_do_not_format_are_shown_redacted_not_raw(capsys):
    import logging

    from pytest_smoke.redact import RedactingLogRecords

    records = RedactingLogRecords(Redactor([API_KEY]))
    records.install()
    try:
        logger = logging.getLogger("smoke-test-odd-args")
        handler = logging.StreamHandler()
        logger.addHandler(handler)
        try:
            logger.warning("calling with %s %d", API_KEY)  # one argument short
        finally:
            logger.removeHandler(handler)
    finally:
        records.uninstall()
    err = capsys.readouterr().err
    assert "calling with %s %d [arguments that do not format: ('***',)]" in err
    assert API_KEY not in err and "Logging error" not in err


def test_a_report_read_back_from_disk_cannot_inject_markup_in_any_field(pytester, write_config, demo, kube):
    """``python -m pytest_smoke.fleet merge`` renders reports other processes wrote: every string of
    a report, not only the service's answers, must stay text in the Markdown (GitHub's renderer:
    markdown-it; no HTML, no link, no fence it can close)."""
    from markdown_it import MarkdownIt

    from pytest_smoke.report.markdown import render

    from helpers import smoke_doc

    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False))
    assert pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report", "r.json").ret == 1
    document = json.loads((pytester.path / "r.json").read_text())
    hostile = "x</td><img src=x onerror=alert(1)>[click](https://evil.example)```\n# heading\x1b[2J"
    enums = {"state", "status", "severity", "action", "event", "kind", "failure_kind"}

    def poison(value, key=""):
        if isinstance(value, dict):
            return {k: poison(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [poison(v, key) for v in value]
        if isinstance(value, str) and key not in enums and key != "at" and not key.endswith("_at"):
            return value + hostile
        return value

    markdown = render(poison(document))
    tokens = MarkdownIt("commonmark").parse(markdown)
    inline = [child for token in tokens for child in (token.children or [])]
    assert not [t for t in tokens + inline if t.type in ("html_block", "html_inline", "link_open", "image")]
    assert "\x1b" not in markdown
    fences = [t for t in tokens if t.type == "fence"]
    assert [t.info for t in fences] == ["bash", "mermaid"]  # the hostile command stayed inside its fence
    assert "# heading" not in [t.content for t in tokens if t.type == "inline" and t.map and t.level == 1]
