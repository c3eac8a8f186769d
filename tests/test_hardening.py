"""The worst day of a deploy: network faults, TLS trouble, hostile bodies, bad config and a
secret in every place one can live. Every failure is clear, on time, and never leaks."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_smoke.checks import CheckContext, CheckFailed, run_check
from pytest_smoke.model import Check

from helpers import BAD_IMAGE, Receiver, assert_cut_short, health, run_in_background
from servers import free_port


def fails_on_time(spec, ctx, limit=None):
    started = time.monotonic()
    with pytest.raises(CheckFailed) as failure:
        run_check(Check.of("health", spec), ctx)
    elapsed = time.monotonic() - started
    assert_cut_short(elapsed, limit or spec.get("timeout_seconds", 5))
    reason = failure.value.reason
    assert "\n" not in reason and "Traceback" not in str(failure.value)
    return failure.value


# -- network faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expect, reason, kind",
    [
        ("/hang", None, "GET URL/hang: timed out after 2 s (no response)", "timeout"),
        ("/trickle", None, "GET URL/trickle: timed out after 2 s (200 received, body still arriving)", "timeout"),
        ("/trickle-headers", None, "GET URL/trickle-headers: timed out after 2 s (no response)", "timeout"),
        ("/reset", None, "connection reset by 127.0.0.1:PORT", "connection_reset"),
        (
            "/redirect-loop",
            None,
            "GET URL/redirect-loop: redirect loop: /redirect-loop → 302 → /redirect-loop (again)",
            "redirect_loop",
        ),
        (
            "/badjson",
            {"json": {"status": "ok"}},
            "/badjson: body is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 17 "
            "(char 16))",
            "expectation",
        ),
        (
            "/big",
            {"json": {"status": "ok"}},
            "/big: body is not valid JSON (body larger than 1024 KiB was not read in full)",
            "expectation",
        ),
        (
            "/gzip-bomb",
            {"json": {"status": "ok"}},
            "/gzip-bomb: body is not valid JSON (body larger than 1024 KiB was not read in full)",
            "expectation",
        ),
    ],
)
def test_network_faults_end_as_one_clear_line_on_time(fault_server, path, expect, reason, kind):
    spec = health("fault", path, timeout_seconds=2, **({"expect": expect} if expect else {}))
    failure = fails_on_time(spec, CheckContext(base_url=fault_server.url))
    expected = reason.replace("PORT", str(fault_server.port)).replace("URL", fault_server.url)
    assert failure.reason == expected
    assert failure.kind == kind


def test_connection_refused():
    port = free_port()
    failure = fails_on_time(
        health("down", "/health", timeout_seconds=2), CheckContext(base_url=f"http://127.0.0.1:{port}")
    )
    assert failure.reason == f"connection refused at 127.0.0.1:{port}"


def test_dns_name_that_does_not_resolve(monkeypatch):
    # The resolver is the system's; the fault is injected there so no query leaves the machine.
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "orders.prod.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    failure = fails_on_time(
        health("dns", "/health", timeout_seconds=2), CheckContext(base_url="http://orders.prod.invalid:8000")
    )
    assert failure.reason == "DNS lookup failed for orders.prod.invalid"
    assert failure.kind == "dns_failure"


def test_huge_and_compressed_bodies_keep_memory_flat(fault_server):
    tracemalloc.start()
    try:
        for path in ("/big", "/gzip-bomb"):
            result = run_check(
                Check.of("health", health("big", path, timeout_seconds=10)), CheckContext(base_url=fault_server.url)
            )
            assert result.facts["status"] == 200
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


# -- TLS -------------------------------------------------------------------------------------------


class TLSServer:
    def __init__(self, ca, *identities, not_after=None, self_signed_dir=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self_signed_dir is not None:
            # The CA's own certificate as the server's: a self-signed certificate.
            cert, key = self_signed_dir / "self.pem", self_signed_dir / "self.key"
            ca.cert_pem.write_to_path(str(cert))
            ca.private_key_pem.write_to_path(str(key))
            context.load_cert_chain(str(cert), str(key))
        else:
            issued = ca.issue_cert(*identities, not_after=not_after) if not_after else ca.issue_cert(*identities)
            issued.configure_cert(context)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def ca():
    import trustme

    return trustme.CA()


@pytest.fixture
def tls(ca):
    servers = []

    def start(*identities, not_after=None, self_signed_dir=None):
        server = TLSServer(ca, *identities, not_after=not_after, self_signed_dir=self_signed_dir)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_tls_with_the_right_ca_bundle_passes(tls, ca, tmp_path):
    server = tls("localhost")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    result = run_check(
        Check.of("health", health("tls", "/health")),
        CheckContext(base_url=f"https://localhost:{server.port}", verify=str(bundle)),
    )
    assert result.facts["status"] == 200


@pytest.mark.parametrize(
    "identity, not_after, trusted, fragment",
    [
        ("localhost", None, False, "certificate verify failed"),
        ("example.org", None, True, "Hostname mismatch"),
        ("localhost", datetime.datetime(2001, 1, 1), True, "certificate has expired"),
    ],
)
def test_tls_trouble_is_named(tls, ca, tmp_path, identity, not_after, trusted, fragment):
    server = tls(identity, not_after=not_after)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    ctx = CheckContext(base_url=f"https://localhost:{server.port}", verify=str(bundle) if trusted else True)
    failure = fails_on_time(health("tls", "/health", timeout_seconds=3), ctx)
    assert failure.reason.startswith(f"TLS error at localhost:{server.port}: ")
    assert fragment in failure.reason
    assert failure.kind == "tls_error"


def test_self_signed_certificate_is_named(tls, tmp_path):
    server = tls(self_signed_dir=tmp_path)
    failure = fails_on_time(
        health("tls", "/health", timeout_seconds=3), CheckContext(base_url=f"https://localhost:{server.port}")
    )
    assert failure.reason == f"TLS error at localhost:{server.port}: certificate verify failed: self-signed certificate"


def test_verify_tls_false_must_be_explicit_and_is_warned_about(pytester, write_config, tls):
    server = tls("localhost")
    write_config(
        {
            "base_url": f"https://localhost:{server.port}",
            "verify_tls": False,
            "health_checks": [health("tls", "/health")],
        }
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-report=report.json", "--smoke-markdown=report.md"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["smoke: WARNING: verify_tls is false; TLS certificates are not checked", "*Note: verify_tls is false*"]
    )
    assert "verify_tls is false" in json.loads((pytester.path / "report.json").read_text())["notes"][0]
    assert "verify_tls is false" in (pytester.path / "report.md").read_text()


# -- bad input -------------------------------------------------------------------------------------


def test_command_rollback_never_reaches_a_shell(tmp_path):
    from pytest_smoke.cluster.rollback import get_handler, target_from

    marker = tmp_path / "pwned"
    strategy = {
        "type": "command",
        "deployment": f"web; touch {marker}",
        "namespace": "$(touch x)",
        "command": ["echo", "{deployment}", "{namespace}"],
    }
    handler = get_handler("command")
    plan = handler.plan(target_from(strategy), strategy)
    assert plan.details["argv"] == ["echo", f"web; touch {marker}", "$(touch x)"]
    progress = []
    plan.target = None  # no cluster to wait for here
    handler.execute(plan, strategy, 5, progress.append)
    assert progress == [f"echo: web; touch {marker} $(touch x)"]
    assert not marker.exists() and not (tmp_path / "x").exists()


# -- rollback safety -------------------------------------------------------------------------------


def strategy(kube, **extra):
    return {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig), **extra}


def test_a_second_run_stands_down_while_a_rollback_holds_the_lease(kube):
    from pytest_smoke.cluster.kube import LEASE

    from helpers import roll_back

    holder = json.dumps({"holder": "ci-runner-7/4242/abcd", "expires": time.time() + 60})
    kube.deployments[("prod", "django")]["metadata"]["annotations"][LEASE] = holder
    result = roll_back("rollback", strategy(kube), {"rollback_timeout_seconds": 10}, confirm=None)
    assert result.status == "refused"  # exit 10: this run did not roll back, a human makes sure one did
    assert result.message.startswith(
        "ROLLBACK REFUSED: a rollback was due and did not happen: another smoke run (ci-runner-7/4242/abcd) "
        "holds the rollback lease on deployment/django -n prod"
    )
    assert kube.images("prod", "django") == {"django": BAD_IMAGE}


def test_an_expired_lease_is_taken_over_and_released_after(kube):
    from pytest_smoke.cluster.kube import LEASE

    from helpers import roll_back

    kube.deployments[("prod", "django")]["metadata"]["annotations"][LEASE] = json.dumps(
        {"holder": "gone", "expires": time.time() - 5}
    )
    result = roll_back("rollback", strategy(kube), {"rollback_timeout_seconds": 20}, confirm=None)
    assert result.status == "completed"
    assert LEASE not in kube.deployments[("prod", "django")]["metadata"]["annotations"]


@pytest.mark.parametrize(
    "setup, cause",
    [
        (lambda api: api.fail_patches.update({"template": 409}), "409 Conflict"),
        (lambda api: api.fail_patches.update({"template": 500}), "500 Internal Server Error"),
        (lambda api: api.deployments.pop(("prod", "django")), "404 Not Found"),
        (lambda api: setattr(api, "slow_seconds", 3), "the Kubernetes API at {url} did not answer within 2 s"),
    ],
)
@pytest.mark.parametrize("action", ["rollback", "confirm"])
def test_api_errors_give_a_clear_rollback_failed(kube, setup, cause, action):
    # The same outcome whether or not ops confirmation is configured: a human must act.
    from pytest_smoke.cluster.kube import Kube
    from pytest_smoke.model import Target

    from helpers import roll_back

    tested = Kube(Target.from_settings(strategy(kube))).state()  # as the checks started
    setup(kube)
    cause = cause.format(url=kube.url)
    started = time.monotonic()
    result = roll_back(
        action, strategy(kube), {"rollback_timeout_seconds": 2}, confirm=lambda plan: (True, "test"), tested=tested
    )
    assert result.status == "failed"
    assert result.message.startswith("ROLLBACK FAILED: alert ops team immediately (")
    assert cause in result.message
    assert "Traceback" not in result.message
    assert_cut_short(time.monotonic() - started, 2 * 3)  # plan, lease and patch each bounded by the timeout


def test_sigterm_during_the_checks_writes_reports_and_never_rolls_back(pytester, write_config, demo, kube):
    import signal

    demo.faults.update({"live-hang", "ready-503", "login-500"})
    write_config(
        {
            "base_url": demo.url,
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": False},
            "health_checks": [health("ready", "/health/ready"), health("live", "/health/live", timeout_seconds=20)],
            "rollback_strategy": strategy(kube),
        }
    )
    proc = run_in_background(
        pytester, "--smoke-config", "smoke.json", "--smoke-report=report.json", "--smoke-concurrency=1"
    )
    deadline = time.monotonic() + 15
    while ("GET", "/health/live") not in demo.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["decision"]["action"] == "not_evaluated"
    assert [p for p in kube.patches if p[0] == "deployments"] == []
    assert "Traceback" not in out


def template_patched(kube):
    return any(p[0] == "deployments" and "/spec/template" in json.dumps(p[2]) for p in kube.patches)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_during_the_rollback_reports_the_state_and_alerts(pytester, write_config, demo, kube, signame):
    import signal

    receiver = Receiver()
    try:
        kube.stuck = True
        demo.faults.update({"ready-503", "login-500"})
        write_config(
            {
                "base_url": demo.url,
                "auto_rollback": {"enabled": True, "requires_ops_confirmation": False, "rollback_timeout_seconds": 30},
                "health_checks": [health("ready", "/health/ready")],
                "critical_paths": [
                    {"name": "login", "steps": [{"method": "POST", "endpoint": "/api/auth/login", "payload": {}}]}
                ],
                "rollback_strategy": strategy(kube, notify_channels=["ops"]),
                "notifications": {"ops": {"type": "webhook", "url": receiver.url + "/alert"}},
            }
        )
        proc = run_in_background(pytester, "--smoke-config", "smoke.json", "--smoke-report=report.json")
        deadline = time.monotonic() + 20
        while not template_patched(kube) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(getattr(signal, signame))
        out, _ = proc.communicate(timeout=30)
    finally:
        receiver.stop()
    assert proc.returncode == 10, out
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["rollback"]["status"] == "failed"
    assert (
        f"interrupted by {signame} during the rollback: the rollout state is unknown; "
        "check deployment/django -n prod now" in report["rollback"]["message"]
    )
    assert [p["body"]["event"] for p in receiver.posts] == ["rollback_failed"]
    assert "Traceback" not in out


# -- certificate expiry ----------------------------------------------------------------------------


def test_a_certificate_that_expires_soon_fails_a_required_check_and_warns_an_optional_one(
    pytester, write_config, tls, ca, tmp_path
):
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=5, hours=1)
    short_lived, long_lived = tls("localhost", not_after=soon), tls("localhost")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    expect = {"certificate_expires_in_days": 14}
    write_config(
        {
            "ca_bundle": str(bundle),
            "health_checks": [
                health("renewed", f"https://localhost:{long_lived.port}/health", expect=expect),
                health("front", f"https://localhost:{short_lived.port}/health", expect=expect),
                health("admin", f"https://localhost:{short_lived.port}/health", expect=expect, required=False),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report", "report.json")
    assert result.ret == 1
    when = soon.strftime("%Y-%m-%d %H:%M UTC")
    result.stdout.fnmatch_lines(
        [
            f"*Health Check: front: certificate of localhost expires in 5.0 days, on {when} "
            "(subject O=trustme*, issuer O=trustme*): fewer than the 14 days required*"
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    by_name = {c["name"]: c for c in report["checks"]}
    assert (by_name["front"]["severity"], by_name["admin"]["severity"], by_name["renewed"]["severity"]) == (
        "critical",
        "warning",
        "passed",
    )
    assert by_name["front"]["failure_kind"] == "certificate_expiring"
    assert "valid for" in by_name["renewed"]["facts"]["summary"]


def test_a_certificate_expectation_over_plain_http_or_unverified_tls_is_a_config_error(pytester, write_config):
    write_config(
        {
            "base_url": "http://127.0.0.1:9",
            "health_checks": [health("h", "/health", expect={"certificate_expires_in_days": 7})],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["*health_checks?0?.expect.certificate_expires_in_days: needs an https:// URL; this check sends to http://*"]
    )
    write_config(
        {
            "base_url": "https://127.0.0.1:9",
            "verify_tls": False,
            "health_checks": [health("h", "/health", expect={"certificate_expires_in_days": 7})],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["*certificate_expires_in_days: reads the certificate of a verified TLS connection, and verify_tls is false*"]
    )
