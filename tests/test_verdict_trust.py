"""The verdict is never wrong in silence: no green gate over a required check that never ran, no
rollback of a healthy deploy because of the runner's own problem. One test per case, each
asserting the exit code, the verdict headline and the reason line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_smoke.cluster.kube import VERIFIED

import servers
from helpers import deployment_patches, health, smoke_doc
from servers import LocalHTTPServer

INCONCLUSIVE = "? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified"
EXIT_INCONCLUSIVE = 12


def verified_revisions(kube):
    return [
        rs for rs in kube.owned_replicasets("prod", "django") if (rs["metadata"].get("annotations") or {}).get(VERIFIED)
    ]


def run(pytester, *args):
    return pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "-p", "no:randomly", *args)


# -- checked before the first request ---------------------------------------------------------------


def test_a_base_url_without_a_scheme_is_a_usage_error_not_a_rollback(pytester, write_config, demo, kube):
    doc = smoke_doc(demo, kube, confirm=False)
    doc["base_url"] = demo.url.replace("http://", "")  # 127.0.0.1:PORT
    write_config(doc)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: smoke config error: smoke.json:*: base_url: base URL has no scheme "
            "(expected http://HOST or https://HOST)"
        ]
    )
    assert demo.requests == [] and deployment_patches(kube) == []


def test_a_header_value_requests_refuses_is_a_usage_error_naming_its_path(
    pytester, write_config, demo, kube, monkeypatch
):
    monkeypatch.setenv("API_TOKEN", "abc\nX-Injected: 1")
    doc = smoke_doc(demo, kube, confirm=False)
    doc["health_checks"][0]["headers"] = {"X-Api-Token": "${API_TOKEN}"}
    doc["health_checks"][1]["headers"] = {"X-Api-Token": "${API_TOKEN}"}
    write_config(doc)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "health_checks[0].headers.X-Api-Token: header value cannot be sent "
        "(it starts with whitespace or contains a line break)" in result.stderr.str()
    )
    assert "X-Injected" not in result.stderr.str()  # the (secret) value is never shown
    assert demo.requests == [] and deployment_patches(kube) == []


@pytest.mark.parametrize(
    "extra, location",
    [
        (
            {"rollback_strategy": {"type": "command", "command": ["no-such-helm-binary", "rollback"]}},
            "rollback_strategy.command[0]",
        ),
        ({"rollback_strategy": {"type": "argo-magic", "deployment": "web"}}, "rollback_strategy.type"),
        (
            {"rollback_strategy": {"deployment": "web", "kubeconfig": "/nonexistent/kubeconfig"}},
            "rollback_strategy.kubeconfig",
        ),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
    ],
)
def test_what_the_rollback_and_tls_need_is_checked_before_any_request(pytester, write_config, demo, extra, location):
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")], **extra})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: smoke config error: smoke.json: {location}: " in result.stderr.str()
    assert demo.requests == []


@pytest.fixture(scope="session")
def bare_venv(tmp_path_factory):
    """A venv with the plugin but none of the client libraries (a broken or minimal install)."""
    from pathlib import Path

    from conftest import built_once

    root = Path(__file__).resolve().parents[1]

    def build(venv):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(pip + ["pytest", "pytest-timeout", "requests", "pyyaml", "jsonschema"], check=True)
        subprocess.run(pip + ["--no-deps", str(root)], check=True, cwd=venv.parent)

    return str(built_once(tmp_path_factory, "bare-venv", build) / "bin" / "python")


@pytest.mark.child_plugins("*")  # the bare venv's own plugins: it has no xdist
@pytest.mark.parametrize(
    "doc_extra, args, message",
    [
        (
            {"dependency_checks": [{"name": "db", "type": "postgres", "dsn": "postgresql://u@127.0.0.1:1/db"}]},
            [],
            "dependency_checks[0].type: dependency type 'postgres' needs the Python package 'psycopg', "
            "which cannot be imported: pip install 'psycopg[binary]'",
        ),
        (
            {"dependency_checks": [{"name": "queue", "type": "amqp", "url": "amqp://127.0.0.1:1/"}]},
            [],
            "dependency_checks[0].type: dependency type 'amqp' needs the Python package 'pika', "
            "which cannot be imported: pip install 'pytest-deploy-smoke[amqp]'",
        ),
        (
            {"rollback_strategy": {"deployment": "web"}},
            [],
            "rollback_strategy.deployment: a Kubernetes rollback needs the Python package 'kubernetes'*",
        ),
        (
            {},
            ["--smoke-wait-rollout", "deployment/web"],
            "--smoke-wait-rollout: waiting for the rollout needs the Python package 'kubernetes'*",
        ),
        ({}, ["--smoke-junit", "junit.xml"], "--smoke-junit: --smoke-junit needs the Python package 'junit_xml'*"),
        (
            {"dependency_checks": [{"name": "api", "type": "grpc", "host": "127.0.0.1", "port": 1}]},
            [],
            "dependency_checks[0].type: dependency type 'grpc' needs the Python package "
            "'grpc_health.v1.health_pb2_grpc'*",
        ),
        (
            {},
            ["--smoke-pushgateway", "http://127.0.0.1:1"],
            "--smoke-pushgateway: metrics needs the Python package 'prometheus_client'*",
        ),
        (
            {"monitoring": {"metrics_file": "m.prom"}},
            [],
            "monitoring.metrics_file: metrics needs the Python package 'prometheus_client'*",
        ),
    ],
)
def test_a_missing_library_is_a_usage_error_naming_the_package(bare_venv, tmp_path, demo, doc_extra, args, message):
    doc = {"base_url": demo.url, "health_checks": [health("basic", "/health")], **doc_extra}
    (tmp_path / "smoke.json").write_text(json.dumps(doc))
    result = subprocess.run(
        [bare_venv, "-m", "pytest", "--smoke-config", "smoke.json", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    stderr = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(stderr) == 1 and stderr[0].startswith(f"ERROR: smoke config error: smoke.json: {message.rstrip('*')}")
    assert demo.requests == []  # nothing was sent


# -- not evaluated: the runner's problem, never the service's ---------------------------------------


CUSTOM_TYPES = """
import pytest

def broken(spec, ctx):
    raise RuntimeError("custom type forgot its client")

def exits(spec, ctx):
    raise SystemExit(3)

def pytest_smoke_check_type(name):
    return {"broken": broken, "exits": exits}.get(name)
"""


@pytest.mark.parametrize(
    "kind, reason", [("broken", "RuntimeError: custom type forgot its client"), ("exits", "SystemExit: 3")]
)
def test_an_unexpected_exception_is_inconclusive_never_a_warning_never_verified(
    pytester, write_config, demo, kube, kind, reason
):
    pytester.makeconftest(CUSTOM_TYPES)
    doc = smoke_doc(demo, kube, confirm=False)
    doc["dependency_checks"] = [{"name": "inventory", "type": kind}]
    write_config(doc)
    result = run(pytester)
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines(
        [
            INCONCLUSIVE,
            f"1. Dependency: inventory: not evaluated: {reason} (a problem of the runner, not of the service)",
        ]
    )
    out = result.stdout.str()
    assert "def smoke_check" not in out and "Traceback" not in out  # the reason, never a source line
    assert deployment_patches(kube) == [] and verified_revisions(kube) == []


def test_full_trace_shows_the_internal_traceback_when_asked(pytester, write_config, demo):
    pytester.makeconftest(CUSTOM_TYPES)
    write_config({"base_url": demo.url, "dependency_checks": [{"name": "inventory", "type": "broken"}]})
    assert "custom type forgot its client" in run(pytester).stdout.str()
    assert 'raise RuntimeError("custom type forgot its client")' not in run(pytester).stdout.str()
    assert 'raise RuntimeError("custom type forgot its client")' in run(pytester, "--full-trace").stdout.str()


class DeepJSON(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"[" * 200_000 + b"]" * 200_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_body_nested_too_deeply_is_the_services_failure_never_the_runners(pytester, write_config, kube):
    # Issue 29: what the peer sent and no parser can read is its failure, with a bound on depth.
    server = LocalHTTPServer(DeepJSON)
    try:
        write_config(
            {
                "base_url": server.url,
                "health_checks": [health("deep", "/", expect={"json": {"status": "ok"}})],
                "rollback_strategy": {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)},
            }
        )
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["1. Health Check: deep: /: body is not valid JSON (nested too deeply to read)*"])
    assert verified_revisions(kube) == []


# -- cut off: -x, the budget, a crash ----------------------------------------------------------------


def test_maxfail_cutting_off_a_required_check_is_inconclusive(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [
                health("optional-live", "/missing", required=False),
                health("readiness", "/health/ready"),
            ],
        }
    )
    result = run(pytester, "-x")
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines(
        [
            INCONCLUSIVE,
            "1. Health Check: readiness: never reported: the run stopped before it (-x, --maxfail, a session timeout)*",
        ]
    )


def test_a_session_timeout_cutting_off_required_checks_is_inconclusive(pytester, write_config, demo):
    pytest_timeout = pytest.importorskip("pytest_timeout")
    if not hasattr(pytest_timeout, "SESSION_TIMEOUT_KEY"):
        pytest.skip("--session-timeout needs pytest-timeout 2.3")
    # One 1.5 s answer at a time: the session timeout stops the run after the first item.
    write_config(
        {
            "base_url": demo.url,
            "max_concurrency_per_host": 1,
            "health_checks": [health(f"slow-{i}", f"/slow?ms=1500&i={i}", timeout_seconds=5) for i in range(3)],
        }
    )
    result = run(pytester, "--session-timeout", "1")
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines(
        [INCONCLUSIVE, "*slow-2: never reported: the run stopped before it (-x, --maxfail, a session timeout)*"]
    )


def test_a_crashed_worker_on_a_required_custom_test_is_inconclusive(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    pytester.makepyfile(
        test_payments="""
        import os
        import pytest

        @pytest.mark.smoke_required
        def test_payments_work():
            os._exit(1)
        """
    )
    result = run(pytester, "-n", "2")
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines([INCONCLUSIVE, "1. Smoke Test: test_payments_work: not evaluated: its worker crashed*"])


def test_the_budget_skipping_a_required_custom_test_is_inconclusive(pytester, write_config, demo):
    demo.faults.add("live-hang")
    write_config(
        {
            "base_url": demo.url,
            "timeout_seconds": 2,
            "health_checks": [health("live", "/health/live", required=False, timeout_seconds=10)],
        }
    )
    pytester.makepyfile(
        test_payments="""
        import pytest

        @pytest.mark.smoke_required
        def test_payments_work():
            pass
        """
    )
    result = run(pytester, "--smoke-concurrency", "1")
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines(
        [INCONCLUSIVE, "1. Smoke Test: test_payments_work: not started: the run budget of 2 s is exhausted"]
    )
    assert "Smoke tests passed" not in result.stdout.str()


# -- partial: the user left required checks out -----------------------------------------------------


def test_deselecting_every_required_check_is_partial_and_never_verified(pytester, write_config, demo, kube):
    write_config(smoke_doc(demo, kube))
    result = run(pytester, "-m", "smoke_optional")
    assert result.ret == 0  # follows what ran: the optional check passed
    result.stdout.fnmatch_lines(
        [
            "◐ PARTIAL: required checks not selected (basic-health, readiness, user-login) - deployment NOT verified",
            "- not selected: deselected (-k, -m or --deselect)",
            "- Health check: OK (liveness); not run: basic-health, readiness",
            "- Critical paths: not selected (user-login)",
        ]
    )
    out = result.stdout.str()
    assert "Deployment stable" not in out and "Smoke tests passed" not in out, out
    assert verified_revisions(kube) == []


def test_enabled_false_with_an_unrelated_test_is_partial(pytester, write_config, demo):
    write_config({"enabled": False, "base_url": demo.url, "health_checks": [health("basic", "/health")]})
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    result = run(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "◐ PARTIAL: required checks not selected (basic) - deployment NOT verified",
            "- not selected: enabled: false in smoke.json",
        ]
    )
    assert "all health checks OK" not in result.stdout.str()


def test_a_complete_green_run_marks_the_revision_verified_and_a_dry_run_does_not(pytester, write_config, demo, kube):
    write_config(smoke_doc(demo, kube))
    assert run(pytester, "--smoke-no-rollback").ret == 0
    assert verified_revisions(kube) == []
    result = run(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["✓ Smoke tests passed (all health checks OK)", "Note: marked revision 2 of * as verified"]
    )
    assert len(verified_revisions(kube)) == 1


# -- reruns: a pass after a rerun is flaky, with and without -n -------------------------------------


@pytest.mark.child_plugins("rerunfailures")
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_pass_on_a_rerunfailures_rerun_is_flaky_with_and_without_xdist(
    pytester, write_config, demo, xdist
):  # pytest 8.2+
    write_config({"base_url": demo.url, "health_checks": [health("warming", f"/flaky?key=rerun{len(xdist)}&fail=1")]})
    result = run(pytester, "--reruns", "2", *xdist)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "⚠ WARNING: Non-critical test failed (deployment continues)",
            "- Health Check warming: flaky: passed on rerun 1 (pytest-rerunfailures); first failure: "
            "/flaky* returned 503 (expected 200) (non-critical)",
        ]
    )
    # A rerun sends the request again: two requests, not one result read twice.
    assert sum(1 for _, path in demo.requests if path == "/flaky") == 2


# -- our load is not the service's failure ----------------------------------------------------------


SLOW_APP = """
import time

def app(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    time.sleep(int(query[3:]) / 1000 if query.startswith("ms=") else 0.3)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
    return [b'{"status":"ok"}']
"""


@pytest.fixture
def two_worker_app(tmp_path):
    """A real gunicorn with two sync workers: each request takes 0.3 s of a worker's time."""
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    port = servers.free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "slow_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        servers.wait_for_port(port, 20, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def slow_checks(n):
    return [health(f"c{i}", f"/c{i}", timeout_seconds=1.5) for i in range(n)]


def test_the_default_concurrency_does_not_time_out_a_two_worker_app(pytester, write_config, two_worker_app):
    write_config({"base_url": two_worker_app, "health_checks": slow_checks(12)})
    result = run(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["✓ Smoke tests passed (all health checks OK)"])


def test_requests_we_abandoned_do_not_fail_the_checks_queued_behind_them(pytester, write_config, two_worker_app):
    # Two optional reports with a 0.5 s budget take 2 s of both workers each: the requests we stop
    # waiting for are still served, and their retries more so. The required checks queued behind
    # that work of ours must not fail for it (before: 2 of 10 failed, a critical verdict).
    reports = [health(f"report{i}", f"/report{i}?ms=2000", timeout_seconds=0.5, required=False) for i in range(2)]
    quick = [health(f"ok{i}", f"/ok{i}?ms=100", timeout_seconds=1) for i in range(10)]
    write_config({"base_url": two_worker_app, "health_checks": reports + quick})
    result = run(pytester, "--smoke-report", "report.json")
    report = json.loads((pytester.path / "report.json").read_text())
    outcomes = {check["name"]: check["status"] for check in report["checks"]}
    assert [outcomes[f"ok{i}"] for i in range(10)] == ["passed"] * 10, outcomes
    assert outcomes["report0"] != "passed" and outcomes["report1"] != "passed"
    assert result.ret == 0
    result.stdout.fnmatch_lines(["⚠ WARNING: Non-critical test failed (deployment continues)"])


def test_a_crowded_timeout_is_retried_alone_before_it_counts(pytester, write_config, two_worker_app):
    # 12 at once against 2 workers: the last ones queue past their 1.5 s, through our own doing.
    write_config(
        {
            "base_url": two_worker_app,
            "health_checks": slow_checks(12),
            "max_concurrency": 12,
            "max_concurrency_per_host": 12,
        }
    )
    result = run(pytester, "--smoke-report", "report.json")
    assert result.ret == 0
    # A check that timed out among more than the host had yet answered in time at once passes
    # quietly (the note counts it); one sent among fewer, near that edge, is a warning naming both
    # explanations. Either way it passed alone, and nothing is critical. Which of the two a check
    # gets depends on when the host answered the others: the note or the warning says it.
    out = result.stdout.str()
    quiet = re.search(
        r"Note: checks in flight to 127\.0\.0\.1:\d+: 12 at once \(max_concurrency_per_host\)"
        r".*passed when retried alone",
        out,
    )
    assert quiet or re.search(
        r"- Health Check c\d+: timed out while \d+ other requests .* then passed when retried alone", out
    ), out
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["verdict"]["critical"] == 0 and report["verdict"]["passed"] + report["verdict"]["warnings"] == 12


# -- root cause first: a dependency outage --------------------------------------------------------


def outage_doc(demo, kube, **dependency):
    doc = smoke_doc(demo, kube, confirm=True)
    doc["base_url"] = demo.url
    doc["dependency_checks"] = [
        {
            "name": "database",
            "type": "postgres",
            "dsn": f"postgresql://app@127.0.0.1:{servers.free_port()}/app",
            **dependency,
        }
    ]
    return doc


def test_failures_a_dependency_explains_count_once_and_it_is_listed_first(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "login-500"})
    write_config(outage_doc(demo, kube))
    result = run(pytester)
    # Three critical failures, but they trace to one dependency: one counts, so ops confirm.
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - Rollback awaiting ops confirmation",
            "CRITICAL FAILURES:",
            "1. Dependency: database: Database connection failed*",
            "2. Health Check: readiness: /health/ready returned 503 (expected 200); failing: database: "
            "connection failed",
            "Likely cause: dependency database failed (counts with it toward a rollback)",
            "3. Critical Path: user-login: *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "smoke: 1 critical failure; 2 other failure(s) attributed to database count with it: "
            "rollback needs ops confirmation*"
        ]
    )
    assert deployment_patches(kube) == []


def test_rollback_false_alerts_but_never_rolls_back(pytester, write_config, demo, kube):
    write_config(outage_doc(demo, kube, rollback=False))
    result = run(pytester, "--smoke-confirm-rollback")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - No automatic rollback "
            "(rolling back does not fix database (rollback: false))",
            "1. Dependency: database: Database connection failed*",
            "Rollback: false for this check: it alerts, but rolling back does not fix it",
        ]
    )
    assert deployment_patches(kube) == []


# -- every exit code a user can meet ----------------------------------------------------------------


def test_exit_3_a_decision_hook_that_raises_ends_without_a_verdict_or_rollback(pytester, write_config, demo, kube):
    demo.faults.add("ready-503")
    pytester.makeconftest(
        """
        def pytest_smoke_decision(config, verdict, decision):
            raise RuntimeError("policy service unreachable")
        """
    )
    write_config(smoke_doc(demo, kube, confirm=False))
    result = run(pytester, "--smoke-confirm-rollback")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        ["smoke: no verdict: internal error while deciding (RuntimeError: policy service unreachable): no rollback"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert deployment_patches(kube) == []


def test_exit_5_when_nothing_is_selected(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    result = run(pytester, "-k", "nothing-matches")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["smoke: no verdict: no checks ran: no verdict, no rollback"])


# -- found by an adversarial review -----------------------------------------------------------------


def test_a_required_marker_added_by_a_conftest_counts(pytester, write_config, demo, kube):
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name.startswith("test_critical_"):
                    item.add_marker(pytest.mark.smoke_required)
        """
    )
    pytester.makepyfile(test_shop='def test_critical_checkout():\n    assert False, "checkout returned 500"\n')
    write_config(smoke_doc(demo, kube, confirm=False))
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - Rollback completed",
            "1. Smoke Test: test_critical_checkout: *checkout returned 500*",
        ]
    )


def test_a_bug_in_a_required_custom_test_is_not_a_verdict_on_the_service(
    pytester, write_config, demo, kube, monkeypatch
):
    monkeypatch.delenv("API_TOKEN", raising=False)
    pytester.makepyfile(
        test_profile="""
        import os
        import pytest

        @pytest.mark.smoke_required
        def test_profile():
            token = os.environ["API_TOKEN"]
        """
    )
    write_config(smoke_doc(demo, kube, confirm=False))
    result = run(pytester)
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines(
        [
            INCONCLUSIVE,
            "1. Smoke Test: test_profile: not evaluated: KeyError: 'API_TOKEN' (an error in the test code, "
            "not a verdict on the service)",
        ]
    )
    assert deployment_patches(kube) == [] and verified_revisions(kube) == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_deselecting_a_required_custom_test_is_partial(pytester, write_config, demo, kube, xdist):
    pytester.makepyfile(
        test_login="""
        import pytest

        @pytest.mark.smoke_required
        def test_login_works():
            pass
        """
    )
    write_config(smoke_doc(demo, kube))
    result = run(pytester, "-k", "not login_works", *xdist)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["◐ PARTIAL: required checks not selected (test_login_works) - deployment NOT verified"]
    )
    assert verified_revisions(kube) == []


def test_a_worker_crash_in_setup_of_a_required_custom_test_is_inconclusive(pytester, write_config, demo, kube):
    pytester.makepyfile(
        test_payments="""
        import os
        import pytest

        @pytest.fixture
        def crash():
            os._exit(3)

        @pytest.mark.smoke_required
        def test_payments_work(crash):
            pass
        """
    )
    write_config(smoke_doc(demo, kube))
    result = run(pytester, "-n", "2")
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines([INCONCLUSIVE, "*test_payments_work*"])
    assert verified_revisions(kube) == []


@pytest.mark.parametrize("first_required, code", [(True, 1), (False, EXIT_INCONCLUSIVE)])
def test_maxfail_under_xdist_still_gives_a_verdict(pytester, write_config, demo, first_required, code):
    demo.faults.add("ready-503")
    checks = [health("ready", "/health/ready", required=first_required)] + [
        health(f"slow{i}", "/slow?ms=400") for i in range(6)
    ]
    write_config({"base_url": demo.url, "health_checks": checks})
    result = run(pytester, "-x", "-n", "2")
    assert result.ret == code
    assert "no verdict" not in result.stdout.str()


def test_a_skip_mark_on_a_generated_check_is_partial_not_an_internal_error(pytester, write_config, demo):
    demo.faults.add("ready-503")
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if "basic" in item.name:
                    item.add_marker(pytest.mark.skip(reason="known outage of /health"))
        """
    )
    write_config(
        {"base_url": demo.url, "health_checks": [health("basic", "/health"), health("ready", "/health/ready")]}
    )
    result = run(pytester)
    assert result.ret == 1  # the real 503 still counts
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed*",
            "1. Health Check: ready: /health/ready returned 503 (expected 200); failing: database: connection failed",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


class RedirectToFtp(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", "ftp://files.example.com/health")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_to_an_unusable_url_is_the_services_failure(pytester, write_config):
    server = LocalHTTPServer(RedirectToFtp)
    try:
        write_config({"base_url": server.url, "health_checks": [health("basic", "/health")]})
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["1. Health Check: basic: GET http://127.0.0.1:*/health: redirected to a URL that cannot be followed*"]
    )


def test_a_hung_host_cut_by_the_budget_during_a_retry_alone_is_still_critical(pytester, write_config, demo):
    demo.faults.add("live-hang")
    write_config(
        {
            "base_url": demo.url,
            "timeout_seconds": 6,
            "health_checks": [health(f"live{i}", f"/health/live?i={i}", timeout_seconds=4) for i in range(2)],
        }
    )
    result = run(pytester)
    # Each check had its full 4 s and timed out: the service's fault, whatever the retry alone did.
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed*",
            "1. Health Check: live0: GET http://127.0.0.1:*/health/live?i=0: timed out after 4 s*",
        ]
    )


def test_a_required_test_skipped_at_run_time_is_inconclusive_not_unselected(pytester, write_config, demo):
    pytester.makepyfile(
        test_pay="""
        import pytest

        @pytest.mark.smoke_required
        def test_payments():
            pytest.skip("payments provider sandbox down")
        """
    )
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    result = run(pytester)
    assert result.ret == EXIT_INCONCLUSIVE
    result.stdout.fnmatch_lines(
        [INCONCLUSIVE, "1. Smoke Test: test_payments: skipped at run time: payments provider sandbox down*"]
    )
    only = run(pytester, "-k", "payments")
    assert only.ret == EXIT_INCONCLUSIVE  # nothing else ran: still no green


@pytest.mark.parametrize("base_url", ["http://a..b", "http://" + "x" * 64 + ".example.com", "https://127.0.0.1:0"])
def test_urls_that_cannot_be_reached_are_usage_errors(pytester, write_config, base_url):
    write_config({"base_url": base_url, "health_checks": [health("basic", "/health")]})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "base_url: base URL has" in result.stderr.str()


def test_secrets_in_custom_tests_urls_and_debug_logs_are_masked(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "tok-SECRET-4471")
    monkeypatch.setenv("API_KEY", "key-SECRET-9923")
    demo.faults.add("ready-503")
    pytester.makepyfile(
        test_token="""
        import os
        import pytest

        @pytest.mark.smoke_required
        def test_token():
            token = os.environ["API_TOKEN"]
            assert token == "x"
        """
    )
    write_config(
        {
            "base_url": demo.url,
            "headers": {"Authorization": "Bearer ${API_TOKEN}"},
            "health_checks": [health("ready", "/health/ready?api_key=${API_KEY}")],
        }
    )
    result = run(pytester, "-vv", "-l", "--log-cli-level=DEBUG", "--junitxml=junit.xml", "--smoke-report=report.json")
    assert result.ret == 1
    outputs = [result.stdout.str(), result.stderr.str()] + [
        (pytester.path / f).read_text() for f in ("junit.xml", "report.json")
    ]
    for text in outputs:
        assert "tok-SECRET-4471" not in text and "key-SECRET-9923" not in text


def test_xdist_workers_share_the_per_host_limit(pytester, write_config, two_worker_app):
    # Four workers, two app workers: without a shared limit two requests queue 0.6 s behind the
    # others and miss their 1 s timeout; with it, each waits for a slot before its deadline starts.
    checks = [health(f"c{i}", f"/c{i}?ms=600", timeout_seconds=1) for i in range(8)]
    write_config({"base_url": two_worker_app, "health_checks": checks})
    result = run(pytester, "-n", "4")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["✓ Smoke tests passed (all health checks OK)"])


def test_collection_errors_are_exit_2_even_when_the_run_goes_on_past_them(pytester, write_config, demo):
    pytester.makepyfile(test_broken="import not_a_module_anywhere\n")
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    result = run(pytester, "--continue-on-collection-errors")
    assert result.ret == 2  # docs/exit-codes.md: no verdict, no rollback
    result.stdout.fnmatch_lines(["smoke: no verdict: run ended early (collection errors): no rollback"])
