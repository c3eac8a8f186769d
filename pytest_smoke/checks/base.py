"""The small interface every check type shares.

A check function has the signature ``check(spec, ctx) -> CheckResult | str`` and raises
:class:`CheckFailed` when the target is unhealthy. ``spec`` is the interpolated config entry and
``ctx`` a :class:`CheckContext`. Plain Python: nothing here knows about pytest.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping, TypeVar, cast

from ..redact import Redactor, shorten

T = TypeVar("T")


class CheckFailed(AssertionError):
    """The check ran and its target is unhealthy.

    ``reason`` is the one-line message in an operator's words ("/health/ready returned 503");
    ``details`` holds the request, a response excerpt and similar context; ``kind`` names the
    failure for the remediation catalogue ("timeout", "connection_refused", "http_5xx", ...).
    An ``AssertionError`` (keeping its own type), so every reporter calls it a failed test, not a
    broken one: Allure, pytest-html, JUnit viewers. :class:`CheckNotEvaluated` is not one.
    """

    # Shown as ``pytest_smoke.CheckFailed`` (its public name) in pytest's summary lines.
    __module__ = "pytest_smoke"

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
        self.seconds = seconds


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
    # When the rollout completed (--smoke-wait-rollout), for metric checks' {window}; None: unknown.
    deployed_at: float | None = None
    # The run's id and start (epoch seconds): critical paths' {run_id} and {timestamp}.
    run_id: str = ""
    # Which of a repeat: N check's runs this is (1 without repeat): {repetition}, so a repeated
    # path can name what it creates smoke-{run_id}-{repetition} and clean it up by that name.
    repetition: int = 1
    run_started: int = 0


def new_run_id() -> str:
    """{run_id}: 12 hex digits, unique per run (and per verification after a rollback)."""
    return uuid.uuid4().hex[:12]


def same_value(got: Any, wanted: Any) -> bool:
    """``expect.equals``: a value a database or cache returned against the JSON scalar the config
    wrote. Numbers compare as numbers (a count, a Decimal, Redis's "42"), text as text, true/false
    as booleans."""
    if isinstance(wanted, bool) or isinstance(got, bool):
        return isinstance(got, bool) and got is wanted
    if wanted is None:
        return got is None
    if isinstance(wanted, (int, float)):
        try:  # exactly: as floats, two 17-digit ids would compare equal
            return Decimal(str(got).strip()) == Decimal(str(wanted))
        except (InvalidOperation, ValueError):
            return False
    return got is not None and str(got) == str(wanted)


def shown_value(ctx_redactor: Any, got: Any, wanted: Any) -> tuple[str, str]:
    """How an ``expect.equals`` failure shows both values: when the expected one is a secret, the
    value returned is likely one too (an old token), so neither is shown."""
    wanted_text = repr(wanted)
    if ctx_redactor.text(wanted_text) != wanted_text:
        return "a different value (not shown: the expected value is a secret)", "***"
    return shorten(repr(got), 200), wanted_text


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


def raised_while_reading(exc: BaseException, markers: tuple[str, ...]) -> bool:
    """Whether ``exc`` was raised where a client library reads a peer's answer: the frame that
    raised it is in one of ``markers`` (a path fragment of the library's parser, or a function
    name). Such an error is about what the peer sent; one raised while encoding what we send
    (an encoding error) is ours."""
    if isinstance(exc, UnicodeEncodeError):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return any(marker in code.co_filename.replace("\\", "/") or marker == code.co_name for marker in markers)


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
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = func()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    HELPERS.submit(target)
    # A little slack so the check's own, more specific timeout message usually wins.
    if not done.wait(deadline.remaining() + 0.2):
        if abort is not None:
            try:
                abort()
            except Exception:
                pass
        raise CheckTimeout(deadline.seconds, what)
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])


class HelperThreads:
    """Daemon threads for :func:`run_with_deadline`, reused from one exchange to the next: on a
    fast service, starting a thread costs more than the request. A thread held by a hung exchange
    stays busy until the exchange ends; meanwhile a new one is started, so nothing waits for it."""

    IDLE_SECONDS = 30.0  # an idle thread ends after this long

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Helper] = []

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            helper = self._idle.pop() if self._idle else None
        if helper is None:
            helper = _Helper(self)
            helper.thread.start()
        helper.jobs.put(job)

    def close_idle(self) -> None:
        """End the idle threads (the run is over); a busy one ends when its exchange does."""
        with self._lock:
            idle, self._idle = self._idle, []
        for helper in idle:
            helper.jobs.put(None)
        for helper in idle:
            helper.thread.join(1.0)

    def _rest(self, helper: _Helper) -> None:
        with self._lock:
            self._idle.append(helper)

    def _retire(self, helper: _Helper) -> bool:
        """Whether an idle helper may end: False when a job was handed to it meanwhile."""
        with self._lock:
            if helper in self._idle:
                self._idle.remove(helper)
                return True
            return False


class _Helper:
    def __init__(self, pool: HelperThreads):
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, args=(pool,), name="smoke-check exchange", daemon=True)

    def _work(self, pool: HelperThreads) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=pool.IDLE_SECONDS)
            except queue.Empty:
                if pool._retire(self):
                    return
                continue  # a job is on its way
            if job is None:
                return
            job()
            pool._rest(self)


HELPERS = HelperThreads()
