"""Once-per-run work on the controller: tally outcomes, decide, roll back, mark verified.

Registered only in the controlling process (never in an xdist worker, never under
``--collect-only``), so the verdict and any rollback happen exactly once per run. The controller
never collects under xdist: each report carries its check's required/optional status in
``user_properties``; a crashed worker's report, which carries none, is matched back to the config.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from .config import SmokeConfig
from .redact import Redactor
from .verdict import EXIT_ROLLOUT_NOT_READY, Decision, Outcome, Verdict, classify, exit_code

DETAILS_LIMIT = 4000
# Facts a check reports on its pytest report (user_properties, as smoke_<key>).
FACT_KEYS = ("endpoint", "status", "elapsed_ms", "attempts", "summary")
NOT_EVALUATED_STATUSES = (
    pytest.ExitCode.INTERRUPTED,
    pytest.ExitCode.INTERNAL_ERROR,
    pytest.ExitCode.USAGE_ERROR,
)


@dataclass
class Timeline:
    checks_started: float = field(default_factory=time.time)
    deployment_completed: float | None = None
    failures_detected: float | None = None
    rollback_started: float | None = None
    rollback_finished: float | None = None


@dataclass
class RunSummary:
    verdict: Verdict
    decision: Decision
    rollback: Any = None  # RollbackResult
    timeline: Timeline = field(default_factory=Timeline)
    notes: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    exit_status: int = 0


class SmokeController:
    def __init__(self, config: pytest.Config, smoke: SmokeConfig, redactor: Redactor):
        self.config = config
        self.smoke = smoke
        self.redactor = redactor
        self.outcomes: dict[str, Outcome] = {}
        self.collection_errors = 0
        self.timeline = Timeline()
        self.summary: RunSummary | None = None
        self.rollout_failure: str | None = None
        # SIGTERM (a Job deleted, a pipeline cancelled) means: during the checks, stop like Ctrl-C
        # (reports, no rollback); during the rollback, report the state and alert; afterwards,
        # finish writing reports.
        self.phase = "checks"
        self._previous_sigterm: Any = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def pytest_unconfigure(self) -> None:
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        from .rollback import RollbackInterrupted

        if self.phase == "checks":
            raise KeyboardInterrupt("SIGTERM")
        if self.phase == "rollback":
            raise RollbackInterrupted("interrupted by SIGTERM during the rollback")

    # -- tally -------------------------------------------------------------------------------------

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if "smoke_required" not in props:
            props.update(self._from_config(report.nodeid))
        previous = self.outcomes.get(report.nodeid)
        status = _status(report)
        if status is None:
            return
        if previous is not None and previous.status in ("failed", "error") and status != "failed":
            return  # a teardown error does not hide the call's failure
        outcome = Outcome(
            nodeid=report.nodeid,
            name=str(props.get("smoke_name") or report.nodeid.split("::")[-1]),
            kind=str(props.get("smoke_kind", "custom")),
            required=bool(props.get("smoke_required", False)),
            status=status,
            reason=self.redactor.text(props.get("smoke_reason") or _reason(report)),
            failure_kind=str(props.get("smoke_failure_kind", "")),
            duration=float(getattr(report, "duration", 0.0)),
            finished_at=float(getattr(report, "stop", time.time())),
            facts={k[6:]: v for k, v in props.items() if k.startswith("smoke_") and k[6:] in FACT_KEYS},
            details=self.redactor.text(_details(report))[:DETAILS_LIMIT],
            warning=self.redactor.text(props.get("smoke_warning") or "") if status == "passed" else "",
        )
        if outcome.warning:
            outcome.reason = outcome.warning
        # A generated check that broke inside the plugin (not a CheckFailed) could not run: a warning.
        if status == "failed" and outcome.kind != "custom" and not outcome.failure_kind and report.when == "call":
            outcome.status = "error"
            outcome.reason = outcome.reason or "the check could not run"
        self.outcomes[report.nodeid] = outcome
        if outcome.severity == "critical" and self.timeline.failures_detected is None:
            self.timeline.failures_detected = outcome.finished_at

    def _from_config(self, nodeid: str) -> dict[str, Any]:
        """Properties of a generated check whose report carried none (a crashed xdist worker)."""
        file_part, _, name = nodeid.rpartition("::")
        if not file_part.endswith(self.smoke.path.name):
            return {}
        for check in self.smoke.checks:
            if check.node_name == name:
                return {"smoke_required": check.required, "smoke_kind": check.kind, "smoke_name": check.name, "smoke_failure_kind": "crashed"}
        return {}

    # -- decide and act ----------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            self._decide(session, exitstatus)
        finally:
            # Reports are written whatever happened: interrupted runs and failed rollbacks included.
            self._publish(session)

    def _decide(self, session: pytest.Session, exitstatus: int) -> None:
        from .rollback import RollbackInterrupted

        self.phase = "rollback"
        try:
            self._decide_once(session, exitstatus)
        except RollbackInterrupted as exc:
            self._no_verdict(f"{exc} before any change: no rollback", pytest.ExitCode.INTERRUPTED)
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        finally:
            self.phase = "publishing"

    def _decide_once(self, session: pytest.Session, exitstatus: int) -> None:
        from . import decision_flow

        verdict = classify(self.outcomes.values())
        if self.rollout_failure:
            self._no_verdict(self.rollout_failure, EXIT_ROLLOUT_NOT_READY)
            session.exitstatus = EXIT_ROLLOUT_NOT_READY
            return
        if exitstatus in NOT_EVALUATED_STATUSES or self.collection_errors:
            why = "collection errors" if self.collection_errors else pytest.ExitCode(exitstatus).name.lower().replace("_", " ")
            self._no_verdict(f"run ended early ({why}): no rollback", exitstatus or pytest.ExitCode.INTERRUPTED)
            return
        if verdict.state == "no_checks":
            self._no_verdict("no checks ran: no verdict, no rollback", exitstatus)
            return
        self.summary = decision_flow.run(self, verdict)
        session.exitstatus = self.summary.exit_status = exit_code(
            verdict, self.summary.rollback.status if self.summary.rollback else None
        )

    def _no_verdict(self, reason: str, exit_status: int) -> None:
        """Record a run that ends without a verdict: never a rollback, reports still written."""
        summary = RunSummary(classify(self.outcomes.values()), Decision("not_evaluated", reason), timeline=self.timeline)
        summary.exit_status = int(exit_status)
        self.summary = summary

    def _publish(self, session: pytest.Session) -> None:
        from . import publish

        if self.summary is None:
            self._no_verdict("the verdict could not be reached", session.exitstatus)
        assert self.summary is not None
        if self.smoke.verify is False:
            self.summary.notes.insert(0, "verify_tls is false: TLS certificates were not checked")
        publish.publish(self)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .report.terminal import render

        if self.summary is None:
            return
        terminalreporter.section("smoke verdict", sep="=")
        for text, markup in render(self.summary, self.smoke):
            terminalreporter.write_line(self.redactor.text(text), **markup)
        for sent in self.summary.notifications:
            markup = {"yellow": True} if sent["status"] != "sent" else {}
            detail = f": {sent['detail']}" if sent["detail"] else ""
            terminalreporter.write_line(self.redactor.text(f"Notification {sent['status']}: {sent['channel']}{detail}"), **markup)

    def say(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(self.redactor.text(message))


def _status(report: pytest.TestReport) -> str | None:
    if report.skipped:
        return "skipped" if report.when in ("setup", "call") else None
    if report.failed:
        return "failed" if report.when in ("call", "???") else "error"
    if report.when == "call":
        return "passed"
    return None


def _details(report: pytest.TestReport) -> str:
    if not report.failed:
        return ""
    text = str(report.longrepr or "")
    return "\n".join(text.strip().splitlines()[1:]) if text.strip() else ""


def _reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0] if crash.message else ""
    text = str(report.longrepr or "")
    return text.strip().splitlines()[0] if text.strip() else ""

