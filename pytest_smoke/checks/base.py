"""The small interface every check type shares.

A check function has the signature ``check(spec, ctx) -> CheckResult | str`` and raises
:class:`CheckFailed` when the target is unhealthy. ``spec`` is the interpolated config entry and
``ctx`` a :class:`CheckContext`. Plain Python: nothing here knows about pytest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar, cast

from ..redact import Redactor, shorten

T = TypeVar("T")


class CheckFailed(Exception):
    """The check ran and its target is unhealthy.

    ``reason`` is the one-line message in an operator's words ("/health/ready returned 503");
    ``details`` holds the request, a response excerpt and similar context; ``kind`` names the
    failure for the remediation catalogue ("timeout", "connection_refused", "http_5xx", ...).
    """

    def __init__(self, reason: str, details: str = "", kind: str = "failed", **facts: Any):
        super().__init__(reason)
        self.reason = reason
        self.details = details
        self.kind = kind
        self.facts = facts

    def __str__(self) -> str:
        return self.reason if not self.details else f"{self.reason}\n{self.details}"


class CheckNotEvaluated(Exception):
    """The runner could not evaluate the check: our problem, never the service's.

    A bug in a check type, a missing tool, a request the runner could not build, the run budget
    ending before the check could finish. It never counts toward a rollback; a required check that
    was not evaluated makes the run INCONCLUSIVE. ``internal`` holds the formatted traceback of an
    unexpected exception (no locals), shown only with ``--full-trace``.
    """

    def __init__(self, reason: str, details: str = "", kind: str = "not_evaluated", internal: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.details = details
        self.kind = kind
        self.internal = internal

    @classmethod
    def from_exception(cls, exc: BaseException) -> "CheckNotEvaluated":
        """An exception that is not a verdict on the service: a problem of the runner."""
        import traceback

        message = shorten(str(exc), 200)
        internal = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            f"not evaluated: {exc.__class__.__name__}{': ' + message if message else ''} "
            "(a problem of the runner, not of the service)",
            kind="internal_error",
            internal=internal,
        )

    def __str__(self) -> str:
        return self.reason if not self.details else f"{self.reason}\n{self.details}"


class CheckTimeout(CheckFailed):
    def __init__(self, seconds: float, what: str = ""):
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}timed out after {seconds:g} s", kind="timeout")


@dataclass
class CheckResult:
    """What a passing check reports: a short summary and facts for the reports."""

    summary: str = "OK"
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class CheckContext:
    """Run-wide settings a check may need."""

    base_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    redactor: Redactor = field(default_factory=Redactor)
    environ: Mapping[str, str] = field(default_factory=dict)
    # Dependency types beyond the built-ins, by name, as plugins provide them through the
    # pytest_smoke_check_type hook (resolved by the pytest glue before the first request).
    check_types: Mapping[str, Any] = field(default_factory=dict)
    # A keep-alive connection pool shared by the run's HTTP checks (None: a fresh connection each).
    connections: Any = None
    # Redirects: followed unless a check or step says otherwise, at most this many per request.
    follow_redirects: bool = True
    max_redirects: int = 10


class Deadline:
    """One absolute deadline shared by every operation of a check."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = float(seconds)
        self._clock = clock
        self._end = clock() + self.seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self._end


def run_with_deadline(
    func: Callable[[], T],
    deadline: Deadline,
    *,
    what: str = "",
    abort: Callable[[], None] | None = None,
) -> T:
    """Run ``func`` in a helper thread and give up when ``deadline`` passes.

    Client libraries bound single socket operations, not whole exchanges: a server that accepts
    and then stalls, or trickles bytes, can outlive any per-operation timeout. ``abort`` (close the
    connection) lets the abandoned thread finish promptly; the thread is a daemon either way.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = func()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"smoke-check {what}", daemon=True)
    thread.start()
    # A little slack so the check's own, more specific timeout message usually wins.
    thread.join(deadline.remaining() + 0.2)
    if thread.is_alive():
        if abort is not None:
            try:
                abort()
            except Exception:
                pass
        raise CheckTimeout(deadline.seconds, what)
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])
