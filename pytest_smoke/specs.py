"""The config's entries as typed dicts: what a check function may read, by name and type.

The JSON Schema (``schema/smoke-config.schema.json``) is what validates a config; these types
follow it, so that mypy catches a misspelt key in the check code. A check function receives its
entry after validation and interpolation, with ``timeout_seconds`` always set (the time left of
the check's one deadline). Third-party check types receive a plain mapping: their keys are theirs.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, TypedDict, Union

StatusSpec = Union[int, List[int]]
Headers = Dict[str, str]


class ExpectSpec(TypedDict, total=False):
    json: dict[str, Any]  # dotted path -> expected value, or {"matches": ...} and other matchers
    body_contains: str
    body_not_contains: str
    body_matches: str
    headers: dict[str, Any]  # name -> value, {"matches": regex}, or false (must be absent)
    max_response_time_ms: float
    certificate_expires_in_days: int
    # With repeat: N (see checks/repeat.py).
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_failure_ratio: float


class _CheckCommon(TypedDict, total=False):
    timeout_seconds: float
    required: bool
    retries: int
    retry_interval_seconds: float
    initial_delay_seconds: float
    rollback: bool
    repeat: int  # health checks, http dependencies, critical paths: run N times, judged on the spread


class _HealthRequired(TypedDict):
    name: str
    endpoint: str


class _OneRequest(TypedDict, total=False):
    """What a single HTTP request and its answer take: a health check, an ``http`` dependency."""

    method: str
    expected_status: StatusSpec
    headers: Headers
    expect: ExpectSpec
    follow_redirects: bool


class HealthCheckSpec(_HealthRequired, _OneRequest, _CheckCommon, total=False):
    """An entry of ``health_checks``."""


class _DependencyRequired(TypedDict):
    name: str
    type: str


class ValueExpectation(TypedDict):
    equals: Any  # a JSON scalar: the first column of the first row, or the Redis reply


class PostgresSpec(_DependencyRequired, _CheckCommon, total=False):
    dsn: str  # else DATABASE_URL, else libpq's PG* variables
    query: str
    expect: ValueExpectation


class RedisSpec(_DependencyRequired, _CheckCommon, total=False):
    url: str  # else REDIS_URL
    command: str
    expect: ValueExpectation


class HttpDependencySpec(_DependencyRequired, _OneRequest, _CheckCommon, total=False):
    url: str


class AmqpSpec(_DependencyRequired, _CheckCommon, total=False):
    url: str  # else AMQP_URL
    queue: str


class TcpSpec(_DependencyRequired, _CheckCommon, total=False):
    host: str
    port: int


class _MetricRequired(TypedDict):
    name: str
    url: str  # the Prometheus-compatible API's base URL
    query: str  # PromQL; {window} is the time since the rollout, else ``window``
    condition: str  # "result < 0.01"


class MetricCheckSpec(_MetricRequired, _CheckCommon, total=False):
    """An entry of ``metric_checks``."""

    window: str  # a Prometheus duration, "5m"
    series: str  # "all" (every series must meet the condition) or "any"
    unit: str  # "percent" shows a ratio as a percentage; any other word is appended
    count: int
    interval: float
    failure_limit: int
    headers: Headers
    bearer_token: str
    username: str
    password: str


class _RateLimitRequired(TypedDict):
    requests: int


class GrpcSpec(_DependencyRequired, _CheckCommon, total=False):
    host: str
    port: int
    service: str  # "" (the default): the server as a whole
    tls: bool


class RateLimitSpec(_RateLimitRequired, total=False):
    expect_status: StatusSpec


class _StepRequired(TypedDict):
    endpoint: str


class StepSpec(_StepRequired, total=False):
    """One request of a critical path (or of its cleanup)."""

    name: str
    method: str
    payload: Any
    form: dict[str, Any]
    body: str
    content_type: str
    headers: Headers
    params: dict[str, Any]
    required_status: StatusSpec
    expect: ExpectSpec
    save: dict[str, str]  # variable -> "body.path", "header:Name" or "body~REGEX"
    rate_limit: RateLimitSpec
    follow_redirects: bool


class _PathRequired(TypedDict):
    name: str
    steps: list[StepSpec]


class CriticalPathSpec(_PathRequired, _CheckCommon, total=False):
    """An entry of ``critical_paths``."""

    cleanup: list[StepSpec]
    cleanup_timeout_seconds: float
    expect: ExpectSpec  # with repeat: only p50_ms, p95_ms, p99_ms and max_failure_ratio


# -- the condition of a metric check ---------------------------------------------------------------

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(
    rf"^\s*(?:result\s*(<=|>=|==|!=|<|>)\s*({_NUMBER})|({_NUMBER})\s*(<=|>=|==|!=|<|>)\s*result)\s*$"
)


@dataclass(frozen=True)
class Condition:
    """``result OP threshold``, as written (a mirrored ``0.95 <= result`` is stored as ``result >= 0.95``)."""

    op: str
    threshold: float
    text: str

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)


def parse_condition(text: str) -> Condition:
    """Raises ValueError with a message for the config error."""
    match = _CONDITION.match(text)
    if not match:
        raise ValueError(f'condition {text!r} is not a comparison of result with a number (e.g. "result < 0.01")')
    if match.group(1):
        return Condition(match.group(1), float(match.group(2)), text.strip())
    return Condition(MIRRORED[match.group(4)], float(match.group(3)), text.strip())
