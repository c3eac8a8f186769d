"""Direct unit tests of the plain-Python layers: the scheduler, error description, rollout
progress and the redactor, without pytester (the behaviour users see is tested end to end elsewhere)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from pytest_smoke.checks.base import CheckFailed, CheckResult, CheckTimeout, Deadline
from pytest_smoke.checks.http import describe_error
from pytest_smoke.checks.scheduler import CheckScheduler, NotFinished, NotStarted
from pytest_smoke.cluster.kube import KubeError, describe_progress, rollout_progress
from pytest_smoke.redact import Redactor, shorten

from helpers import assert_cut_short

# -- the scheduler ---------------------------------------------------------------------------------


def test_fail_fast_cancelling_from_a_pool_thread_while_items_take_their_results():
    """An item takes its result (and the scheduler forgets the future) while a failing check, on a
    pool thread, cancels what has not started: neither may break the other. Before, the cancel
    walked the live dict and could raise "dictionary changed size during iteration", turning the
    critical failure that asked for fail_fast into an error of the runner."""
    scheduler = CheckScheduler(max_workers=4)
    problems: list[BaseException] = []
    taking = threading.Event()

    def canceller():
        assert taking.wait(timeout=10)
        for _ in range(200):
            try:
                scheduler.cancel_pending("fail_fast")
            except BaseException as exc:  # noqa: B036 - whatever escapes is the finding
                problems.append(exc)
        return CheckResult(summary="cancelled")

    for index in range(3000):
        scheduler.submit(index, lambda: CheckResult(summary="ok"))
    scheduler.submit("canceller", canceller)
    deadline = time.monotonic() + 10
    while scheduler.seconds(2999) is None and time.monotonic() < deadline:  # the last one has run
        time.sleep(0.01)
    taking.set()
    results = []
    for index in range(3000):
        results.append(scheduler.result(index, timeout=5))  # each forgets its future
        time.sleep(0)  # as pytest's loop between items: the canceller runs meanwhile
    assert scheduler.result("canceller", timeout=10).summary == "cancelled"
    scheduler.shutdown()
    assert problems == []
    assert len(results) == 3000 and "canceller" in scheduler and 2999 in scheduler  # still known as submitted


class InFlight:
    """Counts calls in flight at once; each call waits until ``release`` is set (bounded)."""

    def __init__(self):
        self.now = self.most = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def call(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            self.release.wait(timeout=5)
            return CheckResult(summary="ok")
        finally:
            with self.lock:
                self.now -= 1


def test_the_per_host_limit_holds_while_the_pool_is_wider():
    scheduler, calls = CheckScheduler(max_workers=6, per_host=2), InFlight()
    try:
        for i in range(6):
            scheduler.submit(i, calls.call, host="127.0.0.1:1")
        time.sleep(0.3)  # every worker has had the chance to start
        assert calls.most == 2
        calls.release.set()
        assert all(scheduler.result(i).summary == "ok" for i in range(6))
    finally:
        calls.release.set()
        scheduler.shutdown()


def retried_alone(slow_first: bool):
    """A check that times out beside a neighbour the host answers meanwhile, then passes alone."""
    scheduler, crowd = CheckScheduler(max_workers=2, per_host=2), threading.Event()
    attempts = []

    started = threading.Event()

    def slow_neighbour():
        started.wait(timeout=5)  # both in flight at once
        crowd.set()
        return CheckResult(summary="neighbour ok")

    def times_out_in_a_crowd():
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            started.set()
            crowd.wait(timeout=5)
            time.sleep(0.3)  # the neighbour answered meanwhile: the host is not silent
            raise CheckTimeout(1, "GET /slow")
        return CheckResult(summary="ok alone")

    order = [("slow", times_out_in_a_crowd), ("neighbour", slow_neighbour)]
    try:
        for key, check in order if slow_first else order[::-1]:
            scheduler.submit(key, check, host="h:80")
        result = scheduler.result("slow")
    finally:
        scheduler.shutdown()
    assert len(attempts) == 2
    return result, scheduler


def test_a_timeout_among_as_many_as_the_host_answered_is_retried_alone_and_says_so():
    # The neighbour was sent second and answered in time: the host took two at once, so the pass
    # alone is a warning, naming both explanations and the likelier one.
    result, _ = retried_alone(slow_first=True)
    assert result.warnings[0].startswith(
        "timed out while 1 other request of ours to h:80 was in flight or unanswered, then passed when retried alone: "
        "either h:80 could not take "
        "2 requests at once (its limit is now 2), or one of its backends hangs (1 of 3 requests to it timed out)"
    )


def test_a_timeout_among_more_than_the_host_answered_is_retried_quietly():
    # Sent as the second in flight when the host had answered only one at a time: our probing's
    # timeout. The pass is a pass, its summary says how, and the verdict's note counts it.
    result, scheduler = retried_alone(slow_first=False)
    assert result.warnings == []
    assert result.summary == (
        "ok alone (passed when retried alone: the first attempt timed out as one of 2 checks in flight "
        "to h:80, more than it had answered in time at once)"
    )
    assert scheduler.host_limits(notable_only=True) == {
        "h:80": "2 at once (max_concurrency_per_host); "
        "1 timed out among more checks than it had answered in time at once and passed when retried alone"
    }


def test_a_failure_that_is_not_a_timeout_is_never_retried():
    scheduler, calls = CheckScheduler(max_workers=2, per_host=2), []

    def refused():
        calls.append(1)
        raise CheckFailed("connection refused at h:80", kind="connection_refused")

    try:
        scheduler.submit("a", refused, host="h:80")
        with pytest.raises(CheckFailed, match="connection refused"):
            scheduler.result("a")
    finally:
        scheduler.shutdown()
    assert calls == [1]


def test_cancelled_checks_are_not_started_and_say_why():
    scheduler, calls = CheckScheduler(max_workers=1), InFlight()
    try:
        scheduler.submit("running", calls.call)
        scheduler.submit("queued", calls.call)
        scheduler.cancel_pending("fail_fast after the critical failure of readiness")
        calls.release.set()
        with pytest.raises(NotStarted, match="fail_fast after the critical failure of readiness"):
            scheduler.result("queued")
    finally:
        calls.release.set()
        scheduler.shutdown()


def test_abandoning_stops_waiting_for_a_check_in_flight():
    scheduler, calls = CheckScheduler(max_workers=1), InFlight()
    try:
        scheduler.submit("in-flight", calls.call)  # would wait up to 5 s for release
        scheduler.submit("queued", calls.call)
        deadline = time.monotonic() + 2
        while calls.now == 0 and time.monotonic() < deadline:  # until the first one is in flight
            time.sleep(0.01)
        scheduler.abandon("fail_fast: a rollback is due after the critical failure of readiness")
        with pytest.raises(NotFinished, match="fail_fast: a rollback is due"):
            scheduler.result("in-flight")
        with pytest.raises(NotStarted):
            scheduler.result("queued")
    finally:
        calls.release.set()
        scheduler.shutdown()


# -- error description -----------------------------------------------------------------------------


def test_a_closed_port_is_described_as_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/health"
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=2)
    failure = describe_error(caught.value, url, Deadline(2), "GET /health")
    assert (failure.reason, failure.kind) == (f"connection refused at 127.0.0.1:{port}", "connection_refused")


def test_a_server_that_never_answers_is_a_timeout_naming_the_request():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection in the kernel, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/health"
        with pytest.raises(requests.RequestException) as caught:
            requests.get(url, timeout=0.3)
    failure = describe_error(caught.value, url, Deadline(0.3), "GET /health")
    assert isinstance(failure, CheckTimeout)
    assert failure.reason == "GET /health: timed out after 0.3 s"


# -- rollout progress ------------------------------------------------------------------------------


def deployment(generation=2, observed=2, replicas=3, updated=3, total=3, available=3, conditions=()):
    return {
        "metadata": {"name": "django", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


@pytest.mark.parametrize(
    "state, line",
    [
        (deployment(observed=1), "waiting for the rollback to be observed"),
        (deployment(updated=1, total=3, available=1), "Rolling back 1/3 pods..."),
        (deployment(total=5), "Rolling back 3/3 pods (2 old pods terminating)..."),
        (deployment(available=2), "Rolling back: 2 of 3 updated pods available..."),
        (deployment(), "Rollback complete: 3/3 pods updated and available"),
    ],
    ids=["unobserved", "updating", "terminating", "unavailable", "done"],
)
def test_rollout_progress_reads_like_kubectl_rollout_status(state, line):
    assert describe_progress(rollout_progress(state)) == line


def test_a_progress_deadline_exceeded_is_an_error_not_a_wait():
    dead = deployment(updated=1, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(KubeError, match="deployment/django exceeded its progress deadline"):
        rollout_progress(dead)


# -- the redactor ----------------------------------------------------------------------------------


def test_the_redactor_masks_every_occurrence_and_keeps_the_rest():
    redactor = Redactor(["s3cret-token-42"])
    assert redactor.text("a s3cret-token-42 b s3cret-token-42") == "a *** b ***"
    assert redactor.value({"headers": {"X-Token": "anything"}, "note": "s3cret-token-42!"}) == {
        "headers": {"X-Token": "***"},
        "note": "***!",
    }


def test_a_cut_never_keeps_a_secret_prefix():
    redactor = Redactor(["s3cret-token-42"])
    assert (
        redactor.excerpt("x" * 20 + "s3cret-token-42" + "y" * 40, 30) == "x" * 20 + "***" + "yyyy..."
    )  # redact, then cut
    assert redactor.text(shorten("y" * 150 + " s3cret-token-42", 160)) == "y" * 150 + " ***..."


# -- the redactor against what pytest does to long values -------------------------------------------


def test_a_secret_cut_in_the_middle_is_masked_on_both_sides_of_the_cut():
    token = "eyJ" + "A" * 100 + "MIDDLE" + "B" * 100 + "TAILSIGNATUREzq7" + "C" * 60
    shown = Redactor([token]).text(f"assert 'Bearer {token[:40]}...{token[-90:]}' != auth")
    assert shown == "assert 'Bearer ***...***' != auth"


def test_a_secret_with_spaces_that_pprint_split_over_lines_is_masked():
    phrase = "correct horse battery staple orbit velvet quantum marmalade zebra lantern"
    locals_shown = (
        "data = {'X-Pass': 'correct horse battery staple orbit velvet quantum marmalade zebra '\n"
        "           'lantern', 'Host': 'a'}"
    )
    assert Redactor([phrase]).text(locals_shown) == "data = {'X-Pass': '***', 'Host': 'a'}"
    assert Redactor([phrase]).text("a = 'one two'\nb = 'three'") == "a = 'one two'\nb = 'three'"


def test_a_raw_json_body_in_a_curl_line_is_masked_by_key():
    from pytest_smoke.checks.http import curl_command

    with requests.Session() as session:
        line = curl_command(
            Redactor(),
            "POST",
            "http://127.0.0.1:1/token",
            session=session,
            body='{"refresh_token": "rt-wxyz-3391", "user": "a"}',
            content_type="application/json",
        )
    assert "rt-wxyz-3391" not in line and '"refresh_token": "***"' in line and "Content-Type: application/json" in line


def test_a_secret_learned_after_a_text_was_redacted_is_masked_the_next_time():
    redactor = Redactor()
    line = "POST /login answered 500: session rt-7781-zzqp expired"
    assert redactor.text(line) == line  # remembered as harmless
    redactor.add("rt-7781-zzqp")  # a step saved it as a secret
    assert redactor.text(line) == "POST /login answered 500: session *** expired"


@pytest.mark.parametrize(
    "text",
    ["PASSWORD=hunter22", "paſſword=hunter22", "url postgres://app:hunter22@db/x", "Authorization: Bearer hunter22.x"],
)
def test_secret_shapes_are_masked_whatever_the_case(text):
    assert "hunter22" not in Redactor().text(text)


# -- helper threads --------------------------------------------------------------------------------


def test_helper_threads_are_reused_and_a_hung_exchange_does_not_hold_up_the_next(monkeypatch):
    import pytest_smoke.checks.base as base

    pool = base.HelperThreads()
    monkeypatch.setattr(base, "HELPERS", pool)
    release = threading.Event()
    used = set()
    try:
        for _ in range(20):  # one exchange after another: one thread serves them all
            base.run_with_deadline(lambda: used.add(threading.get_ident()), Deadline(2), what="quick")
            time.sleep(0.002)  # the thread goes back to the pool after it answers
        assert len(used) == 1
        # A hung exchange keeps its thread; the next one gets another and answers at once.
        with pytest.raises(CheckTimeout):
            base.run_with_deadline(lambda: release.wait(10), Deadline(0.1), what="hung")
        other = base.run_with_deadline(lambda: threading.get_ident(), Deadline(2), what="next")
        assert other not in used
        used.add(other)
    finally:
        release.set()
        time.sleep(0.05)
        pool.close_idle()
    assert [t.name for t in threading.enumerate() if t.ident in used] == []


def test_waiting_for_a_pooled_check_is_bounded_even_when_the_check_overruns_its_deadline():
    release = threading.Event()
    scheduler = CheckScheduler(max_workers=1)
    try:
        scheduler.submit("stuck", lambda: release.wait(10))
        started = time.monotonic()
        with pytest.raises(NotFinished) as caught:
            scheduler.result("stuck", timeout=0.3)
        assert_cut_short(time.monotonic() - started, 0.3, unbounded=10)
        assert (
            caught.value.reason
            == "no result within 0.3 s (the run budget and a backstop): the check overran its own deadline"
        )
    finally:
        release.set()
        scheduler.shutdown()


# -- the decision layer: outcomes from reports, without pytest ------------------------------------


def _tally(*checks):
    from pytest_smoke.decision import Selection, Tally
    from pytest_smoke.model import Timeline

    return Tally(Selection(path_names=("smoke.json",), shown_path="smoke.json", checks=checks), Redactor(), Timeline())


def test_the_tally_turns_reports_into_the_verdicts_outcomes():
    from pytest_smoke.decision import PhaseReport
    from pytest_smoke.model import Check
    from pytest_smoke.verdict import classify

    ready, live, login = (Check.of("health", {"name": n}, order=i) for i, n in enumerate(("ready", "live", "login")))
    tally = _tally(ready, live, login)
    node = "smoke.json::health[{}]".format
    tally.collected(
        [
            (node("ready"), {"required": True, "order": 0}),
            (node("live"), {"required": True, "order": 1}),
            ("test_api.py::test_orders", {}),
        ]
    )
    props = {"required": True, "kind": "health", "name": "ready", "outcome": "failed", "reason": "/ready returned 503"}
    tally.record(PhaseReport(node("ready"), "call", "rerun", props, reason="503"))
    tally.record(PhaseReport(node("ready"), "call", "failed", props, reason="503"))
    # A crashed xdist worker's report carries no properties: the config says the check is required.
    tally.record(PhaseReport(node("live"), "???", "failed", {}, reason="worker 'gw1' crashed"))
    verdict = classify(tally.all_outcomes())
    by_name = {o.name: o for o in verdict.outcomes}
    assert by_name["ready"].status == "failed" and by_name["ready"].reason == "/ready returned 503 (also on 1 rerun(s))"
    assert by_name["live"].status == "not_evaluated" and by_name["live"].required
    assert by_name["live"].reason.startswith("not evaluated: its worker crashed (worker 'gw1' crashed)")
    assert by_name["login"].status == "not_selected"  # in the config, never selected
    assert (
        by_name["test_orders"].status == "not_run" and not by_name["test_orders"].required
    )  # its marker said optional
    assert verdict.state == "critical" and [o.name for o in verdict.rollback_failures] == ["ready"]
    # The verdict classifies copies: the tally's outcomes are not changed by it.
    assert classify(tally.all_outcomes()).outcomes[0] is not verdict.outcomes[0]


def test_a_failed_subtest_fails_its_passing_test_and_a_dependency_explains_the_rest():
    from pytest_smoke.decision import PhaseReport
    from pytest_smoke.verdict import classify

    tally = _tally()
    custom = {"required": True, "kind": "custom", "name": "test_fields"}
    db = {"required": True, "kind": "dependency", "name": "db", "outcome": "failed", "reason": "refused"}
    tally.collected([("t.py::test_fields", custom), ("smoke.json::dependency[db]", db)])
    tally.record(
        PhaseReport("t.py::test_fields", "call", "failed", custom, reason="AssertionError: status 500", subtest=True)
    )
    tally.record(PhaseReport("t.py::test_fields", "call", "passed", custom))
    tally.record(PhaseReport("smoke.json::dependency[db]", "call", "failed", db))
    verdict = classify(tally.all_outcomes())
    fields = next(o for o in verdict.outcomes if o.name == "test_fields")
    assert fields.status == "failed" and fields.reason == "1 failed subtest(s): AssertionError: status 500"
    assert fields.attributed_to == "db"  # the failed dependency is the likely cause
    assert [o.name for o in verdict.rollback_failures] == ["db"]
    assert all(not o.attributed_to for o in tally.outcomes.values())  # set on the verdict's copies only


def test_the_fleet_ledger_caps_rollbacks_and_counts_a_shared_outage_once(tmp_path):
    from pytest_smoke.decision import ledger

    path = ledger.path_for(tmp_path, "r1")
    ledger.create(path, max_rollbacks=1, run_id="r1")
    db = "postgres://db:5432/orders"
    claim = ledger.Claim
    assert ledger.settle(path, claim("r1", "a", (db,), True, (db,))) == ""  # first: rolls back
    assert "failed in another target of the fleet too" in ledger.settle(path, claim("r1", "b", (db,), True, (db,)))
    assert "max_rollbacks (1)" in ledger.settle(
        path, claim("r1", "c", (), True, (None,))
    )  # its own cause, over the cap
    assert ledger.settle(path, claim("r1", "d", (db,), False, ())) == ""  # nothing due: only recorded
    assert ledger.settle(path, claim("r1", "a", (db,), True, (db,))) == ""  # a target's own claim is not a second one
    with pytest.raises(ValueError, match="fleet run 'r1'"):  # another run's ledger
        ledger.settle(path, claim("r2", "e", (), True, (None,)))
    with pytest.raises(FileExistsError):  # a run id is used once: a second run cannot reset the cap
        ledger.create(path, max_rollbacks=5, run_id="r1")
    for planted in ('{"version": 99}', '{"version": 1}', '{"version": 1, "run_id": "r1", "max_rollbacks": null}'):
        path.write_text(planted)
        with pytest.raises(ValueError):
            ledger.settle(path, claim("r1", "e", (), True, (None,)))
    assert ledger.path_for(tmp_path, "../../etc/x").parent == tmp_path


def test_a_command_rollback_reads_the_kubeconfig_the_plugins_own_client_read(tmp_path, monkeypatch):
    from pytest_smoke.cluster.kube import kubeconfig_path
    from pytest_smoke.cluster.rollback.command import _environment
    from pytest_smoke.model import Plan, Target

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("KUBECONFIG", "/elsewhere/kubeconfig")
    written = Target(deployment="web", kubeconfig=str(tmp_path / "target-kubeconfig"))
    assert _environment(Plan(handler="command", target=written, manual_command=""), {})["KUBECONFIG"] == str(
        tmp_path / "target-kubeconfig"
    )
    unnamed = Target(deployment="web")
    assert kubeconfig_path(unnamed) == "/elsewhere/kubeconfig"  # kubectl's order: $KUBECONFIG next
    monkeypatch.delenv("KUBECONFIG")
    assert kubeconfig_path(unnamed) is None  # in cluster: the service account, for both
    assert "KUBECONFIG" not in _environment(Plan(handler="command", target=unnamed, manual_command=""), {})
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("{}")
    assert kubeconfig_path(unnamed) == str(tmp_path / ".kube" / "config")


def test_fleet_text_from_reports_stays_text_in_every_output():
    from pytest_smoke.fleet.render import _demoted, one_line

    assert one_line("ok\n✓ all 3 targets passed\x1b[2J\u202e") == "ok\\n✓ all 3 targets passed\\x1b[2J\\u202e"
    report = "## Verdict\n```bash\n## a comment in the command\n```\n### Rollback\n## Next"
    assert _demoted(report) == "#### Verdict\n```bash\n## a comment in the command\n```\n##### Rollback\n#### Next"


def test_a_wave_gate_stays_closed_when_an_earlier_wave_failed(capsys):
    from pytest_smoke.fleet.__main__ import _gate
    from pytest_smoke.fleet.merge import FleetResult, TargetResult

    verified = {"verdict": {"verified": True}}
    result = FleetResult(
        config="fleet.yaml",
        digest="sha256:0",
        run_id="r",
        targets=[
            TargetResult("canary", {}, 1, "critical", 1, "✗ CRITICAL"),
            TargetResult("main", {}, 2, "passed", 0, "✓ passed", report=verified),  # ran anyway
        ],
    )
    assert _gate(result, 2) == 1
    assert "gate: wave 2 is closed: wave 1 did not pass" in capsys.readouterr().out


def test_an_escaped_context_placeholder_does_not_name_the_context(tmp_path):
    import json

    from pytest_smoke.config import ConfigError, load_config

    path = tmp_path / "smoke.json"
    strategy = {
        "type": "command",
        "context": "a",
        "command": ["kubectl", "--context", "{{context}}", "rollout", "undo"],
    }
    path.write_text(json.dumps({"health_checks": [{"name": "h", "endpoint": "/h"}], "rollback_strategy": strategy}))
    with pytest.raises(ConfigError, match="the command does not name it: pass {context}"):
        load_config(path, env={})
