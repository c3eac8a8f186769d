"""Where deploys happen: waiting for the rollout, warm-up retries, and the shipped manifests and CI
templates, checked against what the code really calls and accepts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import assert_cut_short, health, session_seconds
from kube_double import KubeDouble

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "example_suites" / "kubernetes"
CI = ROOT / "example_suites" / "ci"


# -- waiting for the rollout -----------------------------------------------------------------------


@pytest.fixture
def rolling(tmp_path):
    """A Deployment whose newest revision is still rolling out (1 of 3 pods per poll)."""
    api = KubeDouble(polls_to_complete=3).start()
    api.add_deployment("django", {"django": "django:v1"})
    api.deploy("prod", "django", {"django": "django:v2"})
    with api.lock:
        deployment = api.deployments[("prod", "django")]
        deployment["_updated"] = 0
        api._refresh_status(deployment)
    api.kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    yield api
    api.stop()


def wait_doc(demo, api, **wait):
    return {
        "base_url": demo.url,
        "health_checks": [health("basic-health", "/health")],
        "wait_for_rollout": {
            "deployment": "django",
            "namespace": "prod",
            "kubeconfig": str(api.kubeconfig),
            "timeout_seconds": 10,
            **wait,
        },
    }


def test_checks_start_only_after_the_rollout_completes(pytester, write_config, demo, rolling):
    write_config(wait_doc(demo, rolling))
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json", "-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*smoke: waiting for deployment/django -n prod: 1/3 new pods updated*",
            "*smoke: deployment/django -n prod is rolled out*",
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    events = [e["event"] for e in report["timeline"]]
    assert events[:2] == ["deployment_completed", "checks_started"]
    polls = [r for r in rolling.requests if r == ("GET", "/apis/apps/v1/namespaces/prod/deployments/django")]
    assert len(polls) >= 3


def test_wait_from_the_command_line(pytester, write_config, demo, rolling, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(rolling.kubeconfig))
    doc = wait_doc(demo, rolling)
    del doc["wait_for_rollout"]
    doc["rollback_strategy"] = {"namespace": "prod"}
    write_config(doc)
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-wait-rollout", "deployment/django")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*Deployment completed*"])


def test_a_wait_for_a_kind_other_than_deployment_is_a_usage_error_before_any_request(
    pytester, write_config, demo, rolling, monkeypatch
):
    monkeypatch.setenv("KUBECONFIG", str(rolling.kubeconfig))
    doc = wait_doc(demo, rolling)
    del doc["wait_for_rollout"]
    write_config(doc)
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-wait-rollout", "statefulset/web")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the user's input, not "never rolled out" (11)
    result.stderr.fnmatch_lines(["*smoke.json: --smoke-wait-rollout: takes deployment/NAME, got 'statefulset/web'*"])
    assert rolling.requests == []


@pytest.mark.parametrize(
    "mode, message",
    [("stuck", "did not finish rolling out within 2 s"), ("deadline_exceeded", "exceeded its progress deadline")],
)
def test_a_rollout_that_never_finishes_stops_the_run_before_any_check(
    pytester, write_config, demo, rolling, mode, message
):
    setattr(rolling, mode, True)
    write_config(wait_doc(demo, rolling, timeout_seconds=2))
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-report=report.json", "--smoke-confirm-rollback"
    )
    assert_cut_short(session_seconds(result), 2)
    assert result.ret == 11
    result.stdout.fnmatch_lines([f"*{message}*"])
    assert demo.requests == []  # no check ran against a half-rolled-out service
    assert rolling.patches == []  # and nothing was rolled back
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["decision"]["action"] == "not_evaluated"


def test_wait_needs_no_cluster_when_not_asked_for(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("basic-health", "/health")]})
    assert pytester.runpytest("--smoke-config", "smoke.json").ret == 0


# -- warm-up retries -------------------------------------------------------------------------------


def test_a_check_that_passes_after_retries_is_reported_flaky(pytester, write_config, demo):
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [
                health("warming", "/flaky?key=a&fail=2", retries=3, retry_interval_seconds=0.1),
                health("steady", "/health"),
            ],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["⚠ WARNING*", "*warming: flaky: passed on attempt 3 of 4*"])
    report = json.loads((pytester.path / "report.json").read_text())
    warming = next(c for c in report["checks"] if c["name"] == "warming")
    assert warming["status"] == "passed" and warming["severity"] == "warning"
    assert warming["facts"]["attempts"] == 3
    assert [p for _, p in demo.requests].count("/flaky") == 3


def test_retries_give_up_and_fail_with_the_last_reason(demo):
    from pytest_smoke.checks import CheckContext, CheckFailed, run_check
    from pytest_smoke.model import Check

    spec = health("cold", "/flaky?key=b&fail=9", retries=2, retry_interval_seconds=0.05)
    with pytest.raises(CheckFailed) as failure:
        run_check(Check.of("health", spec), CheckContext(base_url=demo.url))
    assert failure.value.reason == "/flaky?key=b&fail=9 returned 503 (expected 200) (after 3 attempts)"


def test_retries_never_exceed_the_checks_own_deadline(demo):
    from pytest_smoke.checks import CheckContext, CheckFailed, run_check
    from pytest_smoke.model import Check

    spec = health("cold", "/flaky?key=c&fail=99", retries=50, retry_interval_seconds=0.4, timeout_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(CheckFailed):
        run_check(Check.of("health", spec), CheckContext(base_url=demo.url))
    assert_cut_short(time.monotonic() - started, 1.5, unbounded=50 * 0.4)


def test_initial_delay_is_part_of_the_deadline(demo):
    from pytest_smoke.checks import CheckContext, run_check
    from pytest_smoke.model import Check

    spec = health("late", "/health", initial_delay_seconds=0.3, timeout_seconds=5)
    started = time.monotonic()
    run_check(Check.of("health", spec), CheckContext(base_url=demo.url))
    assert time.monotonic() - started >= 0.3


# -- shipped manifests and templates ---------------------------------------------------------------


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_shipped_yaml_parses():
    files = sorted(K8S.glob("*.yaml")) + sorted(CI.glob("*.yml"))
    assert len(files) >= 7
    for path in files:
        text = path.read_text()
        if "{{ .Release" in text:  # a Helm template: render the two values it uses
            text = text.replace("{{ .Release.Name }}", "django").replace("{{ .Release.Namespace }}", "prod")
        assert list(yaml.safe_load_all(text)), path


def test_rbac_grants_exactly_what_the_code_calls():
    from pytest_smoke.cluster.kube import REQUIRED_PERMISSIONS

    role = next(d for d in load_all(K8S / "rbac.yaml") if d["kind"] == "Role")
    granted = {
        (rule["apiGroups"][0], resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert set(REQUIRED_PERMISSIONS) <= granted
    assert granted == {
        ("apps", "deployments", "get"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments", "patch"),
        ("apps", "replicasets", "list"),
        ("apps", "replicasets", "patch"),
        ("", "pods", "list"),
    }
    job = load_all(K8S / "job.yaml")[0]
    binding = next(d for d in load_all(K8S / "rbac.yaml") if d["kind"] == "RoleBinding")
    account = next(d for d in load_all(K8S / "rbac.yaml") if d["kind"] == "ServiceAccount")
    assert (
        job["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
        == binding["subjects"][0]["name"]
    )


def test_the_kube_double_sees_only_permitted_calls(tmp_path):
    """Run a real rollback and check every request it made against the Role."""
    from pytest_smoke.cluster.kube import REQUIRED_PERMISSIONS

    from helpers import roll_back

    api = KubeDouble().start()
    try:
        api.add_deployment("django", {"django": "django:v1"})
        api.deploy("prod", "django", {"django": "django:v2"})
        strategy = {
            "deployment": "django",
            "namespace": "prod",
            "kubeconfig": str(api.write_kubeconfig(tmp_path / "kc")),
        }
        assert roll_back("rollback", strategy, {"rollback_timeout_seconds": 20}, confirm=None).status == "completed"
    finally:
        api.stop()
    verbs = {"GET": "get", "PATCH": "patch"}
    used = set()
    for method, path in api.requests:
        parts = path.split("/")
        resource = parts[6]
        verb = "list" if method == "GET" and len(parts) == 7 else verbs[method]
        used.add(("apps", resource, verb))
    assert used <= set(REQUIRED_PERMISSIONS)


def smoke_options() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    return {word.split("=")[0].rstrip(",") for word in out.split() if word.startswith("--smoke-")}


def test_job_and_template_arguments_are_real_options():
    options = smoke_options()
    assert {
        "--smoke-config",
        "--smoke-wait-rollout",
        "--smoke-confirm-rollback",
        "--smoke-report",
        "--smoke-junit",
    } <= options
    containers = [
        load_all(K8S / "job.yaml")[0]["spec"]["template"]["spec"]["containers"][0],
        load_all(K8S / "argo-analysis-template.yaml")[0]["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"][
            "spec"
        ]["containers"][0],
    ]
    for container in containers:
        for arg in container["args"]:
            if arg.startswith("--smoke-"):
                assert arg.split("=")[0] in options, arg
    argo_args = containers[1]["args"]
    assert "--smoke-no-rollback" in argo_args  # Argo owns the rollback


def test_configmap_config_is_valid(monkeypatch, tmp_path):
    from pytest_smoke import load_config

    data = load_all(K8S / "configmap.yaml")[0]["data"]["smoke-test-hook.yaml"]
    path = tmp_path / "smoke-test-hook.yaml"
    path.write_text(data)
    env = {
        "DATABASE_URL": "postgresql://x:y@db/z",
        "REDIS_URL": "redis://db:6379/0",
        "SMOKE_LOGIN_PASSWORD": "pw-123456",
        "SLACK_WEBHOOK_URL": "http://hooks/x",
    }
    config = load_config(path, env=env)
    assert [c.node_name for c in config.checks][:2] == ["health[basic-health]", "health[readiness]"]
    assert config.data["rollback_strategy"]["deployment"] == "django"


def test_makefile_target_passes_the_environment():
    out = subprocess.run(["make", "-n", "smoke-tests", "ENV=prod"], capture_output=True, text=True, cwd=ROOT).stdout
    assert "--smoke-config .coditect/config/smoke-test-hook.json --smoke-env prod" in out
