"""Outcomes from test reports: what each selected item ended as, and what never reported.

Plain Python: the pytest glue translates each pytest report into a :class:`PhaseReport` and calls
:meth:`Tally.record`; everything it concludes is here. Every selected item ends with exactly one
:class:`~pytest_smoke.model.Outcome`, or the run is not complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

from ..model import (
    STATUS_FAILED,
    STATUS_NOT_EVALUATED,
    STATUS_NOT_RUN,
    STATUS_NOT_SELECTED,
    STATUS_PASSED,
    STATUS_SKIPPED,
    Check,
    Outcome,
    Status,
    Timeline,
    check_kind,
    facts_of,
)
from ..redact import Redactor, escape_controls

DETAILS_LIMIT = 4000
CUSTOM_ORDER = 100_000  # custom tests come after every configured check
# How a failed subtest's reason starts when the service answered (an assertion, pytest.fail, ours).
ANSWERED_PREFIXES = ("AssertionError", "Failed", "pytest_smoke.CheckFailed", "CheckFailed", "assert ")
CRASHED = "???"  # the phase xdist reports for an item whose worker crashed


@dataclass(frozen=True)
class PhaseReport:
    """One phase of one item, as the tally reads it."""

    nodeid: str
    when: str  # setup, call, teardown; CRASHED for an item whose xdist worker crashed
    outcome: str  # passed, failed, skipped, rerun (pytest-rerunfailures)
    properties: dict[str, Any]  # the decoded smoke_* user properties ({} when it carries none)
    reason: str = ""  # the first line of the failure or skip
    details: str = ""  # the rest of a failure's text
    duration: float = 0.0
    stop: float = 0.0
    subtest: bool = False  # a subtest's report: it judges part of its test


@dataclass(frozen=True)
class Selection:
    """What the config defines and what the user left out, for the outcomes of unreported items."""

    path_names: tuple[str, ...]  # the config file as given and as resolved: either may name items
    shown_path: str
    checks: tuple[Check, ...]
    enabled: bool = True
    never_collected: str = "deselected (-k, -m or --deselect)"  # why a check never collected was left out
    # --lf dropped what did not fail last time before collection: custom tests among it are unknown,
    # so the run cannot vouch for every required one (PARTIAL, never verified).
    unknown_left_out: str = ""


class Tally:
    def __init__(self, selection: Selection, redactor: Redactor, timeline: Timeline):
        self.selection = selection
        self.redactor = redactor
        self.timeline = timeline
        self.outcomes: dict[str, Outcome] = {}
        self.checks_by_node = {check.node_name: check for check in selection.checks}
        self.selected: dict[str, bool | None] = {}  # node id -> required (None: not known yet)
        self.order: dict[str, int] = {}
        self.properties: dict[str, dict[str, Any]] = {}  # the last smoke_* properties seen per node id
        self.reruns: dict[str, int] = {}
        self.rerun_reasons: dict[str, str] = {}
        self.deselected: dict[str, tuple[str, bool, str]] = {}  # node id -> (name, required, why), every item left out
        self.required_custom: set[str] | None = None  # under xdist, from the workers; None: not known
        self.unknown_required: set[str] = set()  # crashed before any report: required or not is looked up late
        self.failed_subtests: dict[str, list[str]] = {}  # node id -> reasons of its failed subtests

    # -- what was selected -------------------------------------------------------------------------

    def collected(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """The selected items in run order, with the properties their markers gave them."""
        for index, (nodeid, props) in enumerate(items):
            self.selected[nodeid] = bool(props.get("required", False))
            self.order[nodeid] = int(props.get("order", CUSTOM_ORDER + index))

    def collected_elsewhere(self, nodeids: Iterable[str]) -> None:
        """Under xdist the controller never collects: the ids a worker sent (all the same)."""
        if self.selected:
            return
        for index, nodeid in enumerate(nodeids):
            check = self.config_check(nodeid)
            # A custom test's marker is unknown until its first report: assume required.
            self.selected[nodeid] = check.required if check else None
            self.order[nodeid] = check.order if check else CUSTOM_ORDER + index

    def left_out(self, deselected: Iterable[Any]) -> None:
        """Items pytest deselected: [node id, name, required, why] each."""
        for nodeid, name, required, why in deselected:
            self.deselected[nodeid] = (str(name), bool(required), str(why))

    def workers_said(self, required_custom: Iterable[str], deselected: Iterable[Any]) -> None:
        self.required_custom = set(required_custom)
        self.left_out(deselected)

    # -- one report --------------------------------------------------------------------------------

    def record(self, report: PhaseReport) -> None:
        nodeid = report.nodeid
        props = report.properties
        if props:
            self.properties[nodeid] = props
        else:  # a crashed xdist worker's report carries none: use the setup report's, or the config's
            props = self.properties.get(nodeid) or self.properties_from_config(nodeid)
            if not props:
                self.unknown_required.add(nodeid)
        if report.subtest:
            # Its test's own report may still say "passed": the failure is remembered for that test.
            if report.outcome == "failed":
                self.failed_subtests.setdefault(nodeid, []).append(report.reason)
            return
        if report.outcome == "rerun":  # pytest-rerunfailures: the final report comes later
            self.reruns[nodeid] = self.reruns.get(nodeid, 0) + 1
            self.rerun_reasons.setdefault(nodeid, props.get("reason") or report.reason)
            return
        status = phase_status(report, props)
        failed_subtests = self.failed_subtests.get(nodeid) if report.when == "call" else None
        if failed_subtests and status in (STATUS_PASSED, STATUS_NOT_EVALUATED):
            first = failed_subtests[0]
            status = STATUS_FAILED if first.startswith(ANSWERED_PREFIXES) else STATUS_NOT_EVALUATED
            props = {**props, "reason": f"{len(failed_subtests)} failed subtest(s): {first}"}
        if status is None:
            return
        previous = self.outcomes.get(nodeid)
        if previous is not None and report.when == "teardown":
            if previous.status == STATUS_PASSED and status == STATUS_NOT_EVALUATED:
                previous.warning = self.redactor.text(f"teardown error: {report.reason}")
                previous.reason = previous.warning
            return  # a teardown error never hides the call's outcome
        outcome = self._outcome(report, props, status)
        self.outcomes[nodeid] = outcome
        if outcome.severity == "critical" and self.timeline.failures_detected is None:
            self.timeline.failures_detected = outcome.finished_at

    def _outcome(self, report: PhaseReport, props: dict[str, Any], status: Status) -> Outcome:
        nodeid = report.nodeid
        clean = self._clean
        outcome = Outcome(
            nodeid=nodeid,
            name=str(props.get("name") or nodeid.split("::")[-1]),
            kind=check_kind(props.get("kind")),
            required=bool(props.get("required", False)),
            status=status,
            reason=clean(_reason_line(report, props, status)),
            failure_kind=str(props.get("failure_kind", "") or ("crashed" if report.when == CRASHED else "")),
            duration=report.duration,
            finished_at=report.stop or time.time(),
            facts=facts_of(props),
            details=escape_controls(self.redactor.text(report.details)[:DETAILS_LIMIT]),
            warning=clean(props.get("warning") or "") if status == STATUS_PASSED else "",
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
        return outcome

    def _clean(self, text: str) -> str:
        return escape_controls(self.redactor.text(text))

    # -- the config's view of an item ----------------------------------------------------------------

    def config_check(self, nodeid: str) -> Check | None:
        file_part, _, name = nodeid.rpartition("::")
        if not file_part.endswith(self.selection.path_names):
            return None
        return self.checks_by_node.get(name)

    def properties_from_config(self, nodeid: str) -> dict[str, Any]:
        check = self.config_check(nodeid)
        if check is None:
            return {}
        return {
            "required": check.required,
            "kind": check.kind,
            "name": check.name,
            "rollback": check.rollback,
            "order": check.order,
            "precondition": check.precondition,
        }

    # -- the whole run -------------------------------------------------------------------------------

    def failed_required_custom(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.kind == "custom" and o.required and o.status == STATUS_FAILED]

    def reported_outcomes(self) -> list[Outcome]:
        """The outcomes of the items that reported (an interrupted run lists only these)."""
        for nodeid in self.unknown_required:
            if nodeid in self.outcomes:  # unknown marker: required, unless the workers said otherwise
                known = self.required_custom
                self.outcomes[nodeid].required = True if known is None else nodeid in known
        return list(self.outcomes.values())

    def all_outcomes(self) -> list[Outcome]:
        """Every selected item's outcome, and the required checks left out: what the verdict judges."""
        return [*self.reported_outcomes(), *self.unreported_outcomes()]

    def unreported_outcomes(self) -> list[Outcome]:
        """Required checks the user did not select, and selected items that never reported."""
        missing: list[Outcome] = [
            Outcome(
                nodeid=nodeid,
                name=name,
                kind="custom",
                required=required,
                status=STATUS_NOT_SELECTED,
                reason=f"not selected: {why}",
                order=CUSTOM_ORDER,
                duration=0.0,
            )
            for nodeid, (name, required, why) in self.deselected.items()
            if nodeid not in self.outcomes and self.config_check(nodeid) is None
        ]
        selected_names = {nodeid.rpartition("::")[2] for nodeid in self.selected if self.config_check(nodeid)}
        why_generated = {
            nodeid.rpartition("::")[2]: why
            for nodeid, (_, _, why) in self.deselected.items()
            if self.config_check(nodeid)
        }
        selection = self.selection
        for check in selection.checks:
            if check.node_name not in selected_names:
                if not selection.enabled:
                    why = f"enabled: false in {selection.shown_path}"
                else:
                    why = why_generated.get(check.node_name, selection.never_collected)
                missing.append(
                    Outcome(
                        nodeid=f"{selection.shown_path}::{check.node_name}",
                        name=check.name,
                        kind=check.kind,
                        required=check.required,
                        status=STATUS_NOT_SELECTED,
                        reason=f"not selected: {why}",
                        rollback=check.rollback,
                        order=check.order,
                        duration=0.0,
                    )
                )
        for nodeid, required in self.selected.items():
            if nodeid not in self.outcomes:
                missing.append(self._never_reported(nodeid, required))
        if selection.unknown_left_out:
            missing.append(
                Outcome(
                    nodeid="--lf",
                    name="tests --lf did not collect",
                    kind="custom",
                    required=True,
                    status=STATUS_NOT_SELECTED,
                    reason=f"not selected: {selection.unknown_left_out}",
                    order=CUSTOM_ORDER,
                    duration=0.0,
                )
            )
        return missing

    def _never_reported(self, nodeid: str, required: bool | None) -> Outcome:
        props = self.properties.get(nodeid) or self.properties_from_config(nodeid)
        if required is None and self.required_custom is not None:
            required = nodeid in self.required_custom
        return Outcome(
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


def phase_status(report: PhaseReport, props: dict[str, Any]) -> Status | None:
    """The outcome status of one phase, or None when the phase says nothing new."""
    if report.when == CRASHED:  # xdist: the worker crashed while running this item
        return STATUS_NOT_EVALUATED
    if report.outcome == "skipped":
        if report.when not in ("setup", "call"):
            return None
        return STATUS_NOT_RUN if props.get("outcome") == "not_run" else STATUS_SKIPPED  # a skip or xfail mark
    if report.outcome == "failed":
        if report.when == "setup" and props.get("outcome") == "failed":
            return STATUS_FAILED  # the service failed a fixture's request (smoke_http): a verdict
        if report.when != "call":
            return STATUS_NOT_EVALUATED  # any other fixture or setup error: the test never got to judge
        # Generated checks and custom tests alike: only a verdict on the service is a failure.
        return STATUS_FAILED if props.get("outcome") == "failed" else STATUS_NOT_EVALUATED
    if report.when == "call":
        return STATUS_PASSED
    return None


def _reason_line(report: PhaseReport, props: dict[str, Any], status: Status) -> str:
    reason = props.get("reason") or report.reason
    if report.when == CRASHED:
        return f"not evaluated: its worker crashed ({reason or 'no report'}); a problem of the runner"
    if status == STATUS_NOT_RUN and not reason.startswith(("not started", "not finished")):
        return f"skipped at run time: {reason} (selected, but it did not judge the deploy)"
    if status == STATUS_SKIPPED:
        return f"skipped by a mark: {reason}"
    if status == STATUS_NOT_EVALUATED and not props.get("reason") and "a problem of the runner" not in reason:
        return f"not evaluated: {report.when} error: {reason} (a problem of the runner, not of the service)"
    return str(reason)
