"""The rollback never changes production wrongly: races, re-runs, ping-pong, approvals, interrupted
runs, malformed API data, command templates and slow channels. Each test asserts the final state
of the Deployment on the apps/v1 test double, the exit code and what the channels received."""

from __future__ import annotations

import json
import signal
import time
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_smoke.cluster.kube import LEASE, REJECTED

from helpers import BAD_IMAGE as BAD
from helpers import GOOD_IMAGE as GOOD
from helpers import (
    KUBECTL_SET_IMAGE,
    Receiver,
    assert_cut_short,
    deployment_patches,
    health,
    run_in_background,
    smoke_doc,
)
from servers import LocalHTTPServer

HOTFIX = "django:v1.24.0-hotfix"


def run(pytester, *args):
    return pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "-p", "no:randomly", *args)


def handler(answer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            answer(self)

        def log_message(self, *args):
            pass

    return Handler


def reply(request, status, body=b"", content_type="application/json", headers=()):
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    for name, value in headers:
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def test_a_hotfix_deployed_while_approval_is_pending_is_never_reverted(pytester, write_config, demo, kube):
    polls = []

    def approval(request):
        polls.append(time.monotonic())
        if len(polls) == 1:  # the pipeline deploys a hotfix while ops are still deciding
            kube.deploy("prod", "django", {"django": HOTFIX})
            return reply(request, 404)
        reply(request, 200, b'{"approved": true}')

    gate = LocalHTTPServer(handler(approval))
    try:
        demo.faults.add("ready-503")
        write_config(smoke_doc(demo, kube, approval_url=gate.url + "/approve", confirmation_timeout_seconds=10))
        result = run(pytester)
    finally:
        gate.stop()
    assert len(polls) >= 2  # it was approved, and still nothing was written
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - Rollback stood down (the Deployment changed since the checks)",
            "Status: standing down: deployment/django -n prod changed since the checks started: "
            f"revision 2 ({BAD}) -> revision 3 ({HOTFIX})*",
        ]
    )
    assert kube.images("prod", "django") == {"django": HOTFIX} and kube.revision("prod", "django") == 3
    assert deployment_patches(kube) == []


def test_re_runs_never_roll_forward_or_ping_pong(pytester, write_config, demo, kube):
    # The same failing config three times in a row (a retried CI job, or an outage that has
    # nothing to do with the version): one rollback, then clear refusals.
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False))
    images, revisions, codes = [], [], []
    for _ in range(3):
        result = run(pytester)
        codes.append(result.ret)
        images.append(kube.images("prod", "django")["django"])
        revisions.append(kube.revision("prod", "django"))
    assert images == [GOOD, GOOD, GOOD] and revisions == [3, 3, 3]
    assert codes == [1, 10, 10]  # then due and refused: a human must act
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - ROLLBACK REFUSED*",
            "Status: ROLLBACK REFUSED: a rollback was due and did not happen: "
            "deployment/django has no safe earlier revision: every one was rolled away "
            "from by a smoke run (revision 2 (rejected *: *readiness*)*",
        ]
    )
    rejected = [rs for rs in kube.owned_replicasets("prod", "django") if rs["metadata"]["annotations"].get(REJECTED)]
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in rejected] == [BAD]


def test_a_green_run_lifts_a_rejection(pytester, write_config, demo, kube):
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False))
    assert run(pytester).ret == 1  # rolled back to GOOD; BAD is rejected
    kube.deploy("prod", "django", {"django": BAD})  # the same version again, now healthy
    demo.faults.clear()
    assert run(pytester).ret == 0
    rejected = [rs for rs in kube.owned_replicasets("prod", "django") if rs["metadata"]["annotations"].get(REJECTED)]
    assert rejected == []


@pytest.mark.parametrize(
    "answer, why",
    [
        (
            lambda r: reply(r, 302, headers=[("Location", "http://localhost:1/sso/login")]),
            "the approval URL redirected (302*",
        ),
        (
            lambda r: reply(r, 200, b"<html>Sign in</html>", "text/html"),
            "the approval URL answered an HTML or XML page*",
        ),
    ],
    ids=["redirect", "login-page"],
)
def test_a_redirect_or_a_login_page_never_approves(pytester, write_config, demo, kube, answer, why):
    gate = LocalHTTPServer(handler(answer))
    try:
        demo.faults.add("ready-503")
        write_config(smoke_doc(demo, kube, approval_url=gate.url + "/approve", confirmation_timeout_seconds=5))
        result = run(pytester)
    finally:
        gate.stop()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["✗ CRITICAL: Smoke tests failed - Rollback awaiting ops confirmation", f"Confirmation: not approved: {why}"]
    )
    assert kube.images("prod", "django") == {"django": BAD} and deployment_patches(kube) == []


def test_a_signal_during_verification_still_reports_the_rollback(pytester, write_config, demo, kube):
    receiver = Receiver()
    try:
        demo.faults.update({"ready-503", "live-hang"})
        doc = smoke_doc(demo, kube, confirm=False, strategy={"verify_after_rollback": True, "notify_channels": ["ops"]})
        doc["health_checks"] = [health("readiness", "/health/ready"), health("live", "/health/live", timeout_seconds=8)]
        doc["notifications"] = {"ops": {"type": "webhook", "url": receiver.url + "/alert"}}
        write_config(doc)
        proc = run_in_background(
            pytester, "--smoke-config", "smoke.json", "--smoke-report=report.json", "--smoke-concurrency=1"
        )
        deadline = time.monotonic() + 40
        # Verification re-sends /health/live after the rollback: interrupt it there.
        while (
            not (
                kube.images("prod", "django") == {"django": GOOD}
                and [p for _, p in demo.requests].count("/health/live") >= 2
            )
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
    finally:
        receiver.stop()
    assert "Traceback" not in out
    assert proc.returncode == 1, out  # critical, rolled back; verification unknown
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["rollback"]["status"] == "completed"
    assert "interrupted by SIGTERM during the rollback during verification" in report["rollback"]["verification"]
    assert [p["body"]["event"] for p in receiver.posts] == ["rollback"]
    assert kube.images("prod", "django") == {"django": GOOD}


def test_a_failed_verification_is_escalated_to_the_channels(pytester, write_config, demo, kube):
    receiver = Receiver()
    try:
        demo.faults.add("ready-503")
        doc = smoke_doc(demo, kube, confirm=False, strategy={"verify_after_rollback": True, "notify_channels": ["ops"]})
        doc["notifications"] = {"ops": {"type": "webhook", "url": receiver.url + "/alert"}}
        write_config(doc)
        result = run(pytester)
    finally:
        receiver.stop()
    assert result.ret == 10
    result.stdout.fnmatch_lines(["✗ CRITICAL: Smoke tests failed - ROLLED BACK, STILL FAILING"])
    assert [p["body"]["event"] for p in receiver.posts] == ["rollback_failed"]
    assert kube.images("prod", "django") == {"django": GOOD}


class LoginPage(BaseHTTPRequestHandler):
    def do_GET(self):
        reply(self, 200, b"<html><body>Please sign in</body></html>", "text/html")

    do_PATCH = do_GET

    def log_message(self, *args):
        pass


def test_a_proxy_login_page_instead_of_the_api_is_rollback_failed_never_a_traceback(
    pytester, write_config, demo, kube, tmp_path
):
    proxy = LocalHTTPServer(LoginPage)
    try:
        kubeconfig = json.loads(kube.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = proxy.url
        (tmp_path / "proxy-kubeconfig").write_text(json.dumps(kubeconfig))
        demo.faults.add("ready-503")
        doc = smoke_doc(demo, kube, confirm=False, strategy={"kubeconfig": str(tmp_path / "proxy-kubeconfig")})
        write_config(doc)
        result = run(pytester)
        demo.faults.clear()
        green = run(pytester)
    finally:
        proxy.stop()
    assert result.ret == 10  # due, and the API cannot be read: nothing is written, a human must act
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - ROLLBACK FAILED",
            "*answered text/html, not JSON: is it the Kubernetes API (or a proxy's login page)?*",
        ]
    )
    assert green.ret == 0  # a green run stays green: the verified mark is only a note
    green.stdout.fnmatch_lines(
        [
            "Note: could not record the tested revision (*not JSON*): a rollback that is due is refused, "
            "and nothing is marked"
        ]
    )
    assert "Traceback" not in result.stdout.str() + green.stdout.str()
    # With the rollback off, the note says only what the missing record costs: no verified mark.
    write_config({**doc, "auto_rollback": {"enabled": False}})
    off = run(pytester)
    assert off.ret == 0
    off.stdout.fnmatch_lines(["Note: could not record the tested revision (*): the revision is not marked verified"])


@pytest.mark.parametrize("lease", ['{"expires": "soon"}', "null", '{"holder": "x", "expires": 1e300}', "not json"])
def test_a_malformed_lease_never_blocks_or_crashes_the_rollback(kube, lease):
    from helpers import roll_back

    kube.deployments[("prod", "django")]["metadata"]["annotations"][LEASE] = lease
    strategy = {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)}
    result = roll_back("rollback", strategy, {"rollback_timeout_seconds": 20}, confirm=None)
    assert result.status == "completed", result.message
    assert kube.images("prod", "django") == {"django": GOOD}


def test_rollout_undo_is_not_blocked_by_status_updates_and_a_lease_conflict_is_retried(kube):
    from helpers import roll_back

    kube.status_churn = True  # the controller writes status on every read
    kube.fail_next_patch = 409  # and once wins the race for the lease write
    strategy = {"type": "rollout-undo", "deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)}
    result = roll_back("rollback", strategy, {"rollback_timeout_seconds": 20}, confirm=None)
    assert result.status == "completed", result.message
    assert kube.images("prod", "django") == {"django": GOOD}


@pytest.mark.parametrize(
    "release, argv_part",
    [("rel{namespace}", "rel{namespace}"), ("rel{", "rel{"), ("rel}}x", "rel}}x")],
)
def test_command_values_from_the_environment_are_data(kube, write_config, monkeypatch, release, argv_part):
    from pytest_smoke.cluster.rollback import get_handler, target_from
    from pytest_smoke.config import load_config

    monkeypatch.setenv("RELEASE", release)
    path = write_config(
        {
            "health_checks": [health("basic", "http://127.0.0.1:1/health")],
            "rollback_strategy": {
                "type": "command",
                "deployment": "django",
                "namespace": "prod",
                "kubeconfig": str(kube.kubeconfig),
                "command": [
                    "helm",
                    "rollback",
                    "${RELEASE}",
                    "-n",
                    "{namespace}",
                    "--set-json",
                    '{"a": 1}',
                    "{{literal}}",
                ],
            },
        }
    )
    strategy = load_config(path).section("rollback_strategy")
    plan = get_handler("command").plan(target_from(strategy), strategy)
    assert plan.details["argv"] == ["helm", "rollback", argv_part, "-n", "prod", "--set-json", '{"a": 1}', "{literal}"]


def test_an_unknown_command_placeholder_is_a_config_error(pytester, write_config, demo):
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [health("basic", "/health")],
            "rollback_strategy": {
                "type": "command",
                "command": ["kubectl", "rollout", "undo", "deployment/{deploymnet}"],
            },
        }
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "rollback_strategy.command[3]: unknown placeholder {deploymnet}" in result.stderr.str()
    assert demo.requests == []


def test_a_trickling_channel_never_holds_the_run(fault_server):
    from pytest_smoke.notify import dispatch
    from pytest_smoke.redact import Redactor

    document = {"verdict": {"state": "critical", "critical": 1, "warnings": 0}, "rollback": {"status": "completed"}}
    channels = {f"slow{i}": {"type": "webhook", "url": fault_server.url + "/trickle"} for i in range(2)}
    started = time.monotonic()
    results = dispatch(document, channels, list(channels), Redactor(), deadline_seconds=2)
    assert_cut_short(time.monotonic() - started, 2, unbounded=fault_server.max_seconds)
    assert [(r["channel"], r["status"], r["detail"]) for r in results] == [
        (name, "failed", "no answer within 2 s; not waiting any longer") for name in channels
    ]


# -- found by an adversarial review -----------------------------------------------------------------


def test_no_ping_pong_between_two_verified_revisions(pytester, write_config, demo, kube):
    strategy = {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)}
    doc = smoke_doc(demo, kube, confirm=False)
    write_config(doc)
    kube.deploy("prod", "django", {"django": GOOD})  # revision 3 (GOOD again), then verified
    assert run(pytester).ret == 0
    kube.deploy("prod", "django", {"django": HOTFIX})  # revision 4, verified too
    assert run(pytester).ret == 0
    kube.deploy("prod", "django", {"django": "django:v3-bad"})  # revision 5; now everything fails
    demo.faults.add("ready-503")
    images = []
    for _ in range(3):
        run(pytester)
        images.append(kube.images("prod", "django")["django"])
    assert images == [HOTFIX, GOOD, GOOD]  # one step back per failing version, never forward again
    assert strategy  # the same Deployment throughout


def test_the_command_handler_marks_the_rejected_revision_too(pytester, write_config, demo, kube, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    demo.faults.add("ready-503")
    doc = smoke_doc(
        demo,
        kube,
        confirm=False,
        strategy={
            "type": "command",
            "command": KUBECTL_SET_IMAGE,
        },
    )
    write_config(doc)
    images = []
    for _ in range(2):
        run(pytester)
        images.append(kube.images("prod", "django")["django"])
    assert images == [GOOD, GOOD]  # the re-run is refused, never rolled forward to BAD


def test_without_a_recorded_revision_an_approval_never_leads_to_reverting_a_hotfix(kube):
    from pytest_smoke.cluster.rollback import carry_out

    def approve_after_a_hotfix(plan):
        kube.deploy("prod", "django", {"django": HOTFIX})
        return True, "approved"

    strategy = {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)}
    result = carry_out(
        "confirm", strategy, {"rollback_timeout_seconds": 20}, confirm=approve_after_a_hotfix, tested=None
    )
    assert result.status == "refused"  # no tested revision, no write: it never guesses
    assert "the revision the checks tested was not recorded" in result.message
    assert kube.images("prod", "django") == {"django": BAD} and deployment_patches(kube) == []


def test_a_write_whose_answer_was_lost_is_reported_as_a_rollback(kube):
    from helpers import roll_back

    kube.lose_template_answer = 504
    strategy = {
        "deployment": "django",
        "namespace": "prod",
        "kubeconfig": str(kube.kubeconfig),
        "max_rollback_attempts": 2,
    }
    result = roll_back("rollback", strategy, {"rollback_timeout_seconds": 20}, confirm=None, reason="readiness")
    assert result.status == "completed", result.message
    assert kube.images("prod", "django") == {"django": GOOD}
    rejected = [rs for rs in kube.owned_replicasets("prod", "django") if rs["metadata"]["annotations"].get(REJECTED)]
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in rejected] == [BAD]


def test_a_green_run_never_verifies_a_revision_it_did_not_test(pytester, write_config, kube):
    deployed = []

    def health_then_deploy(request):
        if not deployed:  # a pipeline deploys while the checks run
            deployed.append(True)
            kube.deploy("prod", "django", {"django": HOTFIX})
        reply(request, 200, b'{"status": "ok"}')

    server = LocalHTTPServer(handler(health_then_deploy))
    try:
        write_config(
            {
                "base_url": server.url,
                "health_checks": [health("basic", "/health")],
                "rollback_strategy": {"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)},
            }
        )
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 12  # a change while the checks ran: they cannot be attributed to one revision
    result.stdout.fnmatch_lines(
        [
            "? INCONCLUSIVE: the results cannot be attributed to the deploy - no rollback, nothing marked, "
            "deployment NOT verified",
            "Reason: deployment/django -n prod changed while the checks ran "
            f"(revision 2 ({BAD}) -> revision 3 ({HOTFIX})): *",
        ]
    )
    assert not any(
        rs["metadata"]["annotations"].get("pytest-smoke.dev/verified")
        for rs in kube.owned_replicasets("prod", "django")
    )


def test_a_trickling_or_html_approval_never_approves(fault_server):
    from pytest_smoke.cluster.rollback.confirm import poll_approval_url

    started = time.monotonic()
    approved, why = poll_approval_url(fault_server.url + "/trickle", 3)
    assert not approved
    assert_cut_short(time.monotonic() - started, 3, unbounded=fault_server.max_seconds)
    page = LocalHTTPServer(handler(lambda r: reply(r, 200, b"<!DOCTYPE html><html>Sign in</html>", content_type="")))
    try:
        approved, why = poll_approval_url(page.url, 3)
    finally:
        page.stop()
    assert not approved and "HTML or XML page" in why


def test_a_command_reports_only_the_container_it_rolls_back(tmp_path):
    from pytest_smoke.cluster.rollback import get_handler, target_from

    from kube_double import KubeDouble

    api = KubeDouble().start()
    try:
        api.add_deployment("shop", {"web": "web:1", "sidecar": "proxy:1"})
        api.deploy("prod", "shop", {"web": "web:2", "sidecar": "proxy:2"})
        strategy = {
            "type": "command",
            "deployment": "shop",
            "namespace": "prod",
            "kubeconfig": str(api.write_kubeconfig(tmp_path / "kc")),
            "command": ["kubectl", "set", "image", "deployment/{deployment}", "{container}={previous_image}"],
        }
        plan = get_handler("command").plan(target_from(strategy), strategy)
    finally:
        api.stop()
    assert plan.details["argv"][-1] == "web=web:1"
    assert plan.target_images == {"web": "web:1"} and plan.current_images == {"web": "web:2"}


def test_credentials_for_another_cluster_are_refused_before_any_request(pytester, write_config, demo, kube):
    """rollback_strategy.cluster_uid names the cluster by its kube-system uid: a kubeconfig whose
    context reaches another one (a reused file, a wrong context) stops the run before any check,
    and nothing is read from it as the target's state or written to it."""
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False, strategy={"cluster_uid": "0a1b2c3d-0000-4000-8000-000000000000"}))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        f"refused: {kube.url} is the cluster whose kube-system uid is {kube.kube_system['uid']}, not"
        " rollback_strategy.cluster_uid 0a1b2c3d-0000-4000-8000-000000000000 (a wrong context or kubeconfig?)"
    ) in result.stderr.str() + result.stdout.str()
    assert demo.requests == [] and kube.patches == []
    assert [path for _, path in kube.requests] == ["/api/v1/namespaces/kube-system"]


def test_the_right_cluster_uid_lets_the_rollback_through(pytester, write_config, demo, kube):
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False, strategy={"cluster_uid": kube.kube_system["uid"].upper()}))
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ CRITICAL: Smoke tests failed - Rollback completed"])
    assert deployment_patches(kube)


def _two_clusters(tmp_path, a, b):
    kubeconfig = tmp_path / "kubeconfig-ab"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "a", "cluster": {"server": a.url}}, {"name": "b", "cluster": {"server": b.url}}],
                "users": [{"name": "smoke", "user": {"token": "t"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": name, "user": "smoke", "namespace": "prod"}}
                    for name in ("a", "b")
                ],
                "current-context": "b",  # the other cluster: what kubectl uses unless told
            }
        )
    )
    return kubeconfig


@pytest.mark.parametrize("names_the_context", [True, False])
def test_a_command_rollback_acts_on_the_targets_context_or_the_config_is_refused(
    pytester, write_config, demo, tmp_path, names_the_context
):
    from kube_double import KubeDouble

    a, b = KubeDouble(polls_to_complete=1).start(), KubeDouble(polls_to_complete=1).start()
    try:
        for api in (a, b):
            api.add_deployment("django", {"django": GOOD})
            api.deploy("prod", "django", {"django": BAD})
        a.kubeconfig = _two_clusters(tmp_path, a, b)
        command = list(KUBECTL_SET_IMAGE)
        if names_the_context:
            command += ["--context", "{context}"]
        demo.faults.add("ready-503")
        doc = smoke_doc(
            demo,
            a,
            confirm=False,
            strategy={
                "type": "command",
                "command": command,
                "context": "a",
                "cluster_uid": a.kube_system["uid"],
            },
        )
        write_config(doc)
        result = run(pytester)
    finally:
        a.stop()
        b.stop()
    assert b.images("prod", "django") == {"django": BAD}  # never the other cluster
    if names_the_context:
        assert result.ret == 1
        assert a.images("prod", "django") == {"django": GOOD}
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "rollback_strategy.context is set, and the command does not name it: pass {context}" in (
            result.stderr.str()
        )
        assert a.patches == []


def test_credentials_that_may_not_read_kube_system_stop_a_run_with_cluster_uid(pytester, write_config, demo, kube):
    kube.fault("GET", r"/api/v1/namespaces/kube-system", status=403, times=100)
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False, strategy={"cluster_uid": kube.kube_system["uid"]}))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert demo.requests == [] and deployment_patches(kube) == []
