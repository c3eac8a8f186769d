"""``--smoke-markdown PATH`` and ``$GITHUB_STEP_SUMMARY``: the run as Markdown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .chart import gantt
from .document import headline
from .shape import ReportDocument

ICONS = {"passed": "✅", "critical": "❌", "warning": "⚠️", "skipped": "⏭️", "not_run": "⛔", "not_selected": "➖"}


def cell(text: Any) -> str:
    """One table cell, list item or inline code: a service's bytes (and a report read back from
    disk, every field of it) never become markup, a link or a control sequence in the PR comment
    or the terminal that shows the file."""
    line = " ".join(str(text if text is not None else "").splitlines())
    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)
    for raw, safe in (
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("`", "'"),
        ("[", "\\["),
        ("]", "\\]"),
    ):
        line = line.replace(raw, safe)
    return line


def render(document: ReportDocument) -> str:
    lines = [
        *_summary(document),
        *_checks_table(document),
        *_remediation(document),
        *_rollback(document),
        *_notifications(document),
        *_notes_and_timeline(document),
    ]
    chart = gantt(document)
    if chart:  # GitHub renders it; elsewhere it reads as text
        lines += ["", "```mermaid", chart.rstrip("\n"), "```"]
    lines += ["", f"Re-run: `{cell(document['rerun_command'])}`", ""]
    return "\n".join(lines)


def _summary(document: ReportDocument) -> list[str]:
    lines = [f"## {cell(headline(document))}", ""]
    v = document["verdict"]
    lines.append(
        f"**{v['critical']} critical, {v['warnings']} warning(s), {v['passed']} passed** "
        f"in {document['duration_seconds']:.1f} s · config `{cell(document['config'])}`"
        + (f" · environment `{cell(document['environment'])}`" if document.get("environment") else "")
    )
    if v.get("not_evaluated_required"):
        lines += [
            "",
            "**Not verified:** required checks not evaluated: "
            + ", ".join(f"`{cell(n)}`" for n in v["not_evaluated_required"]),
        ]
    if v.get("not_selected_required"):
        lines += [
            "",
            "**Not verified:** required checks not selected: "
            + ", ".join(f"`{cell(n)}`" for n in v["not_selected_required"]),
        ]
    return lines


def _checks_table(document: ReportDocument) -> list[str]:
    lines = ["", "| | Check | Kind | Required | Result | Time |", "|---|---|---|---|---|---|"]
    for check in document["checks"]:
        result = check["reason"] or check.get("facts", {}).get("summary") or check["status"]
        lines.append(
            f"| {ICONS.get(check['severity'], '')} | `{cell(check['name'])}` | {cell(check['kind'])} | "
            f"{'yes' if check['required'] else 'no'} | {cell(result)} | {check['duration_seconds']:.2f} s |"
        )
    return lines


def _remediation(document: ReportDocument) -> list[str]:
    problems = [c for c in document["checks"] if "remediation" in c]
    if not problems:
        return []
    lines = ["", "### Remediation", ""]
    for number, check in enumerate(problems, 1):
        fix = check["remediation"]
        # Four spaces: CommonMark and Python-Markdown (mkdocs) both nest the steps under the item.
        lines.append(f"{number}. **{cell(check['name'])}** ({cell(check['severity'])}): {cell(check['reason'])}  ")
        lines.append(f"    Issue: {cell(fix['issue'])}  ")
        lines.append(f"    Impact: {cell(fix['impact'])}")
        lines += [f"    - {cell(step)}" for step in fix["steps"]]
    return lines


def _rollback(document: ReportDocument) -> list[str]:
    rollback = document.get("rollback")
    lines = ["", "### Rollback", ""]
    if rollback is None:
        lines.append(f"Not triggered: {cell(document['decision']['reason'])}.")
        return lines
    lines.append(f"**{cell(rollback['status'].replace('_', ' '))}**: {cell(rollback['message'])}")
    for name, image in (rollback.get("current_images") or {}).items():
        lines.append(f"- `{cell(name)}`: `{cell(image)}` → `{cell(rollback['target_images'].get(name, '?'))}`")
    if rollback["manual_command"]:
        lines += ["", *code_block(rollback["manual_command"], "bash")]
    return lines


def _notifications(document: ReportDocument) -> list[str]:
    told = list(document.get("notifications") or [])
    if not told:
        return []
    lines = ["", "### Incidents and notifications", ""]
    for sent in told:
        ticket = f" · incident ticket {cell(sent['ticket'])}" if sent.get("ticket") else ""
        lines.append(f"- {cell(sent['channel'])} ({cell(sent.get('type'))}): {cell(sent['status'])}{ticket}")
    return lines


def _notes_and_timeline(document: ReportDocument) -> list[str]:
    lines: list[str] = []
    if document.get("notes"):
        lines += ["", "### Notes", ""] + [f"- {cell(note)}" for note in document["notes"]]
    if document["timeline"]:
        lines += ["", "### Timeline", ""]
        lines += [f"- `{cell(event['at'])}` {cell(event['event'].replace('_', ' '))}" for event in document["timeline"]]
    return lines


def code_block(text: str, language: str = "") -> list[str]:
    """A fenced block that ``text`` cannot close: the fence is longer than any run of backticks in
    it (CommonMark), and its lines are printable."""
    body = ["".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line) for line in str(text).splitlines()]
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, *body, fence]


def write(text: str, path: str | Path, append: bool = False) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if append else "w", encoding="utf-8") as handle:
        handle.write(text)
