"""The fleet result for people and tools: terminal text, JSON, JUnit and Markdown.

A target's report is data: every string from it is escaped for the output it lands in (control
characters on a terminal, markup in Markdown, XML by junit-xml). Details are shown only for the
targets that are not green; the green ones get one line each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from .. import __version__
from ..redact import escape_controls
from ..report import json_report
from ..report.junit import junit_names, surefire
from ..report.markdown import cell, render
from .merge import FleetResult, TargetResult, critical_lines

FLEET_SCHEMA_VERSION = 1


def one_line(text: str) -> str:
    """Report text on one terminal line: control characters escaped, line breaks shown as ``\\n``,
    so no report can print a line of its own (a forged verdict)."""
    return escape_controls(str(text)).replace("\r", "\\r").replace("\n", "\\n")


MARKS = {
    "passed": "✓",
    "warning": "⚠",
    "partial": "◐",
    "not_selected": "➖",
    "critical": "✗",
    "rolled_back": "✗",
    "rollback_failed": "✗",
    "rollback_held": "✗",
}
VERBS = {
    "rolled_back": "rolled back",
    "critical": "critical",
    "rollback_failed": "ROLLBACK FAILED",
    "rollback_held": "rollback held",
    "inconclusive": "inconclusive",
    "not_ready": "not ready",
    "never_reported": "never reported",
    "error": "no verdict",
}


def headline(result: FleetResult) -> str:
    """``✗ 1 of 6 targets failed: eu-west-1 rolled back; wave 3 not started``."""
    total = len(result.targets)
    failed = [target for target in result.targets if target.failed]
    unknown = [target for target in result.targets if not target.failed and target.exit_status != 0]
    if failed:
        return f"✗ {len(failed)} of {total} targets failed: " + "; ".join(_what_happened(failed, unknown))
    if unknown:
        return f"? {len(unknown)} of {total} targets not verified: " + "; ".join(_what_happened([], unknown))
    partial = [target.name for target in result.targets if target.status in ("partial", "not_selected")]
    if partial:
        return f"◐ {len(partial)} of {total} targets not verified (partial or not selected): " + ", ".join(partial)
    warned = sum(1 for target in result.targets if target.status == "warning")
    return f"✓ all {total} targets passed" + (f" ({warned} with warnings)" if warned else "")


def _what_happened(failed: list[TargetResult], unknown: list[TargetResult]) -> list[str]:
    """Each failed target, then the waves not started, then each target without a verdict."""
    waiting = sorted({target.wave for target in unknown if target.status == "not_started" and target.wave})
    return (
        [f"{target.name} {VERBS.get(target.status, target.status)}" for target in failed]
        + [f"wave {number} not started" for number in waiting]
        + [
            f"{target.name} {VERBS.get(target.status, target.status)}"
            for target in unknown
            if target.status != "not_started"
        ]
    )


def terminal_lines(result: FleetResult) -> list[str]:
    lines = [one_line(headline(result))]
    for target in result.targets:
        wave = f" (wave {target.wave})" if target.wave else ""
        mark = MARKS.get(target.status, "?")
        lines.append(f"  {mark} {one_line(target.name)}{wave}: {one_line(target.summary)}")
        if target.status not in ("passed",):
            lines += [f"      {one_line(line)}" for line in critical_lines(target)]
            rollback = target.report["rollback"] if target.report else None
            if rollback and rollback["message"]:
                lines.append(f"      Rollback: {one_line(rollback['message'])}")
    lines += [f"Refused: {one_line(path)}: {one_line(why)}" for path, why in result.refused]
    lines += [f"Note: {one_line(note)}" for note in result.notes]
    lines.append(f"Exit status: {result.exit_status}")
    return lines


def document(result: FleetResult) -> dict[str, Any]:
    """The fleet's JSON report (schema: ``smoke-fleet-report.schema.json``): each target's own
    report is embedded whole, as it was written (already redacted by its run)."""
    return {
        "schema_version": FLEET_SCHEMA_VERSION,
        "generator": f"pytest-deploy-smoke {__version__}",
        "kind": "fleet",
        "config": result.config,
        "config_digest": result.digest,
        "run_id": result.run_id,
        "merged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "verdict": {
            "state": result.state,
            "headline": headline(result),
            "targets": len(result.targets),
            "failed": sum(1 for target in result.targets if target.failed),
            "not_verified": sum(1 for target in result.targets if not target.green),
        },
        "exit_status": result.exit_status,
        "waves": result.waves,
        "targets": [_target_entry(target) for target in result.targets],
        "refused": [{"report": path, "reason": why} for path, why in result.refused],
        "notes": list(result.notes),
    }


def _target_entry(target: TargetResult) -> dict[str, Any]:
    return {
        "target": target.name,
        "labels": target.labels,
        "wave": target.wave,
        "status": target.status,
        "exit_status": target.exit_status,
        "summary": target.summary,
        "source": target.source or None,
        "report": target.report,
    }


def write_json(result: FleetResult, path: str | Path) -> None:
    json_report.write(document(result), path)


def write_junit(result: FleetResult, path: str | Path) -> None:
    """A ``<testsuite>`` per target, named by it; test cases are named from node ids, which carry
    the target, so no two targets' cases collide."""

    suites = []
    for target in result.targets:
        properties = {"target": target.name, "status": target.status, "exit_status": str(target.exit_status)}
        properties.update({f"label.{key}": value for key, value in target.labels.items()})
        if target.report is None:
            case = TestCase(name="report", classname=f"fleet.{target.name}")
            case.add_error_info(message=target.summary, error_type=target.status)
            suites.append(TestSuite(target.name, [case], properties=properties))
            continue
        cases = []
        for check in target.report["checks"]:
            classname, name = (escape_controls(part) for part in _target_junit_names(check["nodeid"], target.name))
            case = TestCase(name=name, classname=classname, elapsed_sec=round(float(check["duration_seconds"]), 3))
            text = escape_controls("\n".join(filter(None, [check["reason"], check.get("details") or ""])))
            if check["severity"] == "critical":
                case.add_failure_info(
                    message=check["reason"], output=text, failure_type=check["failure_kind"] or "failed"
                )
            elif check["severity"] == "warning":
                case.add_failure_info(message=one_line(check["reason"]), output=text, failure_type="warning")
            elif check["status"] in ("not_run", "not_selected", "skipped"):
                case.add_skipped_info(message=one_line(check["reason"] or check["status"]))
            cases.append(case)
        suites.append(TestSuite(target.name, cases, properties=properties, timestamp=target.report["started_at"]))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(surefire(to_xml_report_string(suites, prettyprint=True, encoding="utf-8")), encoding="utf-8")


def _target_junit_names(nodeid: str, target: str) -> tuple[str, str]:
    """``junit_names``, with the target put in the class name of a test whose node id does not
    carry it (a developer's test that asked for no smoke fixture runs in every target)."""
    classname, name = junit_names(nodeid)
    address, _, params = nodeid.partition("[")
    ids = params.removesuffix("]")
    if f"::{target}::" in address or ids == target or ids.startswith(f"{target}-") or ids.endswith(f"-{target}"):
        return classname, name
    return f"{target}.{classname}", name


def markdown(result: FleetResult) -> str:
    """A fleet table, then each target that is not green in full (its own report, chart included)."""
    lines = [f"## {cell(headline(result))}", "", "| | Target | Labels | Wave | Result |", "|---|---|---|---|---|"]
    for target in result.targets:
        labels = ", ".join(f"{cell(key)}={cell(value)}" for key, value in target.labels.items())
        lines.append(
            f"| {MARKS.get(target.status, '?')} | `{cell(target.name)}` | {labels} | {target.wave or ''} |"
            f" {cell(target.summary)} |"
        )
    if result.refused:
        lines += ["", "### Reports refused", ""] + [f"- `{cell(path)}`: {cell(why)}" for path, why in result.refused]
    if result.notes:
        lines += ["", "### Notes", ""] + [f"- {cell(note)}" for note in result.notes]
    for target in result.targets:
        if target.report is not None and target.status != "passed":
            lines += ["", f"### Target `{cell(target.name)}`", "", _demoted(render(target.report))]
    return "\n".join(lines) + "\n"


def _demoted(markdown_text: str) -> str:
    """A target's own report under the fleet's headings: ## becomes ####, ### becomes #####, except
    inside fenced code (a command, the chart), which stays as written."""
    lines, fence = [], ""
    for line in markdown_text.split("\n"):
        stripped = line.lstrip()
        if fence and stripped.startswith(fence):
            fence = ""
        elif not fence and stripped.startswith(("```", "~~~")):
            fence = stripped[: len(stripped) - len(stripped.lstrip(stripped[0]))]
        elif not fence and line.startswith("## "):
            line = "####" + line[2:]
        elif not fence and line.startswith("### "):
            line = "#####" + line[3:]
        lines.append(line)
    return "\n".join(lines)
