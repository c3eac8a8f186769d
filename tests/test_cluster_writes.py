"""Every write to the cluster is exact, and every report of one is true (issue 31), and results are
attributed only to a settled revision (issue 29). Against the apps/v1 test double with fault rules
(a status per call, late, trickled, endless or lost answers), through the real kubernetes client;
each test asserts the Deployment's and the ReplicaSets' final state, not only what was reported."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pytest_smoke.cluster.kube import ROLLED_BACK_FROM, Kube
from pytest_smoke.cluster.rollback.confirm import approval_of
from pytest_smoke.model import Target
from pytest_smoke.verdict import EXIT_ROLLBACK_FAILED, exit_code

from helpers import BAD_IMAGE as BAD
from helpers import GOOD_IMAGE as GOOD
from helpers import assert_cut_short, deployment_patches, health, roll_back, smoke_doc
from kube_double import KubeDouble

HOTFIX = "django:v1.24.0-hotfix"
FAST = {"rollback_timeout_seconds": 20}


def strategy_for(api, name="django", **extra):
    return {
        "type": "previous-image",
        "deployment": name,
        "namespace": "prod",
        "kubeconfig": str(api.kubeconfig),
        **extra,
    }


def marks(api, name="django"):
    """revision -> the smoke annotations of its ReplicaSet."""
    return {
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]): {
            k.rpartition("/")[2]: v
            for k, v in rs["metadata"]["annotations"].items()
            if k.startswith("pytest-smoke.dev/")
        }
        for rs in api.owned_replicasets("prod", name)
    }


def state(api, name="django"):
    return Kube(Target.from_settings(strategy_for(api, name))).state()


def run(pytester, *args):
    return pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", *args)


# -- no write without a recorded, settled tested revision --------------------------------------------


def test_a_503_on_the_first_read_is_retried_and_a_read_that_never_succeeds_refuses_the_rollback(
    pytester, write_config, demo, kube
):
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False))
    kube.fault("GET", "/deployments/django$", status=503, times=1)
    assert run(pytester).ret == 1  # retried: recorded, rolled back
    assert kube.images("prod", "django") == {"django": GOOD}

    kube.deploy("prod", "django", {"django": HOTFIX})
    patches = len(deployment_patches(kube))
    kube.fault("GET", "/deployments/django$", status=503, times=3)  # every read as the checks start
    result = run(pytester)
    assert result.ret == EXIT_ROLLBACK_FAILED
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - ROLLBACK REFUSED",
            "*the revision the checks tested was not recorded (read deployment/django -n prod: 503 *): "
            "rolling back without it could revert a fix deployed meanwhile*",
        ]
    )
    assert kube.images("prod", "django") == {"django": HOTFIX} and len(deployment_patches(kube)) == patches
    assert kube.revision("prod", "django") == 4 and "rejected" not in marks(kube)[4]  # the hotfix is untouched


def test_a_deployment_still_rolling_out_is_inconclusive_never_rolled_back_or_marked(pytester, write_config, demo, kube):
    kube.stuck = True
    kube.deploy("prod", "django", {"django": HOTFIX}, complete=False)  # 0/3 pods updated: old pods answer
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False))
    result = run(pytester)
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            "? INCONCLUSIVE: the results cannot be attributed to the deploy - no rollback, nothing marked, "
            "deployment NOT verified",
            "Reason: a rollout was in progress as the checks started (deployment/django is rolling out: "
            "0/3 pods run the latest template): the checks cannot be attributed to one revision*",
            "- Health Check readiness: /health/ready returned 503*",
        ]
    )
    assert kube.images("prod", "django") == {"django": HOTFIX} and deployment_patches(kube) == []
    assert not any(m.get("rejected") for m in marks(kube).values())

    demo.faults.clear()  # green, but still mid-rollout: never marked verified either
    assert run(pytester).ret == 12
    assert not any(m.get("verified") for m in marks(kube).values())


def test_a_pipeline_expected_failure_while_rolling_out_waits_when_asked(pytester, write_config, demo, kube):
    kube.deploy("prod", "django", {"django": HOTFIX}, complete=False)  # finishes over a few polls
    write_config(
        {**smoke_doc(demo, kube, confirm=False), "wait_for_rollout": {"deployment": "django", "timeout_seconds": 20}}
    )
    result = run(pytester)
    assert result.ret == 0
    assert marks(kube)[3].get("verified") == "true"


# -- approvals are given, never inferred ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, body, expected",
    [
        ("application/json", b'{"approved": true}', True),
        ("application/json", b'{"approved": true, "revision": 2}', True),
        ("application/json", b'{"approved": false}', '"approved" is false'),
        ("application/json", b'{"approved": "true"}', '"approved" is "true"'),
        ("application/json", b"", "not JSON: "),
        ("text/plain", b"OK", "not JSON: OK"),
        (
            "application/json",
            b'{"approved": true, "revision": 5}',
            "final:not approved: the approval names revision 5, this rollback moves away from revision 2",
        ),
        (
            "application/json",
            b'{"approved": false, "denied": true}',
            'final:denied through the approval URL ({"approved": false, "denied": true})',
        ),
        (
            "text/plain",
            b"<!-- sso --><html><body>Sign in</body></html>",
            "final:not approved: the approval URL answered an HTML or XML page*",
        ),
        ("text/plain", b"<head><title>Login</title></head>", "final:not approved: *HTML or XML page*"),
        (
            "application/xml",
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>',
            "final:not approved: *HTML or XML*",
        ),
        ("application/json", b'{"approved": false, "approved": true}', "not JSON (duplicate key approved)*"),
        ("application/json", b'{"approved": true, "revision": 5, "revision": 2}', "not JSON (duplicate key revision)*"),
        ("application/json", b'{"approved": true, "denied": true}', "final:denied through the approval URL*"),
        (
            "application/json",
            b'{"approved": "\x1b[2K\x1b[1Gyes"}',
            'not JSON: {"approved": "\\x1b[2K\\x1b[1Gyes"}',
        ),  # control bytes escaped
    ],
)
def test_only_an_explicit_approval_approves(content_type, body, expected):
    import fnmatch

    answer = approval_of(content_type, body, 2)
    assert (
        answer is True
        if expected is True
        else fnmatch.fnmatchcase(str(answer), expected + ("" if "*" in expected else "*"))
    )


# -- every mark is guarded, and a rejection is never lost -------------------------------------------


def test_a_failed_rejection_mark_still_rejects_and_a_re_run_never_rolls_forward(kube):
    kube.fault("PATCH", "/replicasets/", status=500, times=20)  # every ReplicaSet mark fails
    result = roll_back("rollback", strategy_for(kube), FAST, reason="readiness")
    assert result.status == "completed", result.message
    assert any(
        f"the rejection holds all the same: the rollback's own write recorded it on the Deployment ({ROLLED_BACK_FROM})"
        in n
        for n in result.notes
    )
    again = roll_back("rollback", strategy_for(kube), FAST, reason="readiness")  # the same failing config
    assert again.status == "refused" and "no safe earlier revision" in again.message
    assert kube.images("prod", "django") == {"django": GOOD}  # never forward onto BAD


def test_a_command_rollback_whose_mark_fails_is_unmarked_exit_10(kube, tmp_path):
    script = tmp_path / "undo.sh"
    script.write_text(
        f"#!/bin/sh\nexec kubectl --kubeconfig {kube.kubeconfig} -n prod set image deployment/django django={GOOD}\n"
    )
    script.chmod(0o755)
    kube.fault("PATCH", "/replicasets/", status=500, times=20)
    result = roll_back("rollback", strategy_for(kube, type="command", command=[str(script)]), FAST, reason="readiness")
    assert result.status == "unmarked", result.message
    assert result.message.startswith(
        "ROLLED BACK, REJECTION MARK NOT WRITTEN: alert ops team (revision 2 is not marked rejected"
    )
    assert exit_code(_critical_verdict(), result.status) == EXIT_ROLLBACK_FAILED


def _critical_verdict():
    from pytest_smoke.model import Outcome
    from pytest_smoke.verdict import classify

    return classify([Outcome(nodeid="r", name="r", kind="health", required=True, status="failed")])


def test_a_green_runs_verified_mark_never_lifts_a_rejection_made_meanwhile(kube):
    from pytest_smoke.cluster.marks import MarkNotWritten, verify

    tested = state(kube)  # run A tested revision 2 and is green
    kube.fault("GET", "/replicasets$", delay=3.0, times=1)  # A's ReplicaSet list is slow
    outcome = {}

    def mark():
        try:
            outcome["note"] = verify(Kube(Target.from_settings(strategy_for(kube))), tested)
        except MarkNotWritten as exc:
            outcome["error"] = str(exc)

    a = threading.Thread(target=mark)
    a.start()
    time.sleep(0.3)
    b = roll_back("rollback", strategy_for(kube), FAST, tested=tested, reason="readiness")  # run B fails and rolls back
    a.join(20)
    assert b.status == "completed"
    assert "changed while the checks ran" in outcome.get("error", ""), outcome
    assert marks(kube)[2].get("rejected") == "true" and "verified" not in marks(kube)[2]


def test_a_rejection_replaces_verified_and_a_green_run_replaces_the_rejection(kube):
    from pytest_smoke.cluster.marks import verify

    verify(Kube(Target.from_settings(strategy_for(kube))), state(kube))  # revision 2 verified
    assert marks(kube)[2]["verified"] == "true"
    kube.deploy("prod", "django", {"django": HOTFIX})  # revision 3, fails
    assert roll_back("rollback", strategy_for(kube), FAST, reason="readiness").status == "completed"
    # Rolled back onto verified revision 2's template (now revision 4); 3 is rejected, not verified.
    assert marks(kube)[3].get("rejected") == "true" and "verified" not in marks(kube)[3]
    assert kube.images("prod", "django") == {"django": BAD}
    kube.deploy("prod", "django", {"django": HOTFIX})  # the same version, healthy now: revision 5
    verify(Kube(Target.from_settings(strategy_for(kube))), state(kube))
    m = marks(kube)[5]
    assert m["verified"] == "true" and "rejected" not in m
    record = json.loads(kube.deployments[("prod", "django")]["metadata"]["annotations"][ROLLED_BACK_FROM])
    assert record == []  # the Deployment's record lifted with it


# -- whole templates -----------------------------------------------------------------------------------


def test_previous_image_restores_init_containers_and_sidecars_too(tmp_path):
    api = KubeDouble().start()
    try:
        api.add_deployment("shop", {"web": "web:4"})
        api.deploy("prod", "shop", {"web": "web:4", "proxy": "envoy:1.30"}, init_images={"migrate": "migrate:4"})
        api.deploy("prod", "shop", {"web": "web:5", "proxy": "envoy:1.31"}, init_images={"migrate": "migrate:5"})
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kc")
        result = roll_back("rollback", strategy_for(api, "shop"), FAST)
        assert result.status == "completed", result.message
        spec = api.deployments[("prod", "shop")]["spec"]["template"]["spec"]
        assert {c["name"]: c["image"] for c in spec["containers"]} == {"web": "web:4", "proxy": "envoy:1.30"}
        assert {c["name"]: c["image"] for c in spec["initContainers"]} == {"migrate": "migrate:4"}
        assert result.plan.target_images == {"migrate": "migrate:4", "web": "web:4", "proxy": "envoy:1.30"}
    finally:
        api.stop()


# -- report what happened in the cluster -----------------------------------------------------------


def test_a_command_that_fails_every_attempt_is_rollback_failed_and_marks_nothing(kube):
    result = roll_back(
        "rollback", strategy_for(kube, type="command", command=["false", "{deployment}"], max_rollback_attempts=2), FAST
    )
    assert result.status == "failed" and result.attempts == 2
    assert result.message.startswith("ROLLBACK FAILED: alert ops team immediately (false exited with 1")
    assert exit_code(_critical_verdict(), result.status) == EXIT_ROLLBACK_FAILED
    assert not any(m.get("rejected") for m in marks(kube).values())


def test_a_write_applied_but_answered_after_the_client_gave_up_is_reported_from_the_cluster(kube):
    kube.fault("PATCH", "/deployments/django$", apply=True, delay=4.0, times=1, body="/spec/template")
    result = roll_back("rollback", strategy_for(kube), {"rollback_timeout_seconds": 3}, reason="readiness")
    assert result.status == "completed", result.message
    assert any("did not answer within 3 s" in line for line in result.progress), result.progress
    assert kube.images("prod", "django") == {"django": GOOD}
    assert marks(kube)[2].get("rejected") == "true"


def test_a_rollback_another_run_made_is_never_claimed(kube):
    tested = state(kube)
    other = {}

    def approve_after_another_run_rolled_back(plan):
        other["result"] = roll_back("rollback", strategy_for(kube), FAST, tested=tested)
        return True, "approved"

    result = roll_back(
        "confirm", strategy_for(kube), FAST, tested=tested, confirm=approve_after_another_run_rolled_back
    )
    assert other["result"].status == "completed"
    assert result.status == "superseded", result.message
    assert f"revision 2 ({BAD}) -> revision 3 ({GOOD}) (pytest-smoke rollback to revision 1 by " in result.message
    assert len([p for p in deployment_patches(kube) if "/spec/template" in json.dumps(p[2])]) == 1


# -- bounded reads ------------------------------------------------------------------------------------


def test_a_trickled_plan_read_ends_within_the_rollback_timeout(kube):
    tested = state(kube)
    kube.fault("GET", "/deployments/django$", trickle=True, times=1)
    started = time.monotonic()
    result = roll_back("rollback", strategy_for(kube), {"rollback_timeout_seconds": 2}, tested=tested)
    assert_cut_short(time.monotonic() - started, 2, unbounded=60)  # the double trickles for a minute
    assert result.status == "failed"
    assert "read deployment/django -n prod: the Kubernetes API at http://127.0.0.1:" in result.message
    assert "did not answer within 2 s" in result.message and "ProtocolError" not in result.message


def test_an_endless_replicaset_list_is_cut_at_the_cap(kube):
    tested = state(kube)
    kube.fault("GET", "/replicasets$", endless=True, times=1)
    result = roll_back("rollback", strategy_for(kube), {"rollback_timeout_seconds": 20}, tested=tested)
    assert result.status == "failed"
    assert "the answer is over 32 MiB: not the Kubernetes API (a broken proxy?)" in result.message
    assert deployment_patches(kube) == []


def test_a_lease_held_by_another_run_is_exit_10_never_a_quiet_exit_1(kube):
    lease = json.dumps({"holder": "ci-runner/1/dead", "expires": time.time() + 600})
    kube.deployments[("prod", "django")]["metadata"]["annotations"]["pytest-smoke.dev/rollback-lease"] = lease
    result = roll_back("rollback", strategy_for(kube), FAST)
    assert result.status == "refused"
    assert "another smoke run (ci-runner/1/dead) holds the rollback lease" in result.message
    assert "this run changed nothing" in result.message
    assert exit_code(_critical_verdict(), result.status) == EXIT_ROLLBACK_FAILED
    assert deployment_patches(kube) == []


# -- targets are verified revisions only -------------------------------------------------------------


def test_a_second_failing_run_never_rolls_back_onto_a_revision_no_run_tested(tmp_path):
    from pytest_smoke.cluster.marks import verify

    api = KubeDouble().start()
    try:
        api.add_deployment("kinto", {"kinto": "kinto:26.3.0"})
        api.deploy("prod", "kinto", {"kinto": "kinto:26.4.0"})
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kc")
        verify(Kube(Target.from_settings(strategy_for(api, "kinto"))), state(api, "kinto"))  # 26.4.0 green
        api.deploy("prod", "kinto", {"kinto": "kinto:26.5.0"})
        first = roll_back("rollback", strategy_for(api, "kinto"), FAST, reason="database down")
        assert first.status == "completed" and api.images("prod", "kinto") == {"kinto": "kinto:26.4.0"}
        second = roll_back("rollback", strategy_for(api, "kinto"), FAST, reason="database down")  # still down
        assert second.status == "refused"
        assert "no earlier revision that a smoke run verified and none rejected since" in second.message
        assert "revision 1 (never verified)" in second.message
        assert api.images("prod", "kinto") == {"kinto": "kinto:26.4.0"}
        assert all(not (m.get("verified") and m.get("rejected")) for m in marks(api, "kinto").values())
    finally:
        api.stop()


# -- checked before the first request -----------------------------------------------------------------


def test_a_kube_context_that_does_not_exist_is_a_config_error_before_any_check(pytester, write_config, demo, kube):
    write_config(smoke_doc(demo, kube, strategy={"context": "prod-eu"}))
    result = run(pytester)
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "*smoke.json: rollback_strategy.context: cannot load Kubernetes credentials from kubeconfig *, "
            "context prod-eu: *"
        ]
    )
    assert demo.requests == [] and kube.requests == []


@pytest.mark.parametrize(
    "strategy, message",
    [
        (
            {"deployment": "djangoo"},
            '*rollback_strategy: read deployment/djangoo -n prod: 404 Not Found: deployments.apps "djangoo" not found*',
        ),
        (
            {"container": "web"},
            "*rollback_strategy: container 'web' is not in deployment/django -n prod (containers: django)*",
        ),
    ],
    ids=["no-such-deployment", "no-such-container"],
)
def test_a_rollback_target_that_does_not_exist_stops_the_run_before_any_check(
    pytester, write_config, demo, kube, strategy, message
):
    write_config(smoke_doc(demo, kube, strategy=strategy))
    result = run(pytester)
    assert result.ret == 4
    result.stdout.fnmatch_lines([message])
    assert demo.requests == [] and deployment_patches(kube) == []


# -- rollback: false means what the docs say -----------------------------------------------------------


def test_failures_a_rollback_false_dependency_explains_never_roll_back(pytester, write_config, demo, kube):
    doc = smoke_doc(demo, kube, confirm=False)
    from servers import free_port

    # The real psycopg client against a Postgres that is down (nothing listens on its port).
    dsn = f"postgresql://app:pg-Secret-1@127.0.0.1:{free_port()}/app"
    doc["dependency_checks"] = [
        {"name": "postgres-backend", "type": "postgres", "dsn": dsn, "rollback": False, "timeout_seconds": 2}
    ]
    doc["health_checks"].append(health("login-page", "/health/ready"))
    demo.faults.add("ready-503")  # the app's readiness fails with the database
    write_config(doc)
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - No automatic rollback (rolling back does not fix postgres-backend "
            "(rollback: false), which explains readiness, login-page)",
        ]
    )
    assert deployment_patches(kube) == [] and not any(m.get("rejected") for m in marks(kube).values())


@pytest.mark.parametrize(
    "judge", ['assert "email" in text', 'pytest.fail(f"no email in {text}")'], ids=["assert", "pytest.fail"]
)
def test_verification_re_runs_the_required_custom_test_that_caused_the_rollback(
    pytester, write_config, demo, kube, judge
):
    pytester.makepyfile(
        test_profile=f"""
        import pytest

        @pytest.mark.smoke_required
        def test_profile_has_an_email(smoke_http):
            text = smoke_http.get("/health/ready").text
            if "email" not in text:
                {judge}
    """
    )
    demo.faults.add("ready-503")
    doc = smoke_doc(demo, kube, confirm=False, strategy={"verify_after_rollback": True})
    doc["health_checks"] = [health("basic-health", "/health")]  # only the custom test fails
    write_config(doc)
    result = run(pytester, "test_profile.py", "smoke.json")
    assert result.ret == 10  # rolled back, and the test that caused it still fails
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - ROLLED BACK, STILL FAILING",
            "Verification: after rollback 1/3 required checks and failed custom tests still fail: "
            "test_profile_has_an_email: *",
        ]
    )
    assert [p for _, p in demo.requests].count("/health/ready") == 2


def test_a_deployment_running_other_than_what_the_pipeline_deployed_stands_down(pytester, write_config, demo, kube):
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirm=False))
    result = run(pytester, f"--smoke-expect-image=django={HOTFIX}")  # the pipeline shipped the hotfix; BAD runs
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            f"*deployment/django -n prod runs django={BAD}, not what the pipeline deployed (django={HOTFIX}): "
            "the checks would not test what the pipeline deployed*",
        ]
    )
    assert demo.requests == [] and deployment_patches(kube) == []
    assert run(pytester, f"--smoke-expect-image=django={BAD}").ret == 1  # what it says it deployed: judged as usual
    assert kube.images("prod", "django") == {"django": GOOD}


def test_expect_image_without_a_deployment_is_a_config_error(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("basic", "/health")]})
    result = run(pytester, "--smoke-expect-image=django")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*smoke.json: --smoke-expect-image: takes CONTAINER=IMAGE, got 'django'*"])


def test_a_required_test_pytest_cannot_run_is_inconclusive_never_a_rollback(pytester, write_config, demo, kube):
    pytester.makepyfile(
        test_async="""
        import pytest

        @pytest.mark.smoke_required
        async def test_checkout_flow(smoke_http):
            assert False, "never reached: no async plugin runs it"
    """
    )
    write_config(smoke_doc(demo, kube, confirm=False))
    result = run(pytester, "-p", "no:asyncio", "-p", "no:anyio", "test_async.py", "smoke.json")
    assert result.ret == 12  # pytest 9 fails it, pytest 8 skips it: neither is the service's answer
    result.stdout.fnmatch_lines(
        ["? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified"]
    )
    assert deployment_patches(kube) == []


# -- found by the adversarial review ------------------------------------------------------------------


def test_a_deploy_landing_between_the_stand_down_check_and_the_replan_is_never_reverted(kube):
    def approve(plan):
        # The stand-down check's ReplicaSet list is slow; the pipeline deploys a hotfix meanwhile.
        kube.fault("GET", "/replicasets$", delay=1.5, times=1)
        threading.Thread(target=lambda: (time.sleep(0.5), kube.deploy("prod", "django", {"django": HOTFIX}))).start()
        return True, "approved"

    result = roll_back("confirm", strategy_for(kube), FAST, confirm=approve, reason="readiness")
    assert result.status == "superseded", result.message
    assert kube.images("prod", "django") == {"django": HOTFIX}
    assert not [p for p in deployment_patches(kube) if "/spec/template" in json.dumps(p[2])]


def test_a_redeploy_of_the_tested_template_during_the_checks_is_a_change(pytester, write_config, demo, kube):
    from http.server import BaseHTTPRequestHandler

    from servers import LocalHTTPServer

    class DeploysTwiceWhileChecked(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if kube.revision("prod", "django") == 2:  # hotfix, then back: the template is the tested one again
                kube.deploy("prod", "django", {"django": HOTFIX})
                kube.deploy("prod", "django", {"django": BAD})
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = LocalHTTPServer(DeploysTwiceWhileChecked)
    try:
        doc = smoke_doc(demo, kube, confirm=False)
        doc.update(base_url=server.url, health_checks=[health("ready", "/ready")], critical_paths=[])
        write_config(doc)
        result = run(pytester)
    finally:
        server.stop()
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            "Reason: deployment/django -n prod changed while the checks ran "
            f"(revision 2 ({BAD}) -> revision 4 ({BAD})): *"
        ]
    )
    assert deployment_patches(kube) == []


def test_new_pods_failing_readiness_are_a_symptom_of_the_revision_not_a_rollout():
    from pytest_smoke.cluster.kube import unsettled_reason

    deployment = {
        "metadata": {"name": "web", "generation": 2, "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
        },
    }
    old = {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}, "status": {"readyReplicas": 0}}
    assert unsettled_reason(deployment, [old]) == ""  # every pod that answers runs revision 2
    old["status"]["readyReplicas"] = 1
    assert (
        unsettled_reason(deployment, [old])
        == "deployment/web is rolling out: 1 ready pod(s) of an older revision still answer"
    )


def test_the_verified_history_survives_the_pruning_of_old_replicasets(tmp_path):
    from pytest_smoke.cluster.marks import verify

    api = KubeDouble().start()
    try:
        api.add_deployment("kinto", {"kinto": "kinto:1"})
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kc")
        verify(Kube(Target.from_settings(strategy_for(api, "kinto"))), state(api, "kinto"))  # revision 1 is green
        api.deploy("prod", "kinto", {"kinto": "kinto:2-untested"})
        api.deploy("prod", "kinto", {"kinto": "kinto:3-bad"})
        for key, rs in list(api.replicasets.items()):  # revisionHistoryLimit: the controller deletes revision 1
            if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1":
                del api.replicasets[key]
        result = roll_back("rollback", strategy_for(api, "kinto"), FAST)
        assert result.status == "refused" and "revision 2 (never verified)" in result.message
        assert api.images("prod", "kinto") == {"kinto": "kinto:3-bad"}
    finally:
        api.stop()


def test_a_command_that_exits_0_but_changes_nothing_is_rollback_failed(kube):
    result = roll_back("rollback", strategy_for(kube, type="command", command=["true"]), FAST)
    assert result.status == "failed"
    assert result.message.startswith(
        f"ROLLBACK FAILED: alert ops team immediately (true exited 0, but deployment/django -n prod "
        f"still runs the tested revision 2 ({BAD})"
    )
    assert not any(m.get("rejected") for m in marks(kube).values())


def test_previous_image_restores_a_template_that_differs_in_more_than_images(tmp_path):
    api = KubeDouble().start()
    try:
        api.add_deployment("shop", {"web": "web:4"})
        api.deploy("prod", "shop", {"web": "web:4", "proxy": "envoy:1.31"})  # a sidecar added, same app image
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kc")
        result = roll_back("rollback", strategy_for(api, "shop"), FAST)
        assert result.status == "completed", result.message
        assert api.images("prod", "shop") == {"web": "web:4"}
        assert result.plan.target_images == {"proxy": "(removed)"}
        assert result.plan.manual_command == "kubectl rollout undo deployment/shop --to-revision=1 -n prod"
    finally:
        api.stop()


def test_a_rollback_due_with_no_deployment_configured_needs_a_human():
    from pytest_smoke.cluster.rollback import carry_out

    assert carry_out("dry_run", {"type": "previous-image"}, {}, confirm=None).status == "dry_run"
    result = carry_out("rollback", {"type": "previous-image"}, {}, confirm=None)
    assert result.status == "not_configured" and result.message.startswith("ROLLBACK NOT POSSIBLE")
    assert exit_code(_critical_verdict(), result.status) == EXIT_ROLLBACK_FAILED


def test_an_exec_credential_plugin_that_hangs_is_bounded_by_the_rollback_timeout(kube, tmp_path):
    token = json.dumps(
        {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "kind": "ExecCredential",
            "status": {"token": "kube-double-token-123"},
        }
    )
    doc = json.loads(kube.kubeconfig.read_text())
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "/bin/sh",
            "args": ["-c", f"sleep 30; echo '{token}'"],
            "interactiveMode": "Never",
        }
    }
    hanging = tmp_path / "exec-kubeconfig"
    hanging.write_text(json.dumps(doc))
    tested = state(kube)
    started = time.monotonic()
    result = roll_back(
        "rollback", {**strategy_for(kube), "kubeconfig": str(hanging)}, {"rollback_timeout_seconds": 1}, tested=tested
    )
    assert_cut_short(time.monotonic() - started, 1, unbounded=30)
    assert result.status == "failed"
    assert "loading Kubernetes credentials did not finish within 1 s (an exec credential plugin?)" in result.message


def test_a_lease_applied_but_answered_late_is_read_back_and_released(kube):
    kube.fault("PATCH", "/deployments/django$", apply=True, delay=4.0, times=1, body="rollback-lease")
    result = roll_back("rollback", strategy_for(kube), {"rollback_timeout_seconds": 3}, reason="readiness")
    assert result.status == "completed", result.message
    assert "pytest-smoke.dev/rollback-lease" not in kube.deployments[("prod", "django")]["metadata"]["annotations"]
