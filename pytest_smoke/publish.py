"""Write the run's reports and send its notifications, once, on the controller.

Each output is independent: one that fails (a full disk, a dead Slack) is reported as a warning
line and never stops the others.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .controller import SmokeController


def publish(controller: "SmokeController") -> None:
    from .notify import dispatch
    from .report import document as report_document
    from .report import json_report, junit, markdown

    config, summary, smoke = controller.config, controller.summary, controller.smoke
    assert summary is not None
    document = report_document.build(summary, smoke, controller.redactor, finished_at=time.time())

    if summary.decision.action != "not_evaluated":
        names = list(smoke.section("rollback_strategy").get("notify_channels") or [])
        if names:
            summary.notifications = dispatch(document, smoke.section("notifications"), names, controller.redactor)
            document["notifications"] = controller.redactor.value(summary.notifications)

    def guarded(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # one broken output never costs the others
            summary.notes.append(controller.redactor.text(f"could not write {what}: {exc.__class__.__name__}: {exc}"))

    text = None
    if config.getoption("smoke_report"):
        guarded("the JSON report", lambda: json_report.write(document, config.getoption("smoke_report")))
    if config.getoption("smoke_markdown") or os.environ.get("GITHUB_STEP_SUMMARY"):
        text = controller.redactor.text(markdown.render(document))
    if config.getoption("smoke_markdown"):
        guarded("the Markdown report", lambda: markdown.write(text, config.getoption("smoke_markdown")))
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        guarded("$GITHUB_STEP_SUMMARY", lambda: markdown.write(text, os.environ["GITHUB_STEP_SUMMARY"], append=True))
    xmlpath = config.getoption("xmlpath", None)
    if xmlpath and config.getini("junit_family") == "xunit2" and os.path.exists(xmlpath):
        guarded("pytest's JUnit file", lambda: junit.hoist_testcase_properties(xmlpath))
    if config.getoption("smoke_junit"):
        guarded("the smoke JUnit file", lambda: junit.write(document, config.getoption("smoke_junit")))
