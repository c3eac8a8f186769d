"""The run as Prometheus metrics, rendered from the report document with the official client.

One registry per run: the same metrics go to a Pushgateway (``notify/pushgateway.py``) and to a
text file (``--smoke-metrics``). A file named ``*.prom`` gets the Prometheus text format, the one
node-exporter's textfile collector reads (it reads only ``*.prom``); any other name gets
OpenMetrics 1.0. Labels are bounded: the deployment, namespace, environment and fleet target, and per check its
name, kind, required and severity (critical or warning, from the config); never an error text,
a URL or a request id.
"""

from __future__ import annotations

import os
import platform
import tempfile
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping, get_args

from ..model import Action, RollbackStatus
from .shape import ReportDocument

# prometheus_client is imported in the functions that use it: an optional extra (~25 ms) that a
# run without metrics need not have, and publish imports this module on every smoke run.

# Enum states, so every series exists in every run (a dashboard's "absent" never lies).
CHECK_STATES = ["passed", "failed", "not_evaluated", "not_run", "skipped", "not_selected"]
VERDICT_STATES = ["passed", "warning", "critical", "inconclusive", "partial", "no_checks", "not_evaluated"]
# Every state the model can write, so a new one can never be missing from the Enum metrics.
DECISION_STATES = list(get_args(Action))
ROLLBACK_STATES = ["none", *get_args(RollbackStatus)]
RUN_LABELS = ("deployment", "namespace", "environment", "target")
CHECK_LABELS = (*RUN_LABELS, "check", "kind", "required", "severity")
LAST_SUCCESS = "smoke_last_success_timestamp_seconds"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text"


def run_labels(document: ReportDocument) -> dict[str, str]:
    """The deployment, namespace, environment and fleet target the run verified ("" where the config
    names none): the targets of a fleet are series of their own, and Pushgateway groups of their own."""
    deployment, fleet = document["deployment"], document.get("fleet")
    return {
        "deployment": deployment["name"] if deployment else "",
        "namespace": deployment["namespace"] if deployment else "",
        "environment": document.get("environment") or "",
        "target": fleet["target"] if fleet else "",
    }


def registry(
    document: ReportDocument,
    labels: Mapping[str, str],
    last_success: float | None = None,
    with_last_success: bool = True,
) -> Any:
    """A CollectorRegistry holding the run's metrics. ``last_success`` is the previous verified
    run's timestamp, kept when this run is not verified (a text file has no memory of its own);
    ``with_last_success=False`` leaves that metric out (the Pushgateway keeps it in a group of its own)."""
    from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Info  # lazy: see the top

    reg = CollectorRegistry(auto_describe=True)
    run = dict(labels)
    check_names = list(CHECK_LABELS)

    info = Info("smoke_build", "pytest-deploy-smoke and the runtime that produced these metrics", registry=reg)
    info.info(
        {
            "version": str(document.get("generator", "")).rpartition(" ")[2],
            "report_schema": str(document.get("schema_version", "")),
            "python": platform.python_version(),
            "pytest": _version("pytest"),
        }
    )

    success = Gauge(
        "smoke_check_success",
        "1 if the check passed, 0 if it failed; absent when it was not evaluated",
        check_names,
        registry=reg,
    )
    duration = Gauge("smoke_check_duration_seconds", "How long the check took", check_names, registry=reg)
    attempts = Counter(
        "smoke_check_attempts", "Attempts the check made in this run (retries included)", check_names, registry=reg
    )
    status = Enum("smoke_check_status", "How the check ended", check_names, states=CHECK_STATES, registry=reg)
    for check in document["checks"]:
        values = {
            **run,
            "check": check["name"],
            "kind": check["kind"],
            "required": str(bool(check["required"])).lower(),
            "severity": "critical" if check["required"] else "warning",
        }
        if check["status"] in ("passed", "failed"):
            success.labels(**values).set(1 if check["status"] == "passed" else 0)
        if check["status"] in ("passed", "failed", "not_evaluated"):
            duration.labels(**values).set(float(check["duration_seconds"]))
            attempts.labels(**values).inc(int(check["facts"].get("attempts", 1) or 1))
        if check["status"] in CHECK_STATES:
            status.labels(**values).state(check["status"])

    run_names = list(RUN_LABELS)
    verdict = document["verdict"]
    Enum("smoke_verdict", "The run's verdict", run_names, states=VERDICT_STATES, registry=reg).labels(**run).state(
        verdict["state"] if verdict["state"] in VERDICT_STATES else "not_evaluated"
    )
    action = document["decision"]["action"]
    Enum("smoke_decision", "What the verdict called for", run_names, states=DECISION_STATES, registry=reg).labels(
        **run
    ).state(action if action in DECISION_STATES else "none")
    rollback = document["rollback"]
    rollback_state = rollback["status"] if rollback else "none"
    Enum(
        "smoke_rollback",
        "How the rollback ended (none: no rollback was due)",
        run_names,
        states=ROLLBACK_STATES,
        registry=reg,
    ).labels(**run).state(rollback_state if rollback_state in ROLLBACK_STATES else "none")
    rollback_seconds = _seconds_between(rollback["started_at"], rollback["finished_at"]) if rollback else None
    if rollback_seconds is not None:
        Gauge("smoke_rollback_duration_seconds", "How long the rollback took", run_names, registry=reg).labels(
            **run
        ).set(rollback_seconds)

    counts = Gauge("smoke_checks", "Checks of the run by severity", [*run_names, "severity"], registry=reg)
    for severity, count in (
        ("critical", verdict["critical"]),
        ("warning", verdict["warnings"]),
        ("passed", verdict["passed"]),
    ):
        counts.labels(**run, severity=severity).set(count)
    Gauge("smoke_run_duration_seconds", "How long the run took", run_names, registry=reg).labels(**run).set(
        float(document["duration_seconds"])
    )
    finished = _timestamp(document.get("finished_at"))
    Gauge("smoke_run_timestamp_seconds", "When the run finished (Unix time)", run_names, registry=reg).labels(
        **run
    ).set(finished or 0)
    Gauge("smoke_run_exit_status", "The run's exit status", run_names, registry=reg).labels(**run).set(
        int(document.get("exit_status", 0))
    )
    stamp = finished if verdict.get("verified") else last_success
    if stamp and with_last_success:
        add_last_success(reg, run, stamp)
    return reg


def add_last_success(reg: Any, labels: Mapping[str, str], stamp: float) -> None:
    from prometheus_client import Gauge  # lazy: see the top

    Gauge(LAST_SUCCESS, "When a run last verified this deployment (Unix time)", list(labels), registry=reg).labels(
        **labels
    ).set(stamp)


def verified_at(document: ReportDocument) -> float | None:
    """When this run verified the deployment, or None (not verified)."""
    return _timestamp(document.get("finished_at")) if document["verdict"].get("verified") else None


def exposition(reg: Any, openmetrics: bool) -> bytes:
    if openmetrics:
        from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics  # lazy: top

        return bytes(generate_openmetrics(reg))  # type: ignore[no-untyped-call]
    from prometheus_client.exposition import generate_latest  # lazy: see the top

    return bytes(generate_latest(reg))


def write_file(document: ReportDocument, labels: Mapping[str, str], path: str) -> None:
    """Write the metrics to ``path`` atomically (a scraper never reads half a file), keeping the
    last verified run's timestamp from the file this one replaces."""
    openmetrics = not path.endswith(".prom")
    reg = registry(document, labels, last_success=_previous_last_success(path, labels, openmetrics))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".smoke-metrics-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(exposition(reg, openmetrics))
        os.chmod(temporary, 0o644)  # node-exporter usually runs as another user
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _previous_last_success(path: str, labels: Mapping[str, str], openmetrics: bool) -> float | None:
    try:
        with open(path, encoding="utf-8") as previous:
            text = previous.read()
    except OSError:
        return None
    try:
        from prometheus_client import parser as text_parser  # lazy: see the top
        from prometheus_client.openmetrics import parser as openmetrics_parser

        families = (openmetrics_parser if openmetrics else text_parser).text_string_to_metric_families(text)
        for family in families:
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
    except Exception:  # a file in another format or damaged: start afresh
        return None
    return None


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _timestamp(iso: str | None) -> float | None:
    """None when absent or unreadable (a secret that looks like a year can mask part of it)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _seconds_between(start: str | None, end: str | None) -> float | None:
    begun, finished = _timestamp(start), _timestamp(end)
    if begun is None or finished is None:
        return None
    return round(finished - begun, 3)
