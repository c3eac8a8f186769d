"""The verdict in the reports users already open: pytest-html, Allure and GitHub Actions.

Each part is registered only where its consumer is: pytest-html or allure-pytest loaded,
``GITHUB_ACTIONS=true``. Service failures are already failures there (``CheckFailed`` is an
``AssertionError``); this adds what a per-test view cannot know: the run's verdict.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any, Callable

import pytest

from ..report.document import build, headline
from .collection import is_required

if TYPE_CHECKING:
    from ..config import SmokeConfig
    from ..model import Outcome, RunSummary
    from ..redact import Redactor

ALLURE_PLUGIN_NAMES = ("allure_pytest", "allure_pytest.plugin")
HTML_PLUGIN_NAMES = ("html", "pytest_html.plugin")


def allure_loaded(config: pytest.Config) -> bool:
    return any(config.pluginmanager.hasplugin(name) for name in ALLURE_PLUGIN_NAMES) and bool(
        config.getoption("allure_report_dir", None)
    )


def html_loaded(config: pytest.Config) -> bool:
    return any(config.pluginmanager.hasplugin(name) for name in HTML_PLUGIN_NAMES)


def on_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


class AllureSeverity:
    """In every process that runs items: a required check or test is Allure severity
    ``critical``, an optional one ``normal`` (allure-pytest reads its own ``allure_label`` marks)."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            level = "critical" if is_required(item) else "normal"
            item.add_marker(pytest.mark.allure_label(level, label_type="severity"))


class VerdictElsewhere:
    """In the controlling process: the verdict as pytest-html's summary and title, and as GitHub
    workflow commands (one per critical failure and warning, with its reason and the config file
    and line). Allure's environment entries are an output like the others (``publish``)."""

    def __init__(self, summary: Callable[[], RunSummary | None], smoke: SmokeConfig, redactor: Redactor):
        self.summary = summary  # the controller's, once decided
        self.smoke = smoke
        self.redactor = redactor
        self.html_report: Any = None

    def _headline(self) -> tuple[str, str] | None:
        summary = self.summary()
        if summary is None:
            return None
        document = build(summary, self.smoke, self.redactor)
        return headline(document), self.redactor.text(summary.decision.reason)

    # -- pytest-html -------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        self.html_report = report  # its title is read when the report is written, at the end

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        try:
            verdict = self._headline()
        except Exception as exc:  # a broken extra never costs the run its verdict or its reports
            decided = self.summary()
            if decided is not None:
                decided.notes.append(
                    self.redactor.text(f"could not add the verdict to pytest-html: {exc.__class__.__name__}: {exc}")
                )
            return
        if verdict is None:
            return
        head, reason = verdict
        prefix.append(f'<p class="smoke-verdict"><strong>{html.escape(head)}</strong></p>')
        prefix.append(f'<p class="smoke-decision">{html.escape(reason)}</p>')
        if self.html_report is not None:
            self.html_report.title = f"{self.html_report.title}: {head}"

    # -- GitHub Actions, once the verdict is final -------------------------------------------------------

    def annotate(self, terminal: Any) -> None:
        summary = self.summary()
        if summary is not None and on_github_actions():
            for line in workflow_commands(summary, self.smoke):
                terminal.write_line(self.redactor.text(line))


def workflow_commands(summary: RunSummary, smoke: SmokeConfig) -> list[str]:
    """``::error`` for each critical failure, ``::warning`` for each warning, in GitHub's syntax
    (https://docs.github.com/actions/reference/workflow-commands-for-github-actions)."""
    checks = {check.node_name: check for check in smoke.checks}
    lines = []
    for level, outcomes, word in (
        ("error", summary.verdict.critical, "critical"),
        ("warning", summary.verdict.warnings, "warning"),
    ):
        for outcome in outcomes:
            file, line = _where(outcome, smoke, checks)
            properties = [f"file={_property(file)}"] + ([f"line={line}"] if line else [])
            properties.append(f"title={_property(f'Smoke {outcome.kind} {outcome.name}: {word}')}")
            lines.append(f"::{level} {','.join(properties)}::{_data(outcome.reason or outcome.status)}")
    return lines


def _where(outcome: Outcome, smoke: SmokeConfig, checks: dict[str, Any]) -> tuple[str, int | None]:
    file, name = outcome.nodeid.partition("::")[0], outcome.nodeid.rpartition("::")[2]
    check = checks.get(name) if outcome.kind != "custom" else None
    return file, smoke.line_of(check) if check is not None else None


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
