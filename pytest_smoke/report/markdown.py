"""``--smoke-markdown PATH`` and ``$GITHUB_STEP_SUMMARY``: the run as Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .chart import gantt
from .document import headline
from .shape import ReportDocument

ICONS = {"passed": "✅", "critical": "❌", "warning": "⚠️", "skipped": "⏭️", "not_run": "⛔", "not_selected": "➖"}


def _cell(text: Any) -> str:
    """One table cell or list item: a service's bytes never become markup, a link or a control
    sequence in the PR comment or the terminal that shows the file."""
    line = " ".join(str(text if text is not None else "").splitlines())
    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)
    return line.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


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
    lines += ["", f"Re-run: `{document['rerun_command']}`", ""]
    return "\n".join(lines)


def _summary(document: ReportDocument) -> list[str]:
    lines = [f"## {headline(document)}", ""]
    v = document["verdict"]
    lines.append(
        f"**{v['critical']} critical, {v['warnings']} warning(s), {v['passed']} passed** "
        f"in {document['duration_seconds']:.1f} s · config `{document['config']}`"
        + (f" · environment `{document['environment']}`" if document.get("environment") else "")
    )
    if v.get("not_evaluated_required"):
        lines += [
            "",
            "**Not verified:** required checks not evaluated: "
            + ", ".join(f"`{_cell(n)}`" for n in v["not_evaluated_required"]),
        ]
    if v.get("not_selected_required"):
        lines += [
            "",
            "**Not verified:** required checks not selected: "
            + ", ".join(f"`{_cell(n)}`" for n in v["not_selected_required"]),
        ]
    return lines


def _checks_table(document: ReportDocument) -> list[str]:
    lines = ["", "| | Check | Kind | Required | Result | Time |", "|---|---|---|---|---|---|"]
    for check in document["checks"]:
        result = check["reason"] or check.get("facts", {}).get("summary") or check["status"]
        lines.append(
            f"| {ICONS.get(check['severity'], '')} | `{_cell(check['name'])}` | {check['kind']} | "
            f"{'yes' if check['required'] else 'no'} | {_cell(result)} | {check['duration_seconds']:.2f} s |"
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
        lines.append(f"{number}. **{_cell(check['name'])}** ({check['severity']}): {_cell(check['reason'])}  ")
        lines.append(f"    Issue: {fix['issue']}  ")
        lines.append(f"    Impact: {fix['impact']}")
        for step in fix["steps"]:
            lines.append(f"    - {step}")
    return lines


def _rollback(document: ReportDocument) -> list[str]:
    rollback = document.get("rollback")
    lines = ["", "### Rollback", ""]
    if rollback is None:
        lines.append(f"Not triggered: {document['decision']['reason']}.")
        return lines
    lines.append(f"**{rollback['status'].replace('_', ' ')}**: {rollback['message']}")
    for name, image in (rollback.get("current_images") or {}).items():
        lines.append(f"- `{name}`: `{image}` → `{rollback['target_images'].get(name, '?')}`")
    if rollback["manual_command"]:
        lines += ["", "```bash", rollback["manual_command"], "```"]
    return lines


def _notifications(document: ReportDocument) -> list[str]:
    told = list(document.get("notifications") or [])
    if not told:
        return []
    lines = ["", "### Incidents and notifications", ""]
    for sent in told:
        ticket = f" · incident ticket {_cell(sent['ticket'])}" if sent.get("ticket") else ""
        lines.append(f"- {_cell(sent['channel'])} ({_cell(sent.get('type'))}): {sent['status']}{ticket}")
    return lines


def _notes_and_timeline(document: ReportDocument) -> list[str]:
    lines: list[str] = []
    if document.get("notes"):
        lines += ["", "### Notes", ""] + [f"- {_cell(note)}" for note in document["notes"]]
    if document["timeline"]:
        lines += ["", "### Timeline", ""]
        lines += [f"- `{event['at']}` {event['event'].replace('_', ' ')}" for event in document["timeline"]]
    return lines


def write(text: str, path: str | Path, append: bool = False) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if append else "w", encoding="utf-8") as handle:
        handle.write(text)


# Public for the fleet report, which escapes its own table the same way.
cell = _cell
