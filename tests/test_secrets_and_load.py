"""No secret in any byte of any output; and many runs under random failures classify exactly
what failed, lose no report, and leave no thread or socket behind."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from helpers import AMQP_PASSWORD, PG_PASSWORD, REDIS_PASSWORD, SLACK_TOKEN, SMTP_PASSWORD, Receiver, health
from servers import LocalHTTPServer

AUTH_TOKEN = "Bearer-Secret-Token-31337"
LOGIN_PASSWORD = "Login-Secret-Pw-2718"


def every_output(pytester, result, receiver, inbox) -> str:
    parts = [result.stdout.str(), result.stderr.str()]
    for path in Path(pytester.path).rglob("*"):
        if path.is_file() and path.suffix in (".xml", ".json", ".md"):
            parts.append(path.read_text(errors="replace"))
    parts.append(json.dumps([p["body"] for p in receiver.posts]) + json.dumps([p["headers"] for p in receiver.posts]))
    parts.extend(inbox.messages)
    return "\n".join(parts)


@pytest.mark.parametrize("failing", [False, True])
def test_no_secret_reaches_any_output(
    pytester,
    write_config,
    demo,
    postgres_server,
    redis_auth_server,
    rabbitmq_server,
    smtp_server,
    monkeypatch,
    failing,  # noqa: F811
):
    import demo_service

    monkeypatch.setattr(demo_service, "DEMO_PASSWORD", LOGIN_PASSWORD)
    receiver = Receiver(reply={"ticket": "INC-1"})
    slack_url = f"{receiver.url}/services/{SLACK_TOKEN}"
    env = {
        "DB_DSN": postgres_server.url if not failing else postgres_server.url.replace(PG_PASSWORD, "Wrong-Db-Secret-1"),
        "CACHE_URL": redis_auth_server.url,
        "MQ_URL": rabbitmq_server.url
        if not failing
        else rabbitmq_server.url.replace(AMQP_PASSWORD, "Wrong-Mq-Secret-2"),
        "API_TOKEN": AUTH_TOKEN,
        "LOGIN_PASSWORD": LOGIN_PASSWORD,
        "SLACK_WEBHOOK_URL": slack_url,
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Unrelated to the config, so unknown to the redactor: it must simply never be printed.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-Unrelated-Secret-77")
    if failing:
        demo.faults.update({"ready-503", "profile-401"})
    write_config(
        {
            "base_url": demo.url,
            "headers": {"Authorization": "Bearer ${API_TOKEN}"},
            "health_checks": [health("basic-health", "/health"), health("readiness", "/health/ready")],
            "dependency_checks": [
                {"name": "database", "type": "postgres", "dsn": "${DB_DSN}"},
                {"name": "redis-cache", "type": "redis", "url": "${CACHE_URL}", "required": False},
                {"name": "queue", "type": "amqp", "url": "${MQ_URL}", "queue": "orders"},
            ],
            "critical_paths": [
                {
                    "name": "login-profile",
                    "steps": [
                        {
                            "method": "POST",
                            "endpoint": "/api/auth/login",
                            "payload": {"email": "test@example.com", "password": "${LOGIN_PASSWORD}"},
                            "save": {"token": "body.access_token", "sid": "cookies.session"},
                        },
                        {
                            "endpoint": "/api/user/profile",
                            "headers": {"Authorization": "Bearer {token}"},
                            "expect": {"json": {"email": "test@example.com"}},
                        },
                    ],
                }
            ],
            "rollback_strategy": {"notify_channels": ["slack-ops", "email-on-call"]},
            "notifications": {
                "slack-ops": {
                    "type": "slack",
                    "webhook_url": "${SLACK_WEBHOOK_URL}",
                    "notify_on": ["critical", "passed", "warning"],
                },
                "email-on-call": {
                    "type": "email",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp_server.port,
                    "starttls": False,
                    "username": "smoke",
                    "password": "${SMTP_PASSWORD}",
                    "from": "smoke@example.com",
                    "to": ["oncall@example.com"],
                    "notify_on": ["critical", "passed", "warning"],
                },
            },
        }
    )
    try:
        result = pytester.runpytest(
            "--smoke-config",
            "smoke.json",
            "-vv",
            "-l",
            "--log-cli-level=DEBUG",
            "-rA",
            "-n",
            "2",
            "--junitxml=pytest.xml",
            "--smoke-junit=smoke.xml",
            "--smoke-report=report.json",
            "--smoke-markdown=report.md",
        )
    finally:
        receiver.stop()
    assert result.ret == (1 if failing else 0), result.stdout.str()[-3000:]
    assert len(receiver.posts) == 1 and len(smtp_server.messages) == 1  # the notifications really went out
    saved_tokens = list(demo.tokens) + list(demo.sessions)
    assert saved_tokens  # a token and a cookie were really issued and saved
    everything = every_output(pytester, result, receiver, smtp_server)
    secrets = [
        PG_PASSWORD,
        REDIS_PASSWORD,
        AMQP_PASSWORD,
        AUTH_TOKEN,
        LOGIN_PASSWORD,
        SLACK_TOKEN,
        SMTP_PASSWORD,
        "Wrong-Db-Secret-1",
        "Wrong-Mq-Secret-2",
        "aws-Unrelated-Secret-77",
        *saved_tokens,
    ]
    leaked = [s for s in secrets if s in everything]
    assert leaked == []


class ChaosServer:
    """Fails each request with 503 at random (20 %); remembers which paths it failed."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.failed: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    fail = outer.random.random() < 0.2
                    if fail:
                        outer.failed.add(self.path)
                body = b'{"status": "ok"}'
                self.send_response(503 if fail else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = LocalHTTPServer(Handler)
        self.url = self.http.url

    def stop(self):
        self.http.stop()


@pytest.mark.slow
def test_load_classifies_exactly_the_real_failures_every_time(pytester, write_config, request):
    checks = [health(f"c{i:03d}", f"/c/{i}", required=i % 2 == 0) for i in range(200)]
    write_config({"base_url": "${CHAOS_URL}", "health_checks": checks})
    pytester.makeconftest(
        """
        import threading
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(config):
            left = [t.name for t in threading.enumerate() if t.name.startswith("smoke-check")]
            print("SMOKE-THREADS-LEFT", left)
        """
    )
    for run in range(request.config.getoption("load_runs")):  # each run its own seeded chaos
        chaos = ChaosServer(seed=run)
        try:
            import os

            os.environ["CHAOS_URL"] = chaos.url
            # A process of its own: the threads it leaves are its own, not an earlier test's.
            result = pytester.runpytest_subprocess(
                "--smoke-config",
                "smoke.json",
                "--smoke-concurrency",
                "50",
                "--smoke-report",
                f"report-{run}.json",
                "-W",
                "error::ResourceWarning",
                "-W",
                "error::pytest.PytestUnraisableExceptionWarning",
                "-s",
                "-q",
            )
        finally:
            chaos.stop()
            os.environ.pop("CHAOS_URL", None)
        report = json.loads((pytester.path / f"report-{run}.json").read_text())
        failed = {c["name"] for c in report["checks"] if c["status"] == "failed"}
        expected = {f"c{int(path.rsplit('/', 1)[1]):03d}" for path in chaos.failed}
        assert failed == expected, f"run {run}"
        assert len(report["checks"]) == 200
        critical = {c["name"] for c in report["checks"] if c["severity"] == "critical"}
        assert critical == {name for name in expected if int(name[1:]) % 2 == 0}
        assert result.ret == (1 if critical else 0)
        result.stdout.fnmatch_lines(["SMOKE-THREADS-LEFT []"])
        output = [
            line for line in result.outlines + result.errlines if not line.startswith("Re-run: ")
        ]  # the re-run line repeats -W
        assert not [line for line in output if "ResourceWarning" in line]
