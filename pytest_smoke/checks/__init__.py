"""Check types and the one function that runs any check.

Built-in dependency types are imported lazily by name so a run only loads the clients it uses.
Other types come from plugins through the ``pytest_smoke_check_type`` hook; the pytest glue
resolves them and hands them over in ``CheckContext.check_types``. There is no global registry.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import socket
import time
from typing import Any, Callable, Mapping, Union, cast
from urllib.parse import urlsplit

from ..model import Check, default_timeout
from .address import dependency_address
from .base import CheckContext, CheckFailed, CheckNotEvaluated, CheckResult, CheckTimeout, Deadline, run_with_deadline
from .repeat import run_repeated

CheckFunction = Callable[[Mapping[str, Any], CheckContext], Union[CheckResult, str, None]]

BUILTIN_TYPES = {
    "postgres": "pytest_smoke.checks.postgres",
    "redis": "pytest_smoke.checks.redis",
    "http": "pytest_smoke.checks.http",
    "amqp": "pytest_smoke.checks.amqp",
    "tcp": "pytest_smoke.checks.tcp",
    "grpc": "pytest_smoke.checks.grpc",
}
# Slack past a check's own timeout before the outer guard gives up on a misbehaving check type.
GUARD_GRACE_SECONDS = 0.5
MAX_RETRY_INTERVAL_SECONDS = 30.0

__all__ = [
    "CheckContext",
    "CheckFailed",
    "CheckNotEvaluated",
    "CheckResult",
    "CheckTimeout",
    "Deadline",
    "builtin_check_type",
    "is_service_failure",
    "target_host",
    "run_check",
]


def builtin_check_type(name: str) -> CheckFunction | None:
    """The built-in check function for dependency type ``name``, or None."""
    if name not in BUILTIN_TYPES:
        return None
    func: CheckFunction = importlib.import_module(BUILTIN_TYPES[name]).check
    return func


def is_service_failure(exc: BaseException) -> bool:
    """Whether an exception in a developer's smoke test is a verdict on the service (an assertion,
    a refused or timed-out connection, a client library's connection error) rather than a bug."""
    if isinstance(exc, (AssertionError, CheckFailed, ConnectionError, TimeoutError, socket.timeout, socket.gaierror)):
        return True
    try:
        # Lazy, as are .http and the check kinds below: every pytest run imports this package (for
        # the scheduler's defaults in plugin.main); requests costs ~70 ms, .http with it ~110 ms.
        import requests
    except ImportError:  # pragma: no cover - requests is a dependency
        requests = None  # type: ignore[assignment]
    if requests is not None and isinstance(exc, requests.RequestException):
        from .http import NOT_SENDABLE  # lazy: requests (see above)

        return not isinstance(exc, NOT_SENDABLE)
    # psycopg.OperationalError, redis.ConnectionError, pika's AMQPConnectionError and the like.
    name = type(exc).__name__
    return any(word in name for word in ("Connection", "Timeout", "OperationalError"))


def target_host(check: Check, base_url: str | None) -> str | None:
    """The HTTP host:port a check sends to, so concurrency can be bounded per host; None for the
    other protocols (one connection each, to services of their own)."""
    kind, spec = check.kind, check.spec
    if kind == "health":
        endpoint = spec["endpoint"]
    elif kind == "critical_path":
        endpoint = spec["steps"][0]["endpoint"]
    elif kind == "dependency" and spec.get("type") == "http":
        endpoint = spec["url"]
    else:
        return None
    return _host_of(endpoint if "://" in endpoint else (base_url or ""))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def allowed_seconds(check: Check) -> float:
    """The check's own timeout: ``timeout_seconds``, else its kind's default (30 s for a critical
    path, 5 s otherwise)."""
    return float(check.spec.get("timeout_seconds", 30 if check.kind == "critical_path" else 5))


def safe_to_retry(check: Check) -> bool:
    """Whether sending the check's requests twice is harmless: no request of it has a body or a
    method that changes state (a login POST, a created order). Other protocols' probes are reads."""
    spec = check.spec
    requests = (
        list(spec.get("steps") or []) + list(spec.get("cleanup") or []) if check.kind == "critical_path" else [spec]
    )
    if check.kind == "dependency" and spec.get("type") != "http":
        return True
    return all(
        str(request.get("method") or "GET").upper() in SAFE_METHODS
        and not any(request.get(key) is not None for key in ("payload", "form", "body"))
        for request in requests
    )


@functools.lru_cache(maxsize=256)  # most checks share the base URL
def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}" if parts.hostname else None
    except ValueError:
        return None


def run_check(check: Check, ctx: CheckContext, budget: Deadline | None = None) -> CheckResult:
    """Run one configured check.

    Raises :class:`CheckFailed` when the target is unhealthy and :class:`CheckNotEvaluated` when
    the runner could not tell (any other exception is wrapped into it, narrowly: only a
    CheckFailed is a verdict on the service). ``budget`` is the whole run's deadline: a check it
    cuts short, or that it leaves no time to start, is not evaluated.
    """
    try:
        return _run_check(check, ctx, budget)
    except (CheckFailed, CheckNotEvaluated):
        raise
    except (Exception, SystemExit) as exc:  # a bug, a custom type's own error: not the service's fault
        raise CheckNotEvaluated.from_exception(exc) from None


def _check_function(check: Check, ctx: CheckContext) -> tuple[CheckFunction, bool, float]:
    """The function that runs ``check``, whether it is built in (it keeps its own deadline), and
    the slack past its timeout before the outer guard gives up on it."""
    # Lazy: each imports .http (~110 ms with requests, see is_service_failure).
    if check.kind == "health":
        from .health import check as health_check

        return cast(CheckFunction, health_check), True, GUARD_GRACE_SECONDS
    if check.kind == "critical_path":
        from .critical_path import cleanup_seconds, run_path

        return cast(CheckFunction, run_path), True, GUARD_GRACE_SECONDS + cleanup_seconds(check.spec)
    if check.kind == "metric":
        from .metric import check as metric_check

        return cast(CheckFunction, metric_check), True, GUARD_GRACE_SECONDS
    type_name = check.spec["type"]
    builtin = builtin_check_type(type_name)
    func = ctx.check_types.get(type_name) or builtin
    if func is None:
        raise CheckNotEvaluated(f"not evaluated: unknown dependency type {type_name!r}", kind="unknown_type")
    return func, func is builtin, GUARD_GRACE_SECONDS


def _run_check(check: Check, ctx: CheckContext, budget: Deadline | None) -> CheckResult:
    started = time.monotonic()
    spec, name, timeout = check.spec, check.name, check.timeout
    func, builtin, grace = _check_function(check, ctx)

    budget_left = budget.remaining() if budget is not None else None
    budget_message = f"not evaluated: the run budget of {budget.seconds if budget else 0:g} s ran out"
    if budget_left is not None and budget_left <= 0:
        raise CheckNotEvaluated(budget_message, kind="budget")
    # One deadline for the check, warm-up delay and retries included; the budget can shorten it.
    deadline = Deadline(min(timeout, budget_left) if budget_left is not None else timeout)

    def attempt_once(remaining: float) -> Any:
        # The first attempt keeps the configured timeout, so messages quote it as written.
        seconds = timeout if remaining >= timeout - 0.05 else round(max(remaining, 0.01), 2)
        return _execute(func, {**spec, "timeout_seconds": seconds}, ctx, builtin, timeout, grace, name)

    attempt = _repeated(check, ctx, deadline, func, builtin, grace) if spec.get("repeat") else attempt_once

    cut_by_budget = budget_left is not None and budget_left < timeout
    try:
        result, attempts = _with_retries(spec, deadline, attempt)
    except CheckFailed as failure:
        _add_facts(failure.facts, check, ctx, started)
        # A deadline the budget cut short says nothing about the service: it was not given its time.
        if failure.kind == "timeout" and budget is not None and (budget.expired or cut_by_budget):
            raise CheckNotEvaluated(
                f"{budget_message} before the check's own {timeout:g} s were up", kind="budget"
            ) from None
        raise
    if not isinstance(result, CheckResult):
        result = CheckResult(summary=str(result) if result else "OK")
    if attempts > 1:
        result.facts["attempts"] = attempts
        result.warnings.insert(0, f"flaky: passed on attempt {attempts} of {int(spec.get('retries', 0)) + 1}")
    _add_facts(result.facts, check, ctx, started, where=False)
    return result


def _add_facts(facts: dict[str, Any], check: Check, ctx: CheckContext, started: float, where: bool = True) -> None:
    """What a dashboard reads, passed or failed: how long it took, where (a failure), and a
    dependency's address (a fleet counts an outage of it once)."""
    facts.setdefault("elapsed_ms", round((time.monotonic() - started) * 1000, 1))
    if where and (check.spec.get("endpoint") or check.spec.get("url")):
        facts.setdefault("endpoint", check.spec.get("endpoint") or check.spec.get("url"))
    if check.kind == "dependency":
        facts.setdefault("address", dependency_address(check.spec, ctx.environ))


def _repeated(
    check: Check, ctx: CheckContext, deadline: Deadline, func: CheckFunction, builtin: bool, grace: float
) -> Callable[[float], Any]:
    """One attempt of a ``repeat: N`` check: N runs, each bounded by ``timeout_seconds``."""
    per_repetition = float(check.spec.get("timeout_seconds", default_timeout(check.kind)))
    # A connection of its own for each repetition: a Service balances connections, not requests,
    # so a shared keep-alive connection would ask the same pod N times.
    numbers = itertools.count(1)

    def once(seconds: float) -> Any:
        spec = {**check.spec, "timeout_seconds": round(max(seconds, 0.01), 2)}
        fresh = dataclasses.replace(ctx, connections=None, repetition=next(numbers))
        return _execute(func, spec, fresh, builtin, seconds, grace, check.name)

    def attempt(remaining: float) -> Any:
        return run_repeated(
            int(check.spec["repeat"]), check.spec.get("expect") or {}, deadline.remaining, once, per_repetition
        )

    return attempt


def _with_retries(spec: Mapping[str, Any], deadline: Deadline, attempt_once: Callable[[float], Any]) -> tuple[Any, int]:
    """Warm-up: ``initial_delay_seconds``, then up to ``retries`` more attempts with doubling
    ``retry_interval_seconds``, all inside the check's one deadline."""
    retries = int(spec.get("retries", 0))
    interval = float(spec.get("retry_interval_seconds", 1.0))
    delay = float(spec.get("initial_delay_seconds", 0))
    if delay:
        time.sleep(min(delay, deadline.remaining()))
    attempt = 0
    while True:
        attempt += 1
        try:
            return attempt_once(max(deadline.remaining(), 0.001)), attempt
        except CheckFailed as failure:
            if attempt > retries or deadline.remaining() <= interval:
                if attempt > 1:
                    failure.reason += f" (after {attempt} attempts)"
                raise
        time.sleep(interval)
        interval = min(interval * 2, MAX_RETRY_INTERVAL_SECONDS)


def _execute(
    func: CheckFunction,
    spec: Mapping[str, Any],
    ctx: CheckContext,
    builtin: bool,
    timeout: float,
    grace: float,
    name: str,
) -> Any:
    if builtin:
        # Built-ins keep their own deadline (a helper thread per exchange); no extra thread here.
        return func(spec, ctx)
    # A custom type may ignore its timeout: a guard thread makes it keep it anyway.
    guard = Deadline(float(spec["timeout_seconds"]) + grace)
    try:
        return run_with_deadline(lambda: func(spec, ctx), guard, what=name)
    except CheckTimeout:
        if guard.expired:
            raise CheckTimeout(min(timeout, float(spec["timeout_seconds"])), name) from None  # the configured timeout
        raise
