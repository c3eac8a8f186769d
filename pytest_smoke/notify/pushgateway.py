"""Push the run's metrics to a Prometheus Pushgateway, for the monitoring dashboard.

The push is a POST (``pushadd``): it replaces the metric families this run sends and keeps the
others in the group, so ``smoke_last_success_timestamp_seconds`` (sent only by a verified run)
survives a failed one. The group is the job plus the deployment, namespace and environment and
any configured ``labels``. A Pushgateway that is down or slow is a warning, as a dead
notification channel is: it never changes the exit status and never delays the rollback (the
push happens after it).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..report import metrics

DEFAULT_JOB = "pytest_smoke"
DEFAULT_TIMEOUT_SECONDS = 10.0


def push(document: Mapping[str, Any], settings: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """Push, within ``timeout_seconds`` in all; returns what was pushed where. Raises on failure."""
    from prometheus_client.exposition import default_handler, pushadd_to_gateway

    url = str(settings["url"]).rstrip("/")
    job = str(settings.get("job") or DEFAULT_JOB)
    timeout = float(settings.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    extra_headers = [(str(k), str(v)) for k, v in (settings.get("headers") or {}).items()]
    grouping = {**{k: v for k, v in labels.items() if v}, **{str(k): str(v) for k, v in (settings.get("labels") or {}).items()}}

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes) -> Any:
        return default_handler(url, method, timeout, [*headers, *extra_headers], data)

    reg = metrics.registry(document, labels)
    pushadd_to_gateway(url, job=job, registry=reg, grouping_key=grouping, timeout=timeout, handler=handler)
    group = ", ".join(f"{k}={v}" for k, v in sorted(grouping.items()))
    return f"job={job}" + (f", {group}" if group else "")
