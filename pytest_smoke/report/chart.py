"""The run as a Mermaid ``gantt`` chart, for the Markdown report and the GitHub step summary
(GitHub renders Mermaid natively): one bar per check on the run's real time axis, failures
marked ``crit``, the deployment and the failure as milestones, the rollback as its own section."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from .shape import ReportDocument

DATE_FORMAT = "YYYY-MM-DDTHH:mm:ss.SSS"  # dayjs, as Mermaid parses it
# Mermaid's task syntax gives ':' ';' '#' and quotes a meaning; a name keeps the rest.
_NOT_IN_NAME = re.compile(r"[^\w .,()\[\]/+@=-]+", re.UNICODE)
MAX_BARS = 200  # beyond this a chart is unreadable; the table above lists every check
TAGS = {"passed": "done", "failed": "crit", "not_evaluated": "active"}
# Each bar starts with its outcome's mark, so no check name can begin a line with a Mermaid
# keyword ("section", "excludes", "click", "dateFormat").
MARKS = {"passed": "✓", "failed": "✗", "not_evaluated": "?"}


def gantt(document: ReportDocument) -> str:
    """The chart's Mermaid source, or "" when no check has a time to show or a time cannot be read
    (a hand-edited document): no chart beats a crash."""
    try:
        return _gantt(document)
    except (ValueError, KeyError, TypeError):
        return ""


def _gantt(document: ReportDocument) -> str:
    bars = [check for check in document["checks"] if check["status"] in TAGS and check.get("finished_at")]
    if not bars:
        return ""
    lines = [
        "gantt",
        f"    title Smoke run {_stamp(document['started_at'])[:19].replace('T', ' ')} UTC",
        f"    dateFormat {DATE_FORMAT}",
        # Milliseconds on the axis when the whole run takes seconds (d3's %L).
        f"    axisFormat {'%H:%M:%S.%L' if float(document.get('duration_seconds') or 0) < 10 else '%H:%M:%S'}",
        "    todayMarker off",
    ]
    events = {event["event"]: event["at"] for event in document.get("timeline") or []}
    milestones = [
        (name, events[key])
        for key, name in (("deployment_completed", "Deployment completed"), ("failures_detected", "Failures detected"))
        if events.get(key)
    ]
    if milestones:
        lines.append("    section Run")
        lines += [f"    {name} :milestone, m{i}, {_stamp(at)}, 0d" for i, (name, at) in enumerate(milestones)]
    lines.append("    section Checks")

    def start_of(check: Mapping[str, Any]) -> datetime:
        return _time(check["finished_at"] or document["finished_at"]) - timedelta(
            seconds=max(float(check["duration_seconds"]), 0.001)
        )

    for index, check in enumerate(sorted(bars, key=start_of)[:MAX_BARS]):
        end, start = _time(check["finished_at"] or document["finished_at"]), start_of(check)
        word = {
            "passed": "",
            "failed": " failed" if check["required"] else " failed (optional)",
            "not_evaluated": " not evaluated",
        }[check["status"]]
        end = max(end, start + timedelta(milliseconds=1))  # a zero-length bar would not be drawn
        lines.append(
            f"    {MARKS[check['status']]} {_name(check['name'])}{word} :{TAGS[check['status']]}, "
            f"c{index}, {_format(start)}, {_format(end)}"
        )
    rollback = document["rollback"]
    if rollback and rollback["started_at"]:
        finished = rollback["finished_at"] or document["finished_at"]
        tag = "done" if rollback["status"] == "completed" else "crit"
        start = _time(rollback["started_at"])
        lines.append("    section Rollback")
        lines.append(
            f"    Rollback {_name(rollback['status'].replace('_', ' '))} :{tag}, r0, {_format(start)}, "
            f"{_format(max(_time(finished), start + timedelta(milliseconds=1)))}"
        )
    return "\n".join(lines) + "\n"


def _name(text: str) -> str:
    return " ".join(_NOT_IN_NAME.sub(" ", text).split())[:80] or "check"


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)


def _format(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _stamp(stamp: str) -> str:
    return _format(_time(stamp))
