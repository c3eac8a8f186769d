"""Write the run's reports and send its notifications, once, on the controller.

Every output is rendered from one report document. Each output is independent: one that fails
(a full disk, a dead Slack) is reported as a note and never stops the others.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..checks.base import CheckTimeout, Deadline, run_with_deadline
from ..notify import dispatch, pushgateway
from ..notify.pushgateway import timeout_of  # prometheus-client itself is imported only to push
from ..report import allure, json_report, junit, markdown, metrics
from ..report import document as report_document
from ..report.shape import ReportDocument

if TYPE_CHECKING:
    from ..config import SmokeConfig
    from ..model import RunSummary
    from ..redact import Redactor


# Past the push's own timeout_seconds, how long the run waits for the metrics (a file write included).
MONITORING_SLACK_SECONDS = 5.0


@dataclass
class Destinations:
    """Where the outputs go: the options and environment that name them."""

    json_path: str | None = None  # --smoke-report
    markdown_path: str | None = None  # --smoke-markdown
    step_summary_path: str | None = None  # $GITHUB_STEP_SUMMARY
    junit_path: str | None = None  # --smoke-junit
    pytest_junit_xunit2: str | None = None  # pytest's own --junitxml file, when its family is xunit2
    rerun_command: str | None = None  # the command line that reproduces this run, shown in every output
    metrics_path: str | None = None  # --smoke-metrics: Prometheus text (*.prom) or OpenMetrics
    pushgateway_url: str | None = None  # --smoke-pushgateway, over monitoring.pushgateway.url
    allure_dir: str | None = None  # --alluredir, when allure-pytest runs: its environment.properties


@dataclass
class Published:
    document: ReportDocument  # what every output was rendered from; the terminal renders it too
    notifications: list[dict[str, Any]] = field(default_factory=list)
    monitoring: list[dict[str, Any]] = field(default_factory=list)  # the metrics push and file: what happened
    problems: list[str] = field(default_factory=list)  # outputs that could not be written


def publish(summary: RunSummary, smoke: SmokeConfig, redactor: Redactor, to: Destinations) -> Published:
    document = report_document.build(summary, smoke, redactor, finished_at=time.time(), rerun=to.rerun_command)
    published = Published(document)

    # The metrics go out while the channels are told: the run waits for the slower of the two,
    # never for both one after the other.
    records: list[dict[str, Any]] = []  # each output adds its record as it finishes
    settings = _pushgateway_settings(smoke, to)
    metrics_path = to.metrics_path or smoke.section("monitoring").get("metrics_file")
    feeder = threading.Thread(
        target=_feed_monitoring,
        args=(document, settings, metrics_path, redactor, records),
        name="smoke-monitoring",
        daemon=True,
    )
    feeder.start()
    if summary.decision.action != "not_evaluated":
        names = list(smoke.section("rollback_strategy").get("notify_channels") or [])
        if names:
            published.notifications = dispatch(document, smoke.section("notifications"), names, redactor)
            document["notifications"] = redactor.value(published.notifications)
    _await_monitoring(feeder, records, settings, redactor, published)
    _write_outputs(document, to, redactor, published)
    document["notes"] = [*document["notes"], *published.problems]
    return published


def _await_monitoring(
    feeder: threading.Thread,
    records: list[dict[str, Any]],
    settings: dict[str, Any],
    redactor: Redactor,
    published: Published,
) -> None:
    """Wait for the metrics (bounded), and record a push that never ended as failed."""
    document = published.document
    seconds = timeout_of(settings)
    feeder.join(seconds + MONITORING_SLACK_SECONDS)  # the push keeps its own deadline; this only bounds a stuck feeder
    published.monitoring = list(records)
    if (
        feeder.is_alive()
        and settings.get("url")
        and not any(r["target"] == "pushgateway" for r in published.monitoring)
    ):
        published.monitoring.append(
            {
                "target": "pushgateway",
                "where": redactor.text(settings["url"]),
                "status": "failed",
                "detail": f"no answer within {seconds:g} s; not waiting any longer",
            }
        )
    if published.monitoring:
        document["monitoring"] = published.monitoring


def _write_outputs(document: ReportDocument, to: Destinations, redactor: Redactor, published: Published) -> None:
    """The files: JSON, Markdown (and the step summary), JUnit, Allure's environment."""

    def guarded(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # one broken output never costs the others
            published.problems.append(redactor.text(f"could not write {what}: {exc.__class__.__name__}: {exc}"))

    json_path, markdown_path, step_summary, junit_path = (
        to.json_path,
        to.markdown_path,
        to.step_summary_path,
        to.junit_path,
    )
    text_holder: list[str] = []
    pytest_junit = to.pytest_junit_xunit2
    if json_path:
        guarded("the JSON report", lambda: json_report.write(document, json_path))
    text = ""
    if markdown_path or step_summary:
        guarded("the Markdown report", lambda: text_holder.append(redactor.text(markdown.render(document))))
        text = text_holder[0] if text_holder else ""
    if markdown_path and text:
        guarded("the Markdown report", lambda: markdown.write(text, markdown_path))
    if step_summary and text:
        guarded("$GITHUB_STEP_SUMMARY", lambda: markdown.write(text, step_summary, append=True))
    if pytest_junit and os.path.exists(pytest_junit):
        guarded("pytest's JUnit file", lambda: junit.hoist_testcase_properties(pytest_junit))
    if junit_path:
        guarded("the smoke JUnit file", lambda: junit.write(document, junit_path))
    allure_dir = to.allure_dir
    if allure_dir:
        guarded("Allure's environment.properties", lambda: allure.write_environment(document, allure_dir))


def _pushgateway_settings(smoke: SmokeConfig, to: Destinations) -> dict[str, Any]:
    settings = dict(smoke.section("monitoring").get("pushgateway") or {})
    if to.pushgateway_url:
        settings["url"] = to.pushgateway_url
    return settings


def _feed_monitoring(
    document: ReportDocument, settings: dict[str, Any], path: str | None, redactor: Redactor, out: list[dict[str, Any]]
) -> None:
    """The metrics file and the Pushgateway push, each a record in ``out`` (what, where, status,
    detail) as soon as it is done; a failure is a warning like a dead notification channel, never
    an error of the run."""
    if not settings.get("url") and not path:
        return
    labels = metrics.run_labels(document)

    def record(target: str, where: str, status: str, detail: str) -> None:
        out.append({"target": target, "where": redactor.text(where), "status": status, "detail": redactor.text(detail)})

    if path:
        try:
            metrics.write_file(document, labels, str(path))
            record("metrics_file", str(path), "written", "")
        except Exception as exc:
            record("metrics_file", str(path), "failed", redactor.excerpt(f"{exc.__class__.__name__}: {exc}", 300))
    if settings.get("url"):
        url = str(settings["url"])
        seconds = pushgateway.timeout_of(settings)
        try:
            # One deadline for the whole push: urllib's timeout bounds each socket operation only.
            detail = run_with_deadline(
                lambda: pushgateway.push(document, settings, labels, redactor), Deadline(seconds), what="Pushgateway"
            )
            record("pushgateway", url, "sent", detail)
        except Exception as exc:
            # urllib's own timeout (one socket operation) or ours (the whole push): the same to an operator.
            timed_out = isinstance(exc, (CheckTimeout, TimeoutError)) or isinstance(
                getattr(exc, "reason", None), TimeoutError
            )
            detail = (
                f"no answer within {seconds:g} s; not waiting any longer"
                if timed_out
                else str(exc)
                if isinstance(exc, pushgateway.SecretInLabel)
                else f"{exc.__class__.__name__}: {exc}"
            )
            record("pushgateway", url, "failed", redactor.excerpt(detail, 300))
