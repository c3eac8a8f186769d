"""Once-per-run work on the controller: tally outcomes, decide, roll back, mark verified.

Registered only in the controlling process (never in an xdist worker, never under
``--collect-only``), so the verdict and any rollback happen exactly once per run. The controller
never collects under xdist: each report carries its check's required/optional status in
``user_properties``; a crashed worker's report, which carries none, is matched back to the config.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from typing import Any, Generator

import pytest

from ..config import SmokeConfig
from ..model import (
    STATUS_FAILED,
    STATUS_NOT_EVALUATED,
    STATUS_NOT_RUN,
    STATUS_NOT_SELECTED,
    STATUS_PASSED,
    STATUS_SKIPPED,
    Decision,
    Outcome,
    RunSummary,
    Status,
    Timeline,
    check_kind,
    decode,
    facts_of,
)
from ..redact import Redactor, escape_controls, shorten
from ..verdict import EXIT_ROLLOUT_NOT_READY, classify, exit_code
from .run import smoke_run_key

DETAILS_LIMIT = 4000
CUSTOM_ORDER = 100_000  # custom tests come after every configured check
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
        self.outcomes: dict[str, Outcome] = {}
        self.checks_by_node = {check.node_name: check for check in smoke.checks}
        self.selected: dict[str, bool | None] = {}  # node id -> required (None: not known yet)
        self.order: dict[str, int] = {}
        self.properties: dict[str, dict[str, Any]] = {}  # the last smoke_* properties seen per node id
        self.reruns: dict[str, int] = {}
        self.deselected_required: dict[str, str] = {}  # required custom tests deselected: node id -> name
        self.required_custom: set[str] | None = None  # under xdist, from the workers; None: not known
        self.unknown_required: set[str] = set()  # crashed before any report: required or not is looked up late
        self.interrupt_message = ""
        self.rerun_reasons: dict[str, str] = {}
        self.failed_subtests: dict[str, list[str]] = {}  # node id -> reasons of its failed subtests
        self.collection_errors = 0
        self.timeline = Timeline()
        self.summary: RunSummary | None = None
        self.document: dict[str, Any] | None = None  # the report document, once published
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
        from ..cluster.rollback import RollbackInterrupted

        name = signal.Signals(signum).name
        if self.phase == "checks":
            raise KeyboardInterrupt(name)
        if self.phase == "rollback":
            raise RollbackInterrupted(f"interrupted by {name} during the rollback")

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
        from ..cluster.kube import Kube, KubeCredentialsError, KubeError, KubeUsageError, check_rollback_access, image_mismatch
        from ..model import Target
        from ..verdict import EXIT_INCONCLUSIVE, EXIT_USAGE

        strategy = self.smoke.section("rollback_strategy")
        target = Target.from_settings(strategy)
        if target is None:
            return
        error = ""
        can_write = bool(self.smoke.section("auto_rollback").get("enabled")) and not self.config.getoption("smoke_no_rollback")
        for attempt in range(1, TESTED_READ_ATTEMPTS + 1):
            try:
                kube = Kube(target)
                self.tested = kube.state()
                run = self.config.stash.get(smoke_run_key, None)
                other = image_mismatch(self.tested, run.expected_images if run is not None else {}, target.ref)
                if other:
                    self._stop_before_checks(f"{other}: the checks would not test what the pipeline deployed", EXIT_INCONCLUSIVE)
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
        self.start_notes.append(
            f"could not record the tested revision ({error}): a rollback that is due is refused, and nothing is marked"
        )

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
        for index, item in enumerate(session.items):
            props = decode(item.user_properties)
            self.selected[item.nodeid] = bool(props.get("required", False))
            self.order[item.nodeid] = int(props.get("order", CUSTOM_ORDER + index))
        run = self.config.stash.get(smoke_run_key, None)
        if run is not None:
            self.deselected_required.update({nodeid: name for nodeid, name in run.deselected_required})

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """An xdist worker finished: it says which custom tests are required and which were deselected."""
        output = getattr(node, "workeroutput", None) or {}
        if "smoke_required_custom" in output:
            self.required_custom = set(output["smoke_required_custom"])
            self.deselected_required.update({nodeid: name for nodeid, name in output.get("smoke_deselected_required", [])})

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # xdist ends a -x / --maxfail run by raising Interrupted("stopping after N failures").
        self.interrupt_message = str(excinfo.value)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller never collects: each worker sends its ids (all the same)."""
        if self.selected:
            return
        for index, nodeid in enumerate(ids):
            check = self._config_check(nodeid)
            # A custom test's marker is unknown until its first report: assume required.
            self.selected[nodeid] = check.required if check else None
            self.order[nodeid] = check.order if check else CUSTOM_ORDER + index

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        props = decode(report.user_properties)
        if props:
            self.properties[nodeid] = props
        else:  # a crashed xdist worker's report carries none: use the setup report's, or the config's
            props = self.properties.get(nodeid) or self._properties_from_config(nodeid)
            if not props:
                self.unknown_required.add(nodeid)
        if type(report).__name__ in SUBTEST_REPORTS:
            # A subtest's report (pytest 9's subtests, pytest-subtests): it judges part of its test,
            # whose own report may still say "passed". Its failure is remembered for that test.
            if report.failed:
                self.failed_subtests.setdefault(nodeid, []).append(_reason(report))
            return
        if str(report.outcome) == "rerun":  # pytest-rerunfailures: the final report comes later
            self.reruns[nodeid] = self.reruns.get(nodeid, 0) + 1
            self.rerun_reasons.setdefault(nodeid, props.get("reason") or _reason(report))
            return
        status = _status(report, props)
        failed_subtests = self.failed_subtests.get(nodeid) if report.when == "call" else None
        if failed_subtests and status in (STATUS_PASSED, STATUS_NOT_EVALUATED):
            first = failed_subtests[0]
            answered = first.startswith(("AssertionError", "Failed", "pytest_smoke.CheckFailed", "CheckFailed", "assert "))
            status = STATUS_FAILED if answered else STATUS_NOT_EVALUATED
            props = {**props, "reason": f"{len(failed_subtests)} failed subtest(s): {first}"}
        if status is None:
            return
        previous = self.outcomes.get(nodeid)
        if previous is not None and report.when == "teardown":
            if previous.status == STATUS_PASSED and status == STATUS_NOT_EVALUATED:
                previous.warning = self.redactor.text(f"teardown error: {_reason(report)}")
                previous.reason = previous.warning
            return  # a teardown error never hides the call's outcome
        reason = props.get("reason") or _reason(report)
        if str(report.when) == "???":
            reason = f"not evaluated: its worker crashed ({reason or 'no report'}); a problem of the runner"
        elif status == STATUS_NOT_RUN and not reason.startswith(("not started", "not finished")):
            reason = f"skipped at run time: {reason} (selected, but it did not judge the deploy)"
        elif status == STATUS_SKIPPED:
            reason = f"skipped by a mark: {reason}"
        elif status == STATUS_NOT_EVALUATED and not props.get("reason") and "a problem of the runner" not in reason:
            reason = f"not evaluated: {report.when} error: {reason} (a problem of the runner, not of the service)"
        outcome = Outcome(
            nodeid=nodeid,
            name=str(props.get("name") or nodeid.split("::")[-1]),
            kind=check_kind(props.get("kind")),
            required=bool(props.get("required", False)),
            status=status,
            reason=escape_controls(self.redactor.text(reason)),
            failure_kind=str(props.get("failure_kind", "") or ("crashed" if str(report.when) == "???" else "")),
            duration=float(getattr(report, "duration", 0.0)),
            finished_at=float(getattr(report, "stop", time.time())),
            facts=facts_of(props),
            details=escape_controls(self.redactor.text(_details(report))[:DETAILS_LIMIT]),
            warning=escape_controls(self.redactor.text(props.get("warning") or "")) if status == STATUS_PASSED else "",
            rollback=bool(props.get("rollback", True)),
            order=int(props.get("order", self.order.get(nodeid, CUSTOM_ORDER))),
            precondition=bool(props.get("precondition", False)),
        )
        reruns = self.reruns.get(nodeid, 0)
        if reruns and status == STATUS_PASSED:
            first = self.redactor.text(self.rerun_reasons.get(nodeid, ""))
            outcome.warning = f"flaky: passed on rerun {reruns} (pytest-rerunfailures); first failure: {first}"
        elif reruns:
            outcome.reason += f" (also on {reruns} rerun(s))"
        if outcome.warning:
            outcome.reason = outcome.warning
        self.outcomes[nodeid] = outcome
        if outcome.severity == "critical" and self.timeline.failures_detected is None:
            self.timeline.failures_detected = outcome.finished_at

    def _config_check(self, nodeid: str) -> Any:
        file_part, _, name = nodeid.rpartition("::")
        # The config as given (a symlink, say) or the file it points to: either may name the items.
        if not file_part.endswith(self._config_names):
            return None
        return self.checks_by_node.get(name)

    @functools.cached_property
    def _config_names(self) -> tuple[str, str]:
        return (self.smoke.path.name, self.smoke.path.resolve().name)  # resolved once, not per item

    def _properties_from_config(self, nodeid: str) -> dict[str, Any]:
        check = self._config_check(nodeid)
        if check is None:
            return {}
        return {
            "required": check.required, "kind": check.kind, "name": check.name, "rollback": check.rollback, "order": check.order,
            "precondition": check.precondition,
        }

    def _all_outcomes(self) -> list[Outcome]:
        for nodeid in self.unknown_required:
            if nodeid in self.outcomes:  # unknown marker: required, unless the workers said otherwise
                known = self.required_custom
                self.outcomes[nodeid].required = True if known is None else nodeid in known
        return [*self.outcomes.values(), *self._unreported_outcomes()]

    def _unreported_outcomes(self) -> list[Outcome]:
        """Required checks the user did not select, and selected items that never reported."""
        missing: list[Outcome] = [
            Outcome(nodeid=nodeid, name=name, kind="custom", required=True, status=STATUS_NOT_SELECTED,
                    reason="not selected: deselected (-k, -m or --deselect)", order=CUSTOM_ORDER, duration=0.0)
            for nodeid, name in self.deselected_required.items()
            if nodeid not in self.outcomes
        ]
        selected_names = {nodeid.rpartition("::")[2] for nodeid in self.selected if self._config_check(nodeid)}
        why = f"enabled: false in {self.smoke.path}" if not self.smoke.enabled else "deselected (-k, -m or --deselect)"
        for check in self.smoke.checks:
            if check.node_name not in selected_names:
                missing.append(
                    Outcome(
                        nodeid=f"{self.smoke.path}::{check.node_name}", name=check.name, kind=check.kind,
                        required=check.required, status=STATUS_NOT_SELECTED, reason=f"not selected: {why}",
                        rollback=check.rollback, order=check.order, duration=0.0,
                    )
                )
        for nodeid, required in self.selected.items():
            if nodeid in self.outcomes:
                continue
            props = self.properties.get(nodeid) or self._properties_from_config(nodeid)
            if required is None and self.required_custom is not None:
                required = nodeid in self.required_custom
            missing.append(
                Outcome(
                    nodeid=nodeid,
                    name=str(props.get("name") or nodeid.split("::")[-1]),
                    kind=check_kind(props.get("kind")),
                    required=True if required is None else bool(props.get("required", required)),
                    status=STATUS_NOT_RUN,
                    reason="never reported: the run stopped before it (-x, --maxfail, a session timeout) or its worker crashed"
                    + (" (its marker is unknown, so it counts as required)" if required is None and not props else ""),
                    rollback=bool(props.get("rollback", True)),
                    order=self.order.get(nodeid, CUSTOM_ORDER),
                    duration=0.0,
                )
            )
        return missing

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
        from ..cluster.rollback import RollbackInterrupted

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
                session.exitstatus = self.summary.exit_status = exit_code(self.summary.verdict, self.summary.rollback.status)
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
        from . import decision_flow

        verdict = classify(self._all_outcomes())
        if self.rollout_failure:
            self._no_verdict(self.rollout_failure, self.rollout_failure_status)
            session.exitstatus = self.rollout_failure_status
            return
        # -x / --maxfail (under xdist an "interrupt"), --sw (session.shouldstop): a stop the user
        # asked for after a failure. The verdict covers what ran; unlike Ctrl-C, it is a verdict.
        stopped_on_purpose = self.interrupt_message.startswith(STOPS_ASKED_FOR) or bool(session.shouldstop)
        if (exitstatus in NOT_EVALUATED_STATUSES and not stopped_on_purpose) or self.collection_errors:
            why = "collection errors" if self.collection_errors else pytest.ExitCode(exitstatus).name.lower().replace("_", " ")
            # docs/exit-codes.md: collection errors are exit 2, also when the run went on past them
            # (--continue-on-collection-errors, xdist workers that collected different items).
            status = pytest.ExitCode.INTERRUPTED if self.collection_errors else (exitstatus or pytest.ExitCode.INTERRUPTED)
            self._no_verdict(f"run ended early ({why}): no rollback", status)
            session.exitstatus = status
            return
        if verdict.state == "no_checks":
            self._no_verdict("no checks ran: no verdict, no rollback", pytest.ExitCode.NO_TESTS_COLLECTED)
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
            return
        self.summary = decision_flow.run(self._decision_inputs(), verdict, self.timeline)
        session.exitstatus = self.summary.exit_status = exit_code(
            verdict, self.summary.rollback.status if self.summary.rollback else None
        )

    def _decision_inputs(self) -> Any:
        from .decision_flow import DecisionInputs

        run = self.config.stash.get(smoke_run_key, None)

        def started(summary: RunSummary) -> None:
            self.summary = summary

        return DecisionInputs(
            smoke=self.smoke,
            hook=self.config.hook,
            pytest_config=self.config,
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
        )

    def rerun_failed_custom(self, budget: Any) -> list[tuple[str, Status, str]]:
        """After a rollback: run each required custom test that failed once more, through pytest's
        own setup, call and teardown hooks (nothing is reported to the terminal or the tally).
        Returns (name, passed / failed / not_evaluated, reason) per test."""
        from ..checks import CheckFailed, CheckNotEvaluated, is_service_failure

        failed = [o for o in self.outcomes.values() if o.kind == "custom" and o.required and o.status == STATUS_FAILED]
        items = {item.nodeid: item for item in (self.session.items if self.session is not None else [])}
        results: list[tuple[str, Status, str]] = []
        for outcome in failed:
            item = items.get(outcome.nodeid)
            if item is None:
                results.append((outcome.name, STATUS_NOT_EVALUATED, "not collected in this process (-n): re-run it by hand"))
                continue
            if budget.expired:
                results.append((outcome.name, STATUS_NOT_EVALUATED, "no time left within verify_timeout_seconds"))
                continue
            if not isinstance(item, pytest.Function):
                results.append((outcome.name, STATUS_NOT_EVALUATED, "not a test function: re-run it by hand"))
                continue
            # A fresh item of the same function: the first one's fixtures were released at its teardown.
            item = pytest.Function.from_parent(
                item.parent, name=item.name, callspec=getattr(item, "callspec", None), callobj=item.obj,
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
        """Record a run that ends without a verdict: never a rollback, reports still written."""
        summary = RunSummary(classify(self.outcomes.values()), Decision("not_evaluated", reason), timeline=self.timeline)
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
        return [f"checks in flight to {host}: {text}" for host, text in scheduler.host_limits(notable_only=True).items()]

    def _publish(self, session: pytest.Session) -> None:
        from . import publish

        if self.summary is None:
            self._no_verdict("the verdict could not be reached", session.exitstatus)
        assert self.summary is not None
        if self.smoke.verify is False:
            self.summary.notes.insert(0, "verify_tls is false: TLS certificates were not checked")
        self.summary.notes[:0] = self.start_notes
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
            ),
        )
        self.summary.notifications = published.notifications
        self.monitoring = published.monitoring
        self.summary.notes.extend(published.problems)
        self.document = published.document

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from ..report.terminal import render

        if self.summary is None or self.document is None:
            return
        terminalreporter.section("smoke verdict", sep="=")
        from ..checks.http import printable

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
            head = words[fed["target"]] if ok else f"Warning: metrics not {'pushed to the Pushgateway' if fed['target'] == 'pushgateway' else 'written'}"
            detail = f" ({fed['detail']})" if fed["detail"] and ok else (f": {fed['detail']}" if fed["detail"] else "")
            line = self.redactor.text(f"{head}: {fed['where']}{detail}")
            terminalreporter.write_line(printable(line), **({} if ok else {"yellow": True}))

    def say(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(self.redactor.text(message))


def rerun_command(config: pytest.Config, smoke: SmokeConfig) -> str:
    """The command line that reproduces this run: its own arguments, plus whatever an ini file,
    an environment variable or PYTEST_ADDOPTS supplied that decides what the run does (the
    config, the environment, a dry run), so that a pasted line never turns a dry run into a real
    rollback."""
    import shlex

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
    from ..redact import MASK, is_secret_name

    def holds_credential(name: str) -> bool:
        # A duration is a setting, whatever its name: --session-timeout must paste back as given.
        return is_secret_name(name) and not name.lower().endswith("timeout")

    shown: list[str] = []
    for index, arg in enumerate(args):
        previous = args[index - 1] if index else ""
        name, equals, _value = arg.partition("=")
        if equals and (name.startswith("-") or previous == "-o") and holds_credential(name):
            shown.append(f"{name}={MASK}")
        elif previous.startswith("--") and "=" not in previous and holds_credential(previous) and not arg.startswith("-"):
            shown.append(MASK)
        else:
            shown.append(arg)
    return shown


def _status(report: pytest.TestReport, props: dict[str, Any]) -> Status | None:
    """The outcome status of one report, or None when the phase says nothing new."""
    if str(report.when) == "???":  # xdist: the worker crashed while running this item
        return STATUS_NOT_EVALUATED
    if report.skipped:
        if report.when not in ("setup", "call"):
            return None
        return STATUS_NOT_RUN if props.get("outcome") == "not_run" else STATUS_SKIPPED  # a skip or xfail mark
    if report.failed:
        if report.when == "setup" and props.get("outcome") == "failed":
            return STATUS_FAILED  # the service failed a fixture's request (smoke_http): a verdict
        if report.when != "call":
            return STATUS_NOT_EVALUATED  # any other fixture or setup error: the test never got to judge
        # Generated checks and custom tests alike: only a verdict on the service is a failure.
        return STATUS_FAILED if props.get("outcome") == "failed" else STATUS_NOT_EVALUATED
    if report.when == "call":
        return STATUS_PASSED
    return None


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

