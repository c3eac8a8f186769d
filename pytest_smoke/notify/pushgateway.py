"""Push the run's metrics to a Prometheus Pushgateway, for the monitoring dashboard.

The run's group (the job plus the deployment, namespace and environment and any configured
``labels``) is replaced whole by a PUT, so no series of an earlier run outlives it (a check that
did not run this time is absent, not stale). ``smoke_last_success_timestamp_seconds`` lives in a
group of its own (``smoke_record="last_success"``), pushed only by a verified run, so it survives
the failed runs after it. A Pushgateway that is down or slow is a warning, as a dead
notification channel is: it never changes the exit status and never delays the rollback (the
push happens after it).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..redact import Redactor
from ..report import metrics
from ..report.shape import ReportDocument

DEFAULT_JOB = "pytest_smoke"
DEFAULT_TIMEOUT_SECONDS = 10.0


def timeout_of(settings: Mapping[str, Any]) -> float:
    """The whole push's deadline: ``timeout_seconds``, else 10 s."""
    return float(settings.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))


class SecretInLabel(ValueError):
    """A label the push would send holds a secret: label values travel in the URL path."""


def push(
    document: ReportDocument,
    settings: Mapping[str, Any],
    labels: Mapping[str, str],
    redactor: Redactor | None = None,
) -> str:
    """Push, within ``timeout_seconds`` in all; returns what was pushed where. Raises on failure,
    and refuses (:class:`SecretInLabel`) a job or label value that ``redactor`` would mask."""
    # Lazy: an optional extra (~25 ms); publish imports this module for timeout_of on every run.
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import default_handler, push_to_gateway

    url = str(settings["url"]).rstrip("/")
    job = str(settings.get("job") or DEFAULT_JOB)
    timeout = timeout_of(settings)
    extra_headers = [(str(k), str(v)) for k, v in (settings.get("headers") or {}).items()]
    grouping = {
        **{k: v for k, v in labels.items() if v},
        **{str(k): str(v) for k, v in (settings.get("labels") or {}).items()},
    }

    if redactor is not None:
        for key, value in [("job", job), *grouping.items()]:
            if redactor.text(value) != value:
                raise SecretInLabel(
                    f"not pushed: the value of {'the job' if key == 'job' else f'label {key!r}'} "
                    "is a secret the run masks "
                    "(a ${VAR} value), and label values travel in the clear in the Pushgateway's URL path and on every "
                    "dashboard; list the variable under public_variables, or write the value out"
                )

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes) -> Any:
        return default_handler(url, method, timeout, [*headers, *extra_headers], data)

    reg = metrics.registry(document, labels, with_last_success=False)
    push_to_gateway(url, job=job, registry=reg, grouping_key=grouping, timeout=timeout, handler=handler)
    stamp = metrics.verified_at(document)
    if stamp is not None:
        record = CollectorRegistry(auto_describe=True)
        metrics.add_last_success(record, labels, stamp)
        push_to_gateway(
            url,
            job=job,
            registry=record,
            grouping_key={**grouping, "smoke_record": "last_success"},
            timeout=timeout,
            handler=handler,
        )
    group = ", ".join(f"{k}={v}" for k, v in sorted(grouping.items()))
    return f"job={job}" + (f", {group}" if group else "")
