"""Metric checks: a PromQL query against a Prometheus-compatible HTTP API (Prometheus, Thanos,
Mimir, VictoriaMetrics: ``/api/v1/query``) and a condition on its result, the way Argo Rollouts'
AnalysisTemplate and Flagger decide from the new version's real traffic.

- ``{window}`` in the query is the time since the rollout completed (``--smoke-wait-rollout``),
  else the configured ``window``: "the error rate since the new version went live" is one line.
- The condition is a comparison, ``result < 0.01`` or ``0.95 <= result``, parsed here (no eval)
  and compared numerically. ``series: all`` (the default) means every series returned must meet
  it; ``series: any``, at least one.
- An empty result, NaN, a query error or an unreachable Prometheus is *not evaluated* (Argo's
  inconclusive): never a pass, and never alone a rollback.
- ``count`` measurements ``interval`` seconds apart, within the check's timeout; the check fails
  when more than ``failure_limit`` of them break the condition (Argo's count and failureLimit).
"""

from __future__ import annotations

import base64
import http.client
import math
import time
from typing import Any, Mapping

from ..specs import Condition, MetricCheckSpec, parse_condition
from .base import CheckContext, CheckFailed, CheckNotEvaluated, CheckResult, CheckTimeout, Deadline
from .http import MAX_BODY_BYTES, Reply, SmokeSession, exchange

DEFAULT_WINDOW = "5m"
MIN_WINDOW_SECONDS = 30  # shorter than two scrapes gives rate() nothing to work with


def window_of(spec: Mapping[str, Any], ctx: CheckContext) -> tuple[str, str]:
    """The ``{window}`` value and how to say it: since the rollout, or the configured duration."""
    if ctx.deployed_at is not None:
        seconds = max(int(time.time() - ctx.deployed_at), MIN_WINDOW_SECONDS)
        return f"{seconds}s", f"since {time.strftime('%H:%M:%S', time.localtime(ctx.deployed_at))} (rollout completed)"
    window = str(spec.get("window") or DEFAULT_WINDOW)
    return window, f"over the last {window}"


def check(spec: MetricCheckSpec, ctx: CheckContext) -> CheckResult:
    deadline = Deadline(float(spec.get("timeout_seconds", 10)))
    condition = parse_condition(spec["condition"])
    window, since = window_of(spec, ctx)
    query = spec["query"].replace("{window}", window)
    count = int(spec.get("count", 1))
    interval = float(spec.get("interval", 0))
    failure_limit = int(spec.get("failure_limit", 0))
    failures: list[str] = []
    passes: list[str] = []
    unknown: list[str] = []
    for measurement in range(count):
        if measurement:
            if deadline.remaining() <= interval:
                unknown.append(f"measurement {measurement + 1} of {count} not taken: the timeout came first")
                break
            time.sleep(interval)
        try:
            series = _query(spec, ctx, query, deadline)
        except CheckNotEvaluated as problem:
            unknown.append(problem.reason)
            continue
        verdict = _judge(series, condition, spec.get("series", "all"), spec)
        (passes if verdict[0] else failures).append(verdict[1])
    facts: dict[str, Any] = {"endpoint": _api(spec), "attempts": count}
    limit = f"limit: {_shown_condition(condition, spec)}"
    if len(failures) > failure_limit:
        counted = f" ({len(failures)} of {count} measurements failed, {failure_limit} allowed)" if count > 1 else ""
        raise CheckFailed(f"{spec['name']} {failures[-1]} {since}, {limit}{counted}", kind="metric_condition", **facts)
    if not passes and not failures:
        reason = "; ".join(dict.fromkeys(unknown)) or "no measurement"
        raise CheckNotEvaluated(f"not evaluated: {spec['name']}: {reason}", kind="metric_inconclusive")
    # As Argo: within failure_limit, the check passes, and says how many measurements met it.
    summary = f"{spec['name']} {(passes or failures)[-1]} {since}, {limit}"
    if failures or unknown:
        summary += f" ({len(passes)} of {count} measurements met it, {len(failures)} failed, {failure_limit} allowed)"
    return CheckResult(summary=summary, facts=facts)


def _api(spec: Mapping[str, Any]) -> str:
    return str(spec["url"]).rstrip("/") + "/api/v1/query"


def _query(
    spec: Mapping[str, Any], ctx: CheckContext, query: str, deadline: Deadline
) -> list[tuple[dict[str, str], float]]:
    """The instant vector (or scalar) the query returns, as (labels, value) pairs."""
    response = _ask_prometheus(spec, ctx, query, deadline)
    if response.truncated:
        raise CheckNotEvaluated(
            f"Prometheus answered more than {MAX_BODY_BYTES // 1024} KiB (after decompression): not read further; "
            "aggregate the query (sum by, topk) so it returns a few series",
            kind="metric_inconclusive",
        )
    return _series(_successful_answer(response))


def _auth_headers(spec: Mapping[str, Any]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    if spec.get("bearer_token"):
        headers["Authorization"] = f"Bearer {spec['bearer_token']}"
    elif spec.get("username"):
        pair = f"{spec['username']}:{spec.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def _ask_prometheus(spec: Mapping[str, Any], ctx: CheckContext, query: str, deadline: Deadline) -> Reply:
    """The answer to the query; Prometheus silent or unreachable is not evaluated."""
    headers = _auth_headers(spec)
    url = _api(spec)
    # The checks' own exchange: one total deadline, the body capped after decompression (an endless
    # or bombed answer stops there), credentials dropped on a redirect to another origin.
    session = SmokeSession()
    session.trust_env = False  # never through a proxy from the environment
    session.verify = ctx.verify
    session.redactor = ctx.redactor
    try:
        return exchange(
            session, "GET", url, deadline, headers=headers, params={"query": query}, label=f"Prometheus query at {url}"
        )
    except CheckTimeout:  # Prometheus did not answer, which says nothing about the service
        raise CheckNotEvaluated(
            f"Prometheus at {url} did not answer within {deadline.seconds:g} s", kind="metric_inconclusive"
        ) from None
    except CheckNotEvaluated:
        raise
    except CheckFailed as exc:
        raise CheckNotEvaluated(
            f"Prometheus at {url} is unreachable ({exc.reason})", kind="metric_inconclusive"
        ) from None
    finally:
        session.close()


def _successful_answer(response: Reply) -> dict[str, Any]:
    """The API's envelope of a successful query; any other answer is not evaluated."""
    try:
        answer = response.json()
    except (ValueError, RecursionError):
        answer = {}
    if not isinstance(answer, dict):  # a list, a string: not the Prometheus API's envelope
        answer = {}
    if response.status != 200 or answer.get("status") != "success":
        error = answer.get("error") or http.client.responses.get(response.status, "")
        kind = f" {answer['errorType']}" if answer.get("errorType") else ""
        raise CheckNotEvaluated(
            f"query failed: Prometheus answered {response.status}{kind}: {error}", kind="metric_inconclusive"
        )
    return answer


def _series(answer: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    """(labels, value) pairs of a scalar or an instant vector; no data, or only NaN, is not evaluated."""
    data = answer.get("data") or {}
    if data.get("resultType") == "scalar":
        return [({}, _number(data["result"][1]))]
    if data.get("resultType") != "vector":
        raise CheckNotEvaluated(
            f"query returned a {data.get('resultType')}, not an instant vector or a scalar", kind="metric_inconclusive"
        )
    found = [(dict(item.get("metric") or {}), _number(item["value"][1])) for item in data.get("result") or []]
    if not found:
        raise CheckNotEvaluated("the query returned no data (no series: nothing to judge)", kind="metric_inconclusive")
    if all(math.isnan(value) for _, value in found):
        raise CheckNotEvaluated("the query returned NaN (no traffic in the window?)", kind="metric_inconclusive")
    return found


def _judge(
    series: list[tuple[dict[str, str], float]], condition: Condition, mode: str, spec: Mapping[str, Any]
) -> tuple[bool, str]:
    """Whether the measurement meets the condition, and the value to quote (the worst series)."""
    values = [(labels, value) for labels, value in series if not math.isnan(value)]
    meeting = [condition.holds(value) for _, value in values]
    ok = all(meeting) if mode == "all" else any(meeting)
    quoted = next((item for item, met in zip(values, meeting) if not met), values[0]) if not ok else values[0]
    labels, value = quoted
    where = (
        f" for {{{', '.join(f'{k}={v!r}' for k, v in sorted(labels.items()))}}}" if labels and len(values) > 1 else ""
    )
    return ok, f"{_shown(value, spec)}{where}"


def _shown(value: float, spec: Mapping[str, Any]) -> str:
    if spec.get("unit") == "percent":  # a ratio, shown as a percentage
        return f"{value * 100:.3g}%"
    return f"{value:.4g}" + (f" {spec['unit']}" if spec.get("unit") else "")


def _shown_condition(condition: Condition, spec: Mapping[str, Any]) -> str:
    return f"{condition.op} {_shown(condition.threshold, spec)}"


def _number(text: Any) -> float:
    try:
        return float(text)  # Prometheus sends "NaN", "+Inf" as strings: float() reads them
    except (TypeError, ValueError):
        return math.nan
