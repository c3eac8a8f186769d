"""Verdict and rollback end to end: real smoke runs against the demo service, rolling back a
Deployment on the local apps/v1 test double through the real kubernetes client and kubectl."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_smoke.cluster.kube import VERIFIED
from pytest_smoke.cluster.rollback import plan_rollback
from pytest_smoke.model import Outcome
from pytest_smoke.settings import AutoRollback
from pytest_smoke.verdict import EXIT_ROLLBACK_FAILED, classify, decide

from helpers import BAD_IMAGE as BAD
from helpers import GOOD_IMAGE as GOOD
from helpers import KUBECTL_SET_IMAGE, assert_cut_short, deployment_patches, roll_back, smoke_doc
from kube_double import KubeDouble
from servers import LocalHTTPServer

# -- the verdict, as plain Python ------------------------------------------------------------------


def outcome(status, required, name="x"):
    return Outcome(nodeid=name, name=name, kind="health", required=required, status=status)


def test_classification_rules():
    verdict = classify(
        [
            outcome("failed", True, "a"),
            outcome("failed", False, "b"),
            outcome("not_evaluated", True, "c"),
            outcome("passed", True, "d"),
        ]
    )
    assert [o.name for o in verdict.critical] == ["a"]
    assert [o.name for o in verdict.warnings] == ["b", "c"]  # not evaluated is only a warning
    assert verdict.state == "critical"


@pytest.mark.parametrize(
    "outcomes, state, verified",
    [
        ([("passed", True), ("failed", False)], "warning", True),
        ([("passed", True), ("not_evaluated", True)], "inconclusive", False),
        ([("passed", True), ("not_run", True)], "inconclusive", False),
        ([("passed", True), ("not_run", False)], "passed", True),
        ([("passed", True), ("not_selected", True)], "partial", False),
        ([("passed", True), ("skipped", True)], "partial", False),
        ([("not_selected", True)], "no_checks", False),
        ([("failed", True), ("not_evaluated", True)], "critical", False),
    ],
)
def test_three_outcomes_and_the_floor_under_them(outcomes, state, verified):
    verdict = classify([outcome(status, required, f"c{i}") for i, (status, required) in enumerate(outcomes)])
    assert (verdict.state, verdict.verified) == (state, verified)
    assert decide(verdict, AutoRollback.of({"enabled": True})).wants_rollback is (state == "critical")


@pytest.mark.parametrize(
    "critical, auto, dry_run, action",
    [
        (0, {"enabled": True}, False, "none"),
        (1, {"enabled": False}, False, "disabled"),
        (1, {"enabled": True, "critical_failure_threshold": 2}, False, "below_threshold"),
        (1, {"enabled": True}, False, "confirm"),
        (2, {"enabled": True}, False, "rollback"),
        (1, {"enabled": True, "requires_ops_confirmation": False}, False, "rollback"),
        (2, {"enabled": True}, True, "dry_run"),
    ],
)
def test_decision_table(critical, auto, dry_run, action):
    verdict = classify([outcome("failed", True, str(i)) for i in range(critical)] + [outcome("passed", True, "ok")])
    assert decide(verdict, AutoRollback.of(auto), dry_run=dry_run).action == action


# -- handlers through the real kubernetes client ---------------------------------------------------


def strategy_for(kube, **extra):
    return {
        "type": "previous-image",
        "deployment": "django",
        "namespace": "prod",
        "kubeconfig": str(kube.kubeconfig),
        **extra,
    }


def test_previous_image_plan_and_rollback(kube):
    plan = plan_rollback(strategy_for(kube))
    assert (plan.from_revision, plan.to_revision) == (2, 1)
    assert plan.current_images == {"django": BAD} and plan.target_images == {"django": GOOD}
    assert plan.manual_command == f"kubectl set image deployment/django django={GOOD} -n prod"
    progress = []
    result = roll_back(
        "rollback", strategy_for(kube), {"rollback_timeout_seconds": 20}, confirm=None, progress=progress.append
    )
    assert result.status == "completed", result.message
    assert kube.images("prod", "django") == {"django": GOOD}
    assert kube.revision("prod", "django") == 3  # the old ReplicaSet comes back as a new revision
    kind, ops = deployment_patches(kube)[0][1:]
    # The whole pod template of revision 1, guarded: only while the template is still the planned one.
    assert kind == "application/json-patch+json"
    assert ops[0]["op"] == "test" and ops[0]["path"] == "/spec/template"
    written = next(op["value"] for op in ops if op["path"] == "/spec/template" and op["op"] == "replace")
    assert written["spec"]["containers"] == [{"name": "django", "image": GOOD}]
    assert any(p.startswith("Rolling back 1/3 pods") for p in progress)
    assert progress[-1] == "Rollback complete: 3/3 pods updated and available"


def test_only_the_named_container_is_rolled_back(tmp_path):
    api = KubeDouble().start()
    try:
        api.add_deployment("shop", {"web": "web:1", "worker": "worker:1"})
        api.deploy("prod", "shop", {"web": "web:2", "worker": "worker:2"})
        kubeconfig = api.write_kubeconfig(tmp_path / "kc")
        strategy = {"deployment": "shop", "namespace": "prod", "kubeconfig": str(kubeconfig)}
        assert plan_rollback(strategy).target_images == {"web": "web:1", "worker": "worker:1"}
        result = roll_back(
            "rollback", {**strategy, "container": "worker"}, {"rollback_timeout_seconds": 20}, confirm=None
        )
        assert result.status == "completed"
        assert api.images("prod", "shop") == {"web": "web:2", "worker": "worker:1"}
    finally:
        api.stop()


def test_paused_deployment_is_refused(kube):
    kube.deployments[("prod", "django")]["spec"]["paused"] = True
    result = roll_back("rollback", strategy_for(kube), {}, confirm=None)
    assert result.status == "refused"
    assert result.message == (
        "ROLLBACK REFUSED: a rollback was due and did not happen: deployment/django is paused; "
        "resume it or roll back by hand"
    )
    assert deployment_patches(kube) == []


def test_no_earlier_revision_is_refused(tmp_path):
    api = KubeDouble().start()
    try:
        api.add_deployment("fresh", {"fresh": "fresh:1"})
        strategy = {
            "deployment": "fresh",
            "namespace": "prod",
            "kubeconfig": str(api.write_kubeconfig(tmp_path / "kc")),
        }
        result = roll_back("rollback", strategy, {}, confirm=None)
        assert result.status == "refused"
        assert "has no earlier revision to roll back to (current revision 1)" in result.message
    finally:
        api.stop()


def test_forbidden_rollback_fails_with_the_api_message(kube):
    kube.forbidden = True
    result = roll_back(
        "rollback", strategy_for(kube, max_rollback_attempts=2), {"rollback_timeout_seconds": 5}, confirm=None
    )
    assert result.status == "failed"
    assert result.message.startswith(
        "ROLLBACK FAILED: alert ops team immediately (patch deployment/django -n prod: 403 Forbidden"
    )


def test_max_rollback_attempts_bounds_the_retries(kube):
    kube.fail_patches["template"] = 500
    result = roll_back(
        "rollback", strategy_for(kube, max_rollback_attempts=3), {"rollback_timeout_seconds": 10}, confirm=None
    )
    assert result.status == "failed" and result.attempts == 3
    assert [p.split(":")[0] for p in result.progress] == [
        "attempt 1/3 failed",
        "attempt 2/3 failed",
        "attempt 3/3 failed",
    ]
    assert "500 Internal Server Error" in result.message


def test_rollout_that_never_completes_fails_within_the_rollback_timeout(kube):
    kube.stuck = True
    started = time.monotonic()
    result = roll_back("rollback", strategy_for(kube), {"rollback_timeout_seconds": 3}, confirm=None)
    assert result.status == "failed"
    assert "rollout did not finish within" in result.message
    assert_cut_short(time.monotonic() - started, 3)


def test_progress_deadline_exceeded_fails_the_rollback(kube):
    kube.deadline_exceeded = True
    result = roll_back("rollback", strategy_for(kube), {"rollback_timeout_seconds": 10}, confirm=None)
    assert result.status == "failed"
    assert "exceeded its progress deadline" in result.message


def test_rollout_undo_restores_the_whole_template_guarded_by_the_template(kube):
    result = roll_back(
        "rollback", strategy_for(kube, type="rollout-undo"), {"rollback_timeout_seconds": 20}, confirm=None
    )
    assert result.status == "completed", result.message
    assert result.plan.manual_command == "kubectl rollout undo deployment/django --to-revision=1 -n prod"
    kind, ops = deployment_patches(kube)[0][1:]
    assert kind == "application/json-patch+json"
    assert ops[0]["op"] == "test" and ops[0]["path"] == "/spec/template"
    assert kube.images("prod", "django") == {"django": GOOD}


def test_rollout_undo_does_not_overwrite_a_concurrent_change(kube):
    from pytest_smoke.cluster.rollback import get_handler

    handler = get_handler("rollout-undo")
    plan = handler.plan(
        __import__("pytest_smoke.cluster.rollback", fromlist=["target_from"]).target_from(strategy_for(kube)), {}
    )
    kube.deploy("prod", "django", {"django": "django:v1.23.0-hotfix"})  # someone else deploys meanwhile
    with pytest.raises(Exception, match="changed since the rollback was planned"):
        handler.execute(plan, {}, 10, lambda m: None)
    assert kube.images("prod", "django") == {"django": "django:v1.23.0-hotfix"}


def test_command_handler_runs_real_kubectl_without_a_shell(kube, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    strategy = strategy_for(
        kube,
        type="command",
        command=KUBECTL_SET_IMAGE,
    )
    result = roll_back("rollback", strategy, {"rollback_timeout_seconds": 30}, confirm=None)
    assert result.status == "completed", result.message
    assert result.plan.details["argv"] == [
        "kubectl",
        "set",
        "image",
        "deployment/django",
        f"django={GOOD}",
        "-n",
        "prod",
    ]
    assert kube.images("prod", "django") == {"django": GOOD}
    assert any("image updated" in p for p in result.progress)


def test_command_handler_failure_is_a_failed_rollback(kube):
    strategy = {"type": "command", "command": ["sh", "-c", "echo helm says no >&2; exit 3"]}
    result = roll_back("rollback", strategy, {"rollback_timeout_seconds": 5}, confirm=None)
    assert result.status == "failed"
    assert "sh exited with 3: helm says no" in result.message


# -- whole runs through pytest ---------------------------------------------------------------------


def run_smoke(pytester, *args):
    return pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", *args)


def test_single_critical_failure_waits_for_confirmation(pytester, write_config, demo, kube, monkeypatch):
    monkeypatch.delenv("SMOKE_CONFIRM_ROLLBACK", raising=False)
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - Rollback awaiting ops confirmation",
            "1. Health Check: readiness: /health/ready returned 503 (expected 200); failing: database: "
            "connection failed",
            "Issue: The service reports it is not ready*",
            "Rollback awaiting ops confirmation:",
            f"Current: {BAD}",
            f"Rollback to: {GOOD}",
            f"Next: To roll back now: kubectl set image deployment/django django={GOOD} -n prod",
        ]
    )
    assert deployment_patches(kube) == []


@pytest.mark.parametrize("how", ["flag", "env"])
def test_confirmed_rollback_completes(pytester, write_config, demo, kube, monkeypatch, how):
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube))
    if how == "env":
        monkeypatch.setenv("SMOKE_CONFIRM_ROLLBACK", "1")
        result = run_smoke(pytester)
    else:
        result = run_smoke(pytester, "--smoke-confirm-rollback")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["✗ CRITICAL: Smoke tests failed - Rollback completed", "Status: Rollback complete: 3/3 pods*"]
    )
    assert kube.images("prod", "django") == {"django": GOOD}


def test_multiple_failures_roll_back_immediately(pytester, write_config, demo, kube, monkeypatch):
    monkeypatch.delenv("SMOKE_CONFIRM_ROLLBACK", raising=False)
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["smoke: multiple failures detected (2 critical): immediate rollback: rolling back"])
    assert kube.images("prod", "django") == {"django": GOOD}
    assert len(deployment_patches(kube)) == 1


def test_optional_timeout_is_a_warning_and_the_deployment_continues(pytester, write_config, demo, kube):
    demo.faults.add("live-hang")
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "⚠ WARNING: Non-critical test failed (deployment continues)",
            "- Health Check liveness: GET http://127.0.0.1:*/health/live: timed out after 1 s* (non-critical)",
        ]
    )
    assert deployment_patches(kube) == []


def test_test_execution_error_is_a_warning_and_never_rolls_back(pytester, write_config, demo, kube):
    write_config(smoke_doc(demo, kube))
    pytester.makepyfile(
        test_custom="""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture could not reach the vault")

        @pytest.mark.smoke_required
        def test_needs_vault(broken):
            pass
        """
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "--smoke-confirm-rollback")
    # Never a rollback, and never a green gate: the required test did not get to judge the deploy.
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            "? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified",
            "1. Smoke Test: test_needs_vault: not evaluated: setup error: *fixture could not reach the vault*",
        ]
    )
    assert deployment_patches(kube) == []
    assert all(
        not rs["metadata"].get("annotations", {}).get("pytest-smoke.dev/verified") for rs in kube.replicasets.values()
    )


def test_custom_required_test_failure_is_critical(pytester, write_config, demo, kube):
    write_config(smoke_doc(demo, kube))
    pytester.makepyfile(
        test_custom="""
        import pytest

        @pytest.mark.smoke_required
        def test_checkout():
            assert False, "checkout returned an empty cart"

        def test_unmarked():
            assert False, "unmarked tests count as optional"
        """
    )
    result = run_smoke(pytester, "--smoke-no-rollback")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["1. Smoke Test: test_checkout: AssertionError: checkout returned an empty cart*", "- test_unmarked: *"]
    )


def test_rollback_failure_has_its_own_exit_code(pytester, write_config, demo, kube):
    kube.fail_patches["template"] = 500  # the API refuses the rollback's write itself
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester, "--smoke-confirm-rollback")
    assert result.ret == EXIT_ROLLBACK_FAILED
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - ROLLBACK FAILED",
            "ROLLBACK FAILED: alert ops team immediately (patch deployment/django -n prod: 500 *",
        ]
    )


def test_credentials_that_may_not_patch_stop_the_run_before_any_check(pytester, write_config, demo, kube):
    kube.forbidden = True  # RBAC: get, but no patch (checked by a server-side dry run)
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester, "--smoke-confirm-rollback")
    assert result.ret == 4
    result.stdout.fnmatch_lines(
        [
            "*smoke: rollback_strategy: patch deployment/django -n prod (dry run): 403 Forbidden*"
            "no check was run and nothing was rolled back*"
        ]
    )
    assert demo.requests == []  # not one request reached the service
    assert deployment_patches(kube) == []


def test_dry_run_reports_the_plan_and_changes_nothing(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester, "--smoke-no-rollback")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["Dry run (--smoke-no-rollback): rollback NOT performed:", f"Rollback to: {GOOD}"])
    assert deployment_patches(kube) == []


def test_below_threshold_does_not_roll_back(pytester, write_config, demo, kube):
    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, threshold=2))
    result = run_smoke(pytester, "--smoke-confirm-rollback")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*No automatic rollback (1 critical failure(s), below the threshold of 2)"])
    assert deployment_patches(kube) == []


class ApprovalServer:
    def __init__(self, answers):
        self.answers = list(answers)
        self.polls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.polls += 1
                answer = outer.answers[min(outer.polls - 1, len(outer.answers) - 1)]
                status, body = (
                    answer if isinstance(answer, tuple) else (answer, b'{"approved": true}' if answer == 200 else b"")
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = LocalHTTPServer(Handler, "/gate/confirm-rollback")
        self.url = self.http.url

    def stop(self):
        self.http.stop()


@pytest.mark.parametrize(
    "answers, rolled_back, message",
    [
        ([404, 404, 200], True, "Confirmation: approved through the approval URL"),
        ([404, 403], False, "Confirmation: denied through the approval URL (403)"),
        ([503], False, "Confirmation: approval URL did not approve within 3 s (last: HTTP 503)"),
        (
            [(200, b'{"approved": false}')],
            False,
            'Confirmation: approval URL did not approve within 3 s (last: HTTP 200, "approved" is false)',
        ),
        (
            [(200, b'{"approved": true, "revision": 7}')],
            False,
            "Confirmation: not approved: the approval names revision 7, this rollback moves away from revision 2",
        ),
    ],
    ids=["200", "403", "503", "approved-false", "other-revision"],
)
def test_approval_url_gate(pytester, write_config, demo, kube, monkeypatch, answers, rolled_back, message):
    monkeypatch.delenv("SMOKE_CONFIRM_ROLLBACK", raising=False)
    gate = ApprovalServer(answers)
    try:
        demo.faults.add("ready-503")
        write_config(smoke_doc(demo, kube, approval_url=gate.url))
        result = run_smoke(pytester)
    finally:
        gate.stop()
    result.stdout.fnmatch_lines([message])
    assert (kube.images("prod", "django") == {"django": GOOD}) is rolled_back


def test_green_run_marks_the_revision_verified_and_a_later_rollback_prefers_it(pytester, write_config, demo, kube):
    # Revision 2 (BAD image name, but healthy today) passes and is marked verified.
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["✓ Smoke tests passed*", "Note: marked revision 2 of deployment/django -n prod as verified"]
    )
    live = [
        rs for rs in kube.owned_replicasets("prod", "django") if rs["metadata"]["annotations"].get(VERIFIED) == "true"
    ]
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in live] == [BAD]
    # Two bad deploys follow; the rollback skips revision 3 and goes to verified revision 2.
    kube.deploy("prod", "django", {"django": "django:v1.23.0"})
    kube.deploy("prod", "django", {"django": "django:v1.24.0"})
    demo.faults.update({"ready-503", "login-500"})
    result = run_smoke(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["Revision: 4 -> 2 (verified by an earlier green smoke run)"])
    assert kube.images("prod", "django") == {"django": BAD}


def test_xdist_rolls_back_exactly_once(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube))
    result = run_smoke(pytester, "-n", "2")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ CRITICAL: Smoke tests failed - Rollback completed"])
    assert len(deployment_patches(kube)) == 1
    assert result.stdout.str().count("CRITICAL FAILURES:") == 1


@pytest.mark.parametrize(
    "extra_args, test_file, expected_ret",
    [
        (["-k", "no_such_check"], None, pytest.ExitCode.NO_TESTS_COLLECTED),
        ([], "import nonexistent_module_xyz\n", pytest.ExitCode.INTERRUPTED),
    ],
)
def test_no_rollback_without_a_real_verdict(pytester, write_config, demo, kube, extra_args, test_file, expected_ret):
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube))
    if test_file:
        pytester.makepyfile(test_broken=test_file)
    result = run_smoke(pytester, "--smoke-confirm-rollback", *extra_args)
    assert result.ret == expected_ret
    assert deployment_patches(kube) == []


def test_keyboard_interrupt_never_rolls_back(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube))
    pytester.makeconftest(
        """
        def pytest_runtest_logreport(report):
            if report.when == "call" and "user-login" in report.nodeid:
                raise KeyboardInterrupt
        """
    )
    # A subprocess: in process, pytester re-raises the child's Ctrl-C in the test.
    result = pytester.runpytest_subprocess("--smoke-config", "smoke.json", "--smoke-confirm-rollback")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert deployment_patches(kube) == []


def test_decision_hook_can_veto(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube))
    pytester.makeconftest(
        """
        from pytest_smoke.model import Decision

        results = []

        def pytest_smoke_decision(config, verdict, decision):
            return Decision("vetoed", "change freeze: page the service owner instead")

        def pytest_smoke_rollback_result(config, verdict, decision, result):
            print("HOOK-RESULT", decision.action, result)
        """
    )
    result = run_smoke(pytester, "-s")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*HOOK-RESULT vetoed None", "*No automatic rollback (change freeze: page the service owner instead)"]
    )
    assert deployment_patches(kube) == []


def test_verify_after_rollback_reruns_the_required_checks(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "login-500"})
    write_config(smoke_doc(demo, kube, strategy={"verify_after_rollback": True}))
    result = run_smoke(pytester)
    # The demo keeps its faults after the rollback: the version rolled back to is broken too, and a
    # human must act now (exit 10), naming what still fails.
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed - ROLLED BACK, STILL FAILING",
            "ROLLED BACK, STILL FAILING: alert ops team immediately:",
            "Verification: after rollback 2/3 required checks still fail: health[[]readiness[]]: *",
        ]
    )
    assert [p for _, p in demo.requests].count("/health/ready") == 2


@pytest.mark.parametrize("answer, rolled_back", [(b"y\n", True), (b"n\n", False)])
def test_confirmation_prompt_on_a_terminal(pytester, write_config, demo, kube, answer, rolled_back):
    """A person at a terminal answers the [y/N] prompt (a real pseudo-terminal, no CI variable)."""
    import os
    import pty
    import select
    import sys

    demo.faults.add("ready-503")
    write_config(smoke_doc(demo, kube, confirmation_timeout_seconds=20))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SMOKE_CONFIRM_ROLLBACK")}
    pid, master = pty.fork()
    if pid == 0:  # the child: pytest with the pty as its controlling terminal
        os.chdir(pytester.path)
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--smoke-config", "smoke.json"],
            env,
        )
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(master, answer)
                answered = True
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(master)
    assert answered, output.decode(errors="replace")[-2000:]
    assert os.waitstatus_to_exitcode(status) == 1
    text = output.decode(errors="replace")
    assert ("Confirmation: confirmed at the terminal" in text) is rolled_back
    assert (kube.images("prod", "django") == {"django": GOOD}) is rolled_back
    if not rolled_back:
        assert "Confirmation: declined at the terminal" in text
