"""The targets' JSON reports, checked against the fleet config, into one fleet result.

Nothing here contacts a target. Which targets must report comes from the config, never from the
reports: a target without a report is "never reported" (inconclusive), not forgotten. A report is
data from another process: one that is not a smoke report, comes from another config (digest) or
another fleet run (``SMOKE_FLEET_RUN_ID``), or names a target the fleet does not have is refused
and said so. For a target that reported more than once (a retried Job), the newest report wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, cast

import jsonschema

from ..model import Fleet, FleetTarget
from ..redact import escape_controls, shorten
from ..report.document import headline
from ..report.shape import ReportDocument

# A target's report is a few hundred kilobytes at most; a larger file is not one.
MAX_REPORT_BYTES = 32 * 1024 * 1024
# Most urgent first: a rollback that needs a human, critical failures, no verdict (inconclusive,
# not ready, an internal error), then the rest; the fleet's exit status is its most urgent target's.
URGENCY = (10, 1, 12, 11, 3, 2, 5, 4, 0)
EXIT_INCONCLUSIVE = 12
GREEN = ("passed", "warning")


def _urgency(code: int) -> int:
    """Its place in URGENCY; a code not in it (a crash's) sorts with the no-verdict ones."""
    return URGENCY.index(code) if code in URGENCY else URGENCY.index(EXIT_INCONCLUSIVE)


@dataclass
class TargetResult:
    """One target as the fleet sees it."""

    name: str
    labels: dict[str, str]
    wave: int | None
    status: str  # passed, warning, partial, critical, rolled_back, rollback_failed, inconclusive, ...
    exit_status: int
    summary: str  # one line: the target's headline, or why it has none
    report: ReportDocument | None = None
    source: str = ""  # the report file it came from

    @property
    def green(self) -> bool:
        """Passed (warnings allowed) and verified: what lets the next wave start."""
        return self.status in GREEN and bool(self.report and self.report["verdict"].get("verified"))

    @property
    def failed(self) -> bool:
        return self.exit_status in (1, 10)


@dataclass
class FleetResult:
    config: str
    digest: str
    run_id: str
    targets: list[TargetResult]
    waves: list[dict[str, Any]] = field(default_factory=list)  # number, select, targets, status
    refused: list[tuple[str, str]] = field(default_factory=list)  # (report file, why)
    notes: list[str] = field(default_factory=list)
    # The run ended before it reached a fleet verdict (a collection error, Ctrl-C): its exit status.
    ended_early: int | None = None

    @property
    def exit_status(self) -> int:
        codes = [target.exit_status for target in self.targets]
        if self.ended_early is not None:
            # Interrupted: still a rollback that needs a human, or a critical failure, where a
            # target that ended reported one; else the interruption's own status.
            codes = [code for code in codes if code in (10, 1)] + [self.ended_early]
        return min(codes, key=_urgency) if codes else 5

    @property
    def state(self) -> str:
        state = self._state_of_targets()
        if self.ended_early is not None and state in ("passed", "warning", "partial"):
            return "inconclusive"  # what reported is no fleet verdict
        return state

    def _state_of_targets(self) -> str:
        statuses = {target.status for target in self.targets}
        if any(target.exit_status == 10 for target in self.targets):
            return "rollback_failed"
        if any(target.exit_status == 1 for target in self.targets):
            return "critical"
        if any(target.exit_status != 0 for target in self.targets):
            return "inconclusive"
        if statuses & {"partial", "not_selected"}:
            return "partial"
        if "warning" in statuses:
            return "warning"
        return "passed"

    def wave_passed(self, number: int) -> bool:
        members = [target for target in self.targets if target.wave == number]
        return bool(members) and all(target.green for target in members)


@lru_cache(maxsize=1)
def _report_validator() -> Any:

    text = resources.files("pytest_smoke.schema").joinpath("smoke-report.schema.json").read_text("utf-8")
    schema = json.loads(text)
    return jsonschema.validators.validator_for(schema)(schema)


def read_reports(paths: Iterable[str | Path]) -> list[tuple[str, ReportDocument | None, str]]:
    """Each file as ``(path, document, "")``, or ``(path, None, why it is not a smoke report)``."""
    read: list[tuple[str, ReportDocument | None, str]] = []
    for path in paths:
        shown = str(path)
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_REPORT_BYTES + 1)
        except OSError as exc:
            read.append((shown, None, f"cannot be read ({exc.strerror or exc.__class__.__name__})"))
            continue
        if len(data) > MAX_REPORT_BYTES:
            read.append((shown, None, f"is larger than {MAX_REPORT_BYTES // (1024 * 1024)} MiB: not a smoke report"))
            continue
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            read.append((shown, None, f"is not JSON ({shorten(str(exc), 80)})"))
            continue
        error = next(iter(_report_validator().iter_errors(document)), None) if isinstance(document, dict) else True
        if error is not None:
            where = "/".join(str(part) for part in getattr(error, "absolute_path", ())) or "the document"
            what = shorten(getattr(error, "message", "not an object"), 120)
            read.append((shown, None, f"is not a smoke report ({where}: {what})"))
            continue
        read.append((shown, cast("ReportDocument", document), ""))  # its shape is the schema's, checked above
    return read


def merge(
    fleet: Fleet,
    config: str,
    reports: Iterable[tuple[str, ReportDocument | None, str]],
    run_id: str | None = None,
    selected: set[str] | None = None,
    environment: str | None = None,
) -> FleetResult:
    """The fleet's result from its targets' reports (see :func:`read_reports`). ``selected``:
    the targets this run checked (None: all); the others are not selected, never verified.
    ``environment``: the ``--smoke-env`` the targets ran with; a report of another is refused."""
    result = FleetResult(config=config, digest=fleet.digest, run_id=run_id or "", targets=[])
    if run_id is None:
        result.notes.append("no run id (--run-id, SMOKE_FLEET_RUN_ID): reports of any fleet run were accepted")
    accepted: dict[str, list[tuple[str, ReportDocument]]] = {}
    for path, document, problem in reports:
        why = problem or _refusal(fleet, document, run_id, environment)
        entry = document.get("fleet") if document is not None else None
        if why or document is None or entry is None:
            result.refused.append((path, why))
            continue
        accepted.setdefault(entry["target"], []).append((path, document))
    newest = {name: _deciding(name, found, result.notes) for name, found in accepted.items()}
    stopped = ""  # why later waves did not start: "wave 1 failed at eu-canary"
    for number, members in _in_wave_order(fleet):
        entries = [
            _entry(target, newest, stopped, result.notes)
            if selected is None or target.name in selected
            else TargetResult(target.name, dict(target.labels), target.wave, "not_selected", 0, "not selected")
            for target in members
        ]
        result.targets.extend(entries)
        failing = next((entry for entry in entries if not entry.green and entry.status != "not_selected"), None)
        if number is not None and failing is not None and not stopped:
            stopped = f"wave {number} failed at {failing.name}"
    result.waves = [
        {
            "number": wave.number,
            "select": wave.select,
            "targets": list(wave.targets),
            "status": _wave_status(result, wave.number),
        }
        for wave in fleet.waves
    ]
    return result


def _in_wave_order(fleet: Fleet) -> list[tuple[int | None, list[FleetTarget]]]:
    """Wave by wave, config order within each; one group without waves."""
    if not fleet.waves:
        return [(None, list(fleet.targets))]
    return [(wave.number, [target for target in fleet.targets if target.wave == wave.number]) for wave in fleet.waves]


def _entry(
    target: FleetTarget, newest: dict[str, tuple[str, ReportDocument]], stopped: str, notes: list[str]
) -> TargetResult:
    labels = dict(target.labels)
    if target.name in newest:
        path, document = newest[target.name]
        if stopped:
            notes.append(f"{target.name} (wave {target.wave}) ran although {stopped}")
        return _from_report(target.name, labels, target.wave, document, path)
    if stopped:
        return TargetResult(
            target.name, labels, target.wave, "not_started", EXIT_INCONCLUSIVE, f"not started: {stopped}"
        )
    return TargetResult(target.name, labels, target.wave, "never_reported", EXIT_INCONCLUSIVE, "never reported")


def _deciding(name: str, found: list[tuple[str, ReportDocument]], notes: list[str]) -> tuple[str, ReportDocument]:
    """Which of a target's reports stands for it: the newest, unless one recorded a rollback (done,
    failed, refused or held). Then that one decides: a later attempt tested the rolled-back version
    or ran after a human was called, and cannot make the target green."""
    ordered = sorted(found, key=lambda item: item[1]["finished_at"])
    decisive = [item for item in ordered if _recorded_rollback(item[1])]
    if decisive and decisive[-1] is not ordered[-1]:
        notes.append(
            f"{name}: {len(found)} reports; the one that recorded a rollback ({decisive[-1][0]}) decides,"
            " not a later attempt"
        )
    return (decisive or ordered)[-1]


def _recorded_rollback(document: ReportDocument) -> bool:
    rollback = document["rollback"]
    return rollback is not None and rollback["status"] != "dry_run"


def _refusal(fleet: Fleet, document: ReportDocument | None, run_id: str | None, environment: str | None) -> str:
    entry = document.get("fleet") if document is not None else None
    if document is None or not entry:
        return "not a fleet target's report (it was not run with --smoke-target)"
    if document.get("environment") != environment:
        wanted = f"--smoke-env {environment}" if environment else "no --smoke-env"
        return f"for environment {shorten(str(document.get('environment')), 40)!r}, and this merge has {wanted}"
    if entry["config_digest"] != fleet.digest:
        return f"from another config (digest {entry['config_digest'][:19]}..., expected {fleet.digest[:19]}...)"
    if run_id is not None and entry["run_id"] != run_id:
        return f"from another fleet run (run id {shorten(entry['run_id'], 60)!r}, expected {run_id!r})"
    if fleet.target(entry["target"]) is None:
        return f"names target {shorten(entry['target'], 60)!r}, which the fleet does not have"
    return ""


def _from_report(
    name: str, labels: dict[str, str], wave: int | None, document: ReportDocument, path: str
) -> TargetResult:

    exit_status = int(document["exit_status"])
    state = document["verdict"]["state"]
    rollback = document["rollback"]["status"] if document["rollback"] else None
    if exit_status == 10:
        status = "rollback_failed" if rollback != "held" else "rollback_held"
    elif exit_status == 1:
        status = "rolled_back" if rollback == "completed" else "critical"
    elif exit_status == 12:
        status = "inconclusive"
    elif exit_status == 11:
        status = "not_ready"
    elif exit_status == 0:
        status = state if state in ("passed", "warning", "partial") else "passed"
    else:
        status = "error"
    if exit_status not in URGENCY:  # an exit status this merge does not know: no verdict
        exit_status = EXIT_INCONCLUSIVE
    return TargetResult(name, labels, wave, status, exit_status, escape_controls(headline(document)), document, path)


def _wave_status(result: FleetResult, number: int) -> str:
    members = [target for target in result.targets if target.wave == number]
    if all(target.status == "not_started" for target in members):
        return "not_started"
    return "passed" if result.wave_passed(number) else "failed"


def critical_lines(target: TargetResult, limit: int = 5) -> list[str]:
    """The target's critical failures, one line each: what a reader of the fleet needs first."""
    if target.report is None:
        return []
    lines = [
        escape_controls(shorten(f"{check['name']}: {check['reason']}", 300))
        for check in target.report["checks"]
        if check["severity"] == "critical"
    ]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
