"""Once-per-run work on the controller: tally outcomes, decide, roll back, mark verified.

Registered only in the controlling process (never in an xdist worker, never under
``--collect-only``), so the verdict and any rollback happen exactly once per run. The controller
never collects under xdist: each report carries its check's required/optional status in
``user_properties``; a crashed worker's report, which carries none, is matched back to the config.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from typing import Any, Generator

import pytest

from ..checks import CheckFailed, CheckNotEvaluated, is_service_failure
from ..checks.http import printable
from ..cluster import rollout_wait
from ..cluster.kube import Kube, KubeCredentialsError, KubeError, KubeUsageError, check_rollback_access, image_mismatch
from ..cluster.rollback import RollbackInterrupted
from ..config import SmokeConfig
from ..decision import DecisionInputs, PhaseReport, Selection, Tally, ledger, shared_ledger
from ..decision import run as run_decision
from ..model import (
    STATUS_FAILED,
    STATUS_NOT_EVALUATED,
    STATUS_PASSED,
    Decision,
    RunSummary,
    Status,
    Target,
    Timeline,
    decode,
)
from ..redact import MASK, Redactor, is_secret_name, shorten
from ..report.shape import ReportDocument
from ..report.terminal import render
from ..verdict import EXIT_INCONCLUSIVE, EXIT_ROLLOUT_NOT_READY, EXIT_USAGE, classify, exit_code
from . import publish
from .execution import lf_filtered, why_never_collected
from .reporters import allure_loaded
from .run import smoke_run_key

SHALLOW_NOTE = (
    "every required check is a GET of a health endpoint: a health endpoint that touches nothing passes with the "
    "database gone; add a critical path that reads through the API, or a dependency check (docs: writing-checks.md, "
    '"Recipe: an app whose health endpoint is static")'
)
TESTED_READ_ATTEMPTS = 3  # reading what is deployed as the checks start: a passing 503 is retried
SUBTEST_REPORTS = ("SubtestReport", "SubTestReport")  # pytest 9's own, and pytest-subtests's
# How pytest and xdist word a stop the user asked for: -x / --maxfail, and --sw (stepwise).
STOPS_ASKED_FOR = ("stopping after", "Test failed, continuing from this test next run")
NOT_EVALUATED_STATUSES = (
    pytest.ExitCode.INTERRUPTED,
    pytest.ExitCode.INTERNAL_ERROR,
    pytest.ExitCode.USAGE_ERROR,
)


class SmokeController:
    def __init__(self, config: pytest.Config, smoke: SmokeConfig, redactor: Redactor):
        self.config = config
        self.smoke = smoke
        self.redactor = redactor
        self.timeline = Timeline()
        path = smoke.path
        # A fleet target's checks sit under its name: fleet.yaml::eu-west-1::health[readiness].
        under = f"::{smoke.target.name}" if smoke.target is not None else ""
        selection = Selection(
            path_names=(path.name + under, path.resolve().name + under),
            shown_path=str(path) + under,
            checks=tuple(smoke.checks),
            enabled=smoke.enabled,
            # In a fleet session's target process, the session selected: it says why.
            never_collected=config.getoption("smoke_left_out") or why_never_collected(config),
            unknown_left_out=config.getoption("smoke_left_out_unknown")
            or (
                "--lf ran only what failed last time; "
                "the tests it did not collect (required ones among them) are unknown"
                if lf_filtered(config)
                else ""
            ),
        )
        self.tally = Tally(selection, redactor, self.timeline)
        self.interrupt_message = ""
        self.collection_errors = 0
        self.summary: RunSummary | None = None
        self.document: ReportDocument | None = None  # the report document, once published
        self.monitoring: list[dict[str, Any]] = []  # the metrics file and push, once published
        self.rollout_failure: str | None = None
        self.tested: Any = None  # DeploymentState when the checks started: a rollback acts only on it
        self.tested_error = ""  # why it could not be read
        self.rollout_failure_status = EXIT_ROLLOUT_NOT_READY
        self.start_notes: list[str] = []
        # SIGTERM (a Job deleted, a pipeline cancelled) means: during the checks, stop like Ctrl-C
        # (reports, no rollback); during the rollback, report the state and alert; afterwards,
        # finish writing reports.
        self.phase = "checks"
        self.elsewhere: Any = None  # reporters.VerdictElsewhere: the verdict in other tools' reports
        self._previous_sigterm: Any = None
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def pytest_unconfigure(self) -> None:
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.phase == "checks":
            raise KeyboardInterrupt(name)
        if self.phase == "rollback":
            raise RollbackInterrupted(f"interrupted by {name} during the rollback")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """Before the first check, in this process only: wait for the rollout (--smoke-wait-rollout),
        then record what is deployed. The checks (and the run budget) start when this returns."""
        self._wait_for_rollout()
        self.record_tested_revision()
        self._check_shared_ledger()
        return (yield)

    def _check_shared_ledger(self) -> None:
        """``fleet.ledger``: a rollback that comes due settles there first, so it must be usable
        (reachable, the right cluster, allowed to write) before the first check, or the run stops
        as a config error: otherwise every due rollback would be held for a reason known now."""
        target = shared_ledger(self.smoke)
        config = self.config
        no_rollback = config.getoption("smoke_no_rollback") or config.getoption("smoke_hold_rollback")
        if target is None or not self.smoke.auto_rollback.enabled or no_rollback:
            return
        if not self.smoke.fleet_run_id:
            self._stop_before_checks(
                "fleet.ledger: SMOKE_FLEET_RUN_ID is not set: the shared ledger is kept per fleet run", EXIT_USAGE
            )
        name = ledger.config_map_name(self.smoke.fleet_run_id)
        try:
            kube = Kube(target)
            found = kube.config_map(name)
            if found is None:
                kube.create_config_map(name, {}, dry_run=True)
            else:
                kube.replace_config_map(found, found.get("data") or {}, dry_run=True)
        except KubeError as exc:
            if exc.status != 409:  # 409: another run wrote it meanwhile; it is usable
                self._stop_before_checks(f"fleet.ledger (namespace {target.namespace}): {exc}", EXIT_USAGE)

    def _wait_for_rollout(self) -> None:
        run = self.config.stash[smoke_run_key]
        try:
            found = rollout_wait.target_for(run.config.data, self.config.getoption("smoke_wait_rollout"))
            if found is None:
                return
            target, timeout = found
            completed_at = rollout_wait.wait(target, timeout, lambda message: self.say(f"smoke: {message}"))
        except KubeError as exc:
            message = self.redactor.text(f"smoke: {exc}: no check was run and nothing was rolled back")
            self.rollout_failed(message)
            pytest.exit(message, returncode=EXIT_ROLLOUT_NOT_READY)
        run.context.deployed_at = completed_at  # metric checks' {window} starts here
        self.rollout_completed(completed_at)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: every worker fills {run_id} and {timestamp} with this run's values."""
        context = self.config.stash[smoke_run_key].context
        node.workerinput["smoke_run_id"] = context.run_id
        node.workerinput["smoke_run_started"] = context.run_started

    def rollout_completed(self, completed_at: float) -> None:
        """--smoke-wait-rollout finished: the checks start now."""
        self.timeline.deployment_completed = completed_at
        self.timeline.checks_started = time.time()

    def rollout_failed(self, message: str, exit_status: int = EXIT_ROLLOUT_NOT_READY) -> None:
        """No check may run (--smoke-wait-rollout gave up, the rollback target is unusable): the
        run ends without a verdict."""
        self.rollout_failure = message
        self.rollout_failure_status = exit_status

    def record_tested_revision(self) -> None:
        """What is deployed as the checks start, and whether it is settled: a rollback acts only
        while it still runs, and only a settled revision is ever marked. Read with bounded retries;
        a target that cannot be used at all (not found, forbidden, no such container) stops the
        run before the first check, as a config error."""
        strategy = self.smoke.section("rollback_strategy")
        target = Target.from_settings(strategy)
        if target is None:
            return
        error = ""
        can_write = bool(self.smoke.section("auto_rollback").get("enabled")) and not self.config.getoption(
            "smoke_no_rollback"
        )
        for attempt in range(1, TESTED_READ_ATTEMPTS + 1):
            try:
                kube = Kube(target)
                self.tested = kube.state()
                run = self.config.stash.get(smoke_run_key, None)
                other = image_mismatch(self.tested, run.expected_images if run is not None else {}, target.ref)
                if other:
                    self._stop_before_checks(
                        f"{other}: the checks would not test what the pipeline deployed", EXIT_INCONCLUSIVE
                    )
                if can_write:
                    check_rollback_access(kube, self.tested)
                return
            except KubeError as exc:
                unusable = exc.status in (401, 403, 404) or isinstance(exc, (KubeCredentialsError, KubeUsageError))
                if unusable and can_write:  # a rollback that is on could never happen: a config error
                    self.tested = None
                    self._stop_before_checks(f"rollback_strategy: {exc}", EXIT_USAGE)
                error = str(exc)
                if unusable:
                    break
            if attempt < TESTED_READ_ATTEMPTS:
                time.sleep(0.5 * attempt)
        self.tested = None
        self.tested_error = error
        consequence = (
            "a rollback that is due is refused, and nothing is marked"
            if can_write
            else "the revision is not marked verified"
        )
        self.start_notes.append(f"could not record the tested revision ({error}): {consequence}")

    def _stop_before_checks(self, message: str, exit_status: int) -> None:
        text = self.redactor.text(f"smoke: {message}: no check was run and nothing was rolled back")
        self.rollout_failed(text, exit_status)
        pytest.exit(text, returncode=exit_status)

    # -- tally -------------------------------------------------------------------------------------

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    # What was selected: every selected item must end with an outcome, or the run is not complete.

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.tally.collected((item.nodeid, decode(item.user_properties)) for item in session.items)
        run = self.config.stash.get(smoke_run_key, None)
        if run is not None:
            self.tally.left_out(run.deselected)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """An xdist worker finished: it says which custom tests are required and which were deselected."""
        output = getattr(node, "workeroutput", None) or {}
        if "smoke_required_custom" in output:
            self.tally.workers_said(output["smoke_required_custom"], output.get("smoke_deselected", []))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # xdist ends a -x / --maxfail run by raising Interrupted("stopping after N failures").
        self.interrupt_message = str(excinfo.value)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.tally.collected_elsewhere(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tally.record(phase_report(report))

    # -- decide and act ----------------------------------------------------------------------------

    # The innermost wrapper: the verdict and the final exit status are set before any other
    # plugin's sessionfinish reads them (pytest-json-report, pytest's JUnit writer); the reports
    # are published after those ran (the JUnit file exists) and before the terminal summary.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        try:
            self._decide(session, exitstatus)
        except BaseException:
            self._publish(session)
            raise
        try:
            return (yield)
        finally:
            # Reports are written whatever happened: interrupted runs and failed rollbacks included.
            self._publish(session)

    def _decide(self, session: pytest.Session, exitstatus: int) -> None:
        self.phase = "rollback"
        previous_sigint = None
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C while deciding or rolling back is reported like SIGTERM, never a traceback.
            previous_sigint = signal.signal(signal.SIGINT, self._on_sigterm)
        try:
            self._decide_once(session, exitstatus)
        except RollbackInterrupted as exc:
            if self.summary is not None and self.summary.rollback is not None:
                # Production may have changed: report exactly what the rollback did.
                self.summary.notes.append(f"{exc} after the rollback was carried out")
                session.exitstatus = self.summary.exit_status = exit_code(
                    self.summary.verdict, self.summary.rollback.status
                )
            else:
                self._no_verdict(f"{exc} before any change: no rollback", pytest.ExitCode.INTERRUPTED)
                session.exitstatus = pytest.ExitCode.INTERRUPTED
        except Exception as exc:  # a bug of ours or a user hook's, before any rollback: no verdict
            message = shorten(str(exc), 200)
            self._no_verdict(
                f"internal error while deciding ({exc.__class__.__name__}: {message}): no rollback",
                pytest.ExitCode.INTERNAL_ERROR,
            )
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        finally:
            self.phase = "publishing"
            if previous_sigint is not None:
                signal.signal(signal.SIGINT, previous_sigint)

    def _decide_once(self, session: pytest.Session, exitstatus: int) -> None:
        if self.rollout_failure:
            self._no_verdict(self.rollout_failure, self.rollout_failure_status)
            session.exitstatus = self.rollout_failure_status
            return
        # -x / --maxfail (under xdist an "interrupt"), --sw (session.shouldstop): a stop the user
        # asked for after a failure. The verdict covers what ran; unlike Ctrl-C, it is a verdict.
        stopped_on_purpose = self.interrupt_message.startswith(STOPS_ASKED_FOR) or bool(session.shouldstop)
        if (exitstatus in NOT_EVALUATED_STATUSES and not stopped_on_purpose) or self.collection_errors:
            why = (
                "collection errors"
                if self.collection_errors
                else pytest.ExitCode(exitstatus).name.lower().replace("_", " ")
            )
            # docs/exit-codes.md: collection errors are exit 2, also when the run went on past them
            # (--continue-on-collection-errors, xdist workers that collected different items).
            status = (
                pytest.ExitCode.INTERRUPTED if self.collection_errors else (exitstatus or pytest.ExitCode.INTERRUPTED)
            )
            self._no_verdict(f"run ended early ({why}): no rollback", status)
            session.exitstatus = status
            return
        verdict = classify(self.tally.all_outcomes())
        if verdict.state == "no_checks":
            self._no_verdict("no checks ran: no verdict, no rollback", pytest.ExitCode.NO_TESTS_COLLECTED)
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
            return
        self.summary = run_decision(self._decision_inputs(), verdict, self.timeline)
        session.exitstatus = self.summary.exit_status = exit_code(
            verdict, self.summary.rollback.status if self.summary.rollback else None
        )

    def _decision_inputs(self) -> Any:
        run = self.config.stash.get(smoke_run_key, None)
        hook, config = self.config.hook, self.config

        def started(summary: RunSummary) -> None:
            self.summary = summary

        return DecisionInputs(
            smoke=self.smoke,
            override=lambda verdict, decision: hook.pytest_smoke_decision(
                config=config, verdict=verdict, decision=decision
            ),
            finished=lambda verdict, decision, result: hook.pytest_smoke_rollback_result(
                config=config, verdict=verdict, decision=decision, result=result
            ),
            dry_run=bool(self.config.getoption("smoke_no_rollback")),
            confirmed=bool(self.config.getoption("smoke_confirm_rollback")),
            tested=self.tested,
            tested_error=self.tested_error,
            expected_images=run.expected_images if run is not None else {},
            context=run.context if run is not None else None,
            handler=run.rollback_handler if run is not None else None,
            say=self.say,
            started=started,
            rerun_custom=self.rerun_failed_custom,
            held=self.config.getoption("smoke_hold_rollback") or "",
            ledger=self.config.getoption("smoke_fleet_ledger") or "",
        )

    def rerun_failed_custom(self, budget: Any) -> list[tuple[str, Status, str]]:
        """After a rollback: run each required custom test that failed once more, through pytest's
        own setup, call and teardown hooks (nothing is reported to the terminal or the tally).
        Returns (name, passed / failed / not_evaluated, reason) per test."""
        failed = self.tally.failed_required_custom()
        items = {item.nodeid: item for item in (self.session.items if self.session is not None else [])}
        results: list[tuple[str, Status, str]] = []
        for outcome in failed:
            item = items.get(outcome.nodeid)
            if item is None:
                results.append(
                    (outcome.name, STATUS_NOT_EVALUATED, "not collected in this process (-n): re-run it by hand")
                )
                continue
            if budget.expired:
                results.append((outcome.name, STATUS_NOT_EVALUATED, "no time left within verify_timeout_seconds"))
                continue
            if not isinstance(item, pytest.Function):
                results.append((outcome.name, STATUS_NOT_EVALUATED, "not a test function: re-run it by hand"))
                continue
            # A fresh item of the same function: the first one's fixtures were released at its teardown.
            item = pytest.Function.from_parent(
                item.parent,
                name=item.name,
                callspec=getattr(item, "callspec", None),
                callobj=item.obj,
                originalname=item.originalname,
            )
            status: Status = STATUS_PASSED
            reason = ""
            try:
                item.ihook.pytest_runtest_setup(item=item)
                try:
                    item.ihook.pytest_runtest_call(item=item)
                except CheckNotEvaluated as exc:
                    status, reason = STATUS_NOT_EVALUATED, str(exc)
                except (Exception, pytest.fail.Exception) as exc:
                    # As the first run judged it: an assertion, pytest.fail, a CheckFailed or a network
                    # error is the service's answer; any other exception is the test's own problem.
                    answered = isinstance(exc, (CheckFailed, pytest.fail.Exception)) or is_service_failure(exc)
                    status = STATUS_FAILED if answered else STATUS_NOT_EVALUATED
                    reason = f"{exc.__class__.__name__}: {exc}"
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a setup error, a skip: not evaluated  # noqa: BLE001
                if exc.__class__.__name__ == "RollbackInterrupted":
                    raise
                status, reason = STATUS_NOT_EVALUATED, f"setup: {exc.__class__.__name__}: {exc}"
            finally:
                try:
                    item.ihook.pytest_runtest_teardown(item=item, nextitem=None)
                except Exception:  # noqa: BLE001 - a teardown error does not change the answer
                    pass
            results.append((outcome.name, status, self.redactor.text(shorten(reason, 200))))
        return results

    def _no_verdict(self, reason: str, exit_status: int) -> None:
        """Record a run that ends without a verdict: never a rollback, reports still written, with
        the outcomes of what reported (what never ran is not listed as if it had been judged)."""
        summary = RunSummary(
            classify(self.tally.reported_outcomes()), Decision("not_evaluated", reason), timeline=self.timeline
        )
        summary.exit_status = int(exit_status)
        self.summary = summary

    def _load_notes(self) -> list[str]:
        """How much each host was asked to take at once, where that says something: the adaptive
        limit was cut, our load timed checks out, or the host stopped answering ("api:443: up to 12
        at once, cut to 3 after timeouts")."""
        run = self.config.stash.get(smoke_run_key, None)
        scheduler = getattr(run, "scheduler", None)
        if scheduler is None:
            return []
        return [
            f"checks in flight to {host}: {text}" for host, text in scheduler.host_limits(notable_only=True).items()
        ]

    def _publish(self, session: pytest.Session) -> None:
        if self.summary is None:
            self._no_verdict("the verdict could not be reached", session.exitstatus)
        assert self.summary is not None
        if self.smoke.verify is False:
            self.summary.notes.insert(0, "verify_tls is false: TLS certificates were not checked")
        self.summary.notes[:0] = self.start_notes
        if self.smoke.only_health_gets and not any(
            o.kind == "custom" and o.required for o in self.tally.outcomes.values()
        ):
            self.summary.notes.append(SHALLOW_NOTE)
        self.summary.notes.extend(self._load_notes())
        self.summary.tested_revision = getattr(self.tested, "revision", None)
        config = self.config
        xmlpath = config.getoption("xmlpath", None)
        published = publish.publish(
            self.summary,
            self.smoke,
            self.redactor,
            publish.Destinations(
                json_path=config.getoption("smoke_report"),
                markdown_path=config.getoption("smoke_markdown"),
                step_summary_path=os.environ.get("GITHUB_STEP_SUMMARY") or None,
                junit_path=config.getoption("smoke_junit"),
                pytest_junit_xunit2=xmlpath if xmlpath and config.getini("junit_family") == "xunit2" else None,
                rerun_command=rerun_command(config, self.smoke),
                metrics_path=config.getoption("smoke_metrics"),
                pushgateway_url=config.getoption("smoke_pushgateway"),
                allure_dir=config.getoption("allure_report_dir") if allure_loaded(config) else None,
            ),
        )
        self.summary.notifications = published.notifications
        self.monitoring = published.monitoring
        self.summary.notes.extend(published.problems)
        self.document = published.document

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is None or self.document is None:
            return
        terminalreporter.section("smoke verdict", sep="=")
        for text, markup in render(self.document):
            terminalreporter.write_line(printable(self.redactor.text(text)), **markup)
        for sent in self.summary.notifications:
            markup = {"yellow": True} if sent["status"] != "sent" else {}
            detail = f": {sent['detail']}" if sent["detail"] and not sent.get("ticket") else ""
            lines = [f"Notification {sent['status']}: {sent['channel']}{detail}"]
            if sent.get("ticket"):  # as the seed prints it, with the id the service returned
                lines.append(f"Incident ticket created: {sent['ticket']}")
            for line in lines:
                terminalreporter.write_line(printable(self.redactor.text(line)), **markup)
        for fed in self.monitoring:
            words = {"pushgateway": "Metrics pushed to the Pushgateway", "metrics_file": "Metrics written"}
            ok = fed["status"] in ("sent", "written")
            head = (
                words[fed["target"]]
                if ok
                else "Warning: metrics not "
                f"{'pushed to the Pushgateway' if fed['target'] == 'pushgateway' else 'written'}"
            )
            detail = f" ({fed['detail']})" if fed["detail"] and ok else (f": {fed['detail']}" if fed["detail"] else "")
            line = self.redactor.text(f"{head}: {fed['where']}{detail}")
            terminalreporter.write_line(printable(line), **({} if ok else {"yellow": True}))
        if self.elsewhere is not None:
            self.elsewhere.annotate(terminalreporter)  # GitHub workflow commands, under GITHUB_ACTIONS=true

    def say(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(self.redactor.text(message))


def rerun_command(config: pytest.Config, smoke: SmokeConfig) -> str:
    """The command line that reproduces this run: its own arguments, plus whatever an ini file,
    an environment variable or PYTEST_ADDOPTS supplied that decides what the run does (the
    config, the environment, a dry run), so that a pasted line never turns a dry run into a real
    rollback."""
    args = list(config.invocation_params.args)

    def given(option: str) -> bool:
        return any(arg == option or arg.startswith(option + "=") for arg in args)

    if not given("--smoke-config"):
        args[:0] = ["--smoke-config", str(smoke.path)]
    if smoke.environment and not given("--smoke-env"):
        args += ["--smoke-env", smoke.environment]
    if config.getoption("smoke_no_rollback") and not given("--smoke-no-rollback"):
        args.append("--smoke-no-rollback")
    return shlex.join(["pytest", *_masked_arguments(args)])


def _masked_arguments(args: list[str]) -> list[str]:
    """An option whose name says it holds a credential (``--api-token=...``, ``-o slack_token=...``)
    is shown masked: the re-run line reaches reports, Slack and incident tickets."""

    def holds_credential(name: str) -> bool:
        # A duration is a setting, whatever its name: --session-timeout must paste back as given.
        return is_secret_name(name) and not name.lower().endswith("timeout")

    shown: list[str] = []
    for index, arg in enumerate(args):
        previous = args[index - 1] if index else ""
        name, equals, _value = arg.partition("=")
        if equals and (name.startswith("-") or previous == "-o") and holds_credential(name):
            shown.append(f"{name}={MASK}")
        elif (
            previous.startswith("--") and "=" not in previous and holds_credential(previous) and not arg.startswith("-")
        ):
            shown.append(MASK)
        else:
            shown.append(arg)
    return shown


def phase_report(report: pytest.TestReport) -> PhaseReport:
    """pytest's report as the tally reads it."""
    return PhaseReport(
        nodeid=report.nodeid,
        when=str(report.when),
        outcome=str(report.outcome),
        properties=decode(report.user_properties),
        reason=_reason(report),
        details=_details(report),
        duration=float(getattr(report, "duration", 0.0)),
        stop=float(getattr(report, "stop", 0.0)),
        subtest=type(report).__name__ in SUBTEST_REPORTS,
    )


def _details(report: pytest.TestReport) -> str:
    if not report.failed:
        return ""
    text = str(report.longrepr or "")
    return "\n".join(text.strip().splitlines()[1:]) if text.strip() else ""


def _reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, "Skipped: why")
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0] if crash.message else ""
    text = str(report.longrepr or "")
    return text.strip().splitlines()[0] if text.strip() else ""
