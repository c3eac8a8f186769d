"""The config's entries as typed dicts: what a check function may read, by name and type.

The JSON Schema (``schema/smoke-config.schema.json``) is what validates a config; these types
follow it, so that mypy catches a misspelt key in the check code. A check function receives its
entry after validation and interpolation, with ``timeout_seconds`` always set (the time left of
the check's one deadline). Third-party check types receive a plain mapping: their keys are theirs.
"""

from __future__ import annotations

from typing import Any, Dict, List, TypedDict, Union

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


class _CheckCommon(TypedDict, total=False):
    timeout_seconds: float
    required: bool
    retries: int
    retry_interval_seconds: float
    initial_delay_seconds: float
    rollback: bool


class _HealthRequired(TypedDict):
    name: str
    endpoint: str


class HealthCheckSpec(_HealthRequired, _CheckCommon, total=False):
    """An entry of ``health_checks``."""

    method: str
    expected_status: StatusSpec
    headers: Headers
    expect: ExpectSpec
    follow_redirects: bool


class _DependencyRequired(TypedDict):
    name: str
    type: str


class PostgresSpec(_DependencyRequired, _CheckCommon, total=False):
    dsn: str  # else DATABASE_URL, else libpq's PG* variables
    query: str


class RedisSpec(_DependencyRequired, _CheckCommon, total=False):
    url: str  # else REDIS_URL
    command: str


class HttpDependencySpec(_DependencyRequired, _CheckCommon, total=False):
    url: str
    method: str
    expected_status: StatusSpec
    headers: Headers
    expect: ExpectSpec
    follow_redirects: bool


class AmqpSpec(_DependencyRequired, _CheckCommon, total=False):
    url: str  # else AMQP_URL
    queue: str


class TcpSpec(_DependencyRequired, _CheckCommon, total=False):
    host: str
    port: int


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
