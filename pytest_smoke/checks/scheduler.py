"""Run configured checks concurrently in a bounded pool, in item order.

Each check stays its own pytest item: the item only waits for its future. Checks that have not
started can be cancelled (``-x``, ``--maxfail``, ``fail_fast``); a check that has started finishes
within its own deadline, unless the run abandons it (``fail_fast`` once a rollback is certain):
then its item stops waiting at once and reports it as not finished. Plain Python, no pytest.

The smoke run must never become the load that fails the service, nor crawl when the service is
fast. Each host gets an adaptive limit of checks in flight (:class:`HostLimit`): it starts at 2,
grows while answers come back as fast as the fastest seen from that host (and only while one more
request queued behind the host's capacity would still fit the shortest timeout), and is halved on
a timeout in a crowd, a 429 or a 503 with Retry-After (TCP's additive increase, multiplicative
decrease, with the delay signal of Vegas; a slow answer never cuts it: slow is not overloaded).
``max_concurrency_per_host`` fixes the limit instead. A host that answers nothing while two checks
time out (one sent after the other went unanswered, or both in the first round, before it ever
answered) is hung: the rest of its checks start at once, so ten hung checks cost two timeouts, not
ten. Its first answer ends that: a cold start is not a hang, and the checks that timed out are
judged only once the round that ran at once has ended.

A request we stop waiting for is not stopped at the host: a sync worker keeps serving it. Until
the host answers a request sent after it, such an abandoned request is our own load, so a timeout
it may explain is retried alone once it has cleared, and judged "not evaluated" if it had not.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Hashable

from .base import CheckFailed, CheckNotEvaluated, CheckResult

DEFAULT_CONCURRENCY = 16
# Where the adaptive per-host limit starts: a two-worker app server (gunicorn's common setting)
# takes 2 at once whatever its answers cost; more is earned by answers that show no queueing.
ADAPTIVE_START = 2
# Across pytest-xdist workers the per-host limit is a set of lock files: fixed, not adaptive.
DEFAULT_PER_HOST_ACROSS_WORKERS = 2
# An answer within this multiple of the host's fastest (plus a little jitter) shows no queueing.
FAST_RATIO = 1.5
FAST_SLACK_SECONDS = 0.05
# The limit grows only while the host's fastest answer, this many times over, fits the shortest
# timeout: one request over its capacity waits about one answer's time more.
PROBE_MARGIN = 2.5
# Answers this many times slower among others than alone show the host queued them; no slower
# than this, it did not.
SLOWED_RATIO = 1.5
UNSLOWED_RATIO = 1.1


# Silent timeouts (one sent after the other had gone unanswered, or any before a first answer)
# before a host counts as hung.
HUNG_AFTER = 2

# Failures that carry no answer from the host: the connection failed or nothing came back.
SILENT_KINDS = frozenset(
    {"timeout", "connection_refused", "connection_reset", "connection_error", "dns_failure", "tls_error"}
)


def _note(failure: CheckFailed, line: str) -> None:
    failure.details = "\n".join(filter(None, [failure.details, line]))


def _requests(count: int) -> str:
    return f"{count} request" if count == 1 else f"{count} requests"


def _crowd(others: int, host: str) -> str:
    """Our other requests at the host, in words: checks in flight and requests we had abandoned."""
    if others == 1:
        return f"1 other request of ours to {host} was in flight or unanswered"
    return f"{others} other requests of ours to {host} were in flight or unanswered"


class NotStarted(Exception):
    """The check was cancelled before it started; ``reason`` says why."""

    word = "not started"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotFinished(NotStarted):
    """The check was in flight when the run abandoned it; it judged nothing."""

    word = "not finished"


class HostLimit:
    """How many checks may be in flight to one host: fixed, or adapted to how the host answers.
    Not thread-safe by itself: :class:`HostGate` calls it under its lock."""

    def __init__(self, fixed: int | None, ceiling: int):
        self.fixed = fixed is not None
        self.ceiling = max(1, ceiling if fixed is None else fixed)
        self.current = max(1, fixed) if fixed is not None else min(ADAPTIVE_START, self.ceiling)
        self.peak = self.current
        self.fastest: float | None = None
        self.cuts: list[tuple[int, int, str]] = []  # (from, to, why)
        self.epoch = 0  # one cut per epoch: a crowd of timeouts from one limit cuts it once

    def answered(self, seconds: float, held_back: bool, shortest_allowed: float) -> None:
        """A check ended with an answer from the host; raise the limit if the limit was what held
        checks back (some wait for a slot), the answer shows no queueing, and a request that does
        queue behind the host's capacity (twice its time, and more) still fits the shortest
        timeout of the checks to it: finding the capacity must never cost a timeout."""
        self.fastest = seconds if self.fastest is None else min(self.fastest, seconds)
        if self.fixed or not held_back or self.current >= self.ceiling:
            return
        if shortest_allowed and self.fastest * PROBE_MARGIN >= shortest_allowed:
            return
        if seconds <= self.fastest * FAST_RATIO + FAST_SLACK_SECONDS:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def overloaded(self, why: str, epoch: int) -> None:
        """The host showed it had too much (a timeout in a crowd, 429, 503 with Retry-After):
        halve the limit, once per epoch."""
        if self.fixed or epoch != self.epoch or self.current <= 1:
            return
        before, self.current = self.current, max(1, self.current // 2)
        self.cuts.append((before, self.current, why))
        self.epoch += 1

    def describe(self) -> str:
        """ "up to 12 at once, cut to 3 after a timeout" / "4 at once (fixed)"."""
        if self.fixed:
            return f"{self.current} at once (max_concurrency_per_host)"
        text = f"up to {self.peak} at once"
        said: list[tuple[int, str, int]] = []  # (to, why, times): the same cut again is said once
        for _, after, why in self.cuts:
            if said and said[-1][:2] == (after, why):
                said[-1] = (after, why, said[-1][2] + 1)
            else:
                said.append((after, why, 1))
        for after, why, times in said:
            text += f", cut to {after} after {why}" + (f" ({times} times)" if times != 1 else "")
        return text


@dataclass
class Left:
    """What a check's end at the gate says about its host."""

    others: int  # our other requests at the host meanwhile: checks in flight, abandoned ones not yet cleared
    answered: bool  # the host answered anything while the check was in flight
    sent_among: int = 1  # checks in flight when it was sent, itself included
    abandoned_at: float | None = None  # it timed out: when we stopped waiting for it


class HostGate:
    """At most ``limit`` checks in flight against one host; ``alone`` waits until it is the only one."""

    def __init__(self, limit: int | None, ceiling: int = DEFAULT_CONCURRENCY):
        self.limiter = HostLimit(limit, ceiling)
        # Per check: when it was sent, how many were in flight (itself included), the limit's epoch,
        # and how long before that we had last abandoned a request to the host.
        self._entered: dict[int, tuple[float, int, int, float]] = {}
        self._waiting = 0  # checks queued for a slot: the limit is what holds them back
        self.last_answer = float("-inf")  # when the host last answered anything
        self.requests = 0
        self.timeouts = 0
        # The most checks in flight when one was sent that was still answered in time: a load the
        # host has shown it takes. A timeout sent among more was our probing, not its fault.
        self.proven = 0
        self.quiet_retries = 0  # such timeouts that passed when retried alone
        self._latency = [(0.0, 0), (0.0, 0)]  # answers sent alone, sent among others: (seconds summed, count)
        # HUNG_AFTER checks timed out with no answer at all from the host, each sent after the
        # previous one had already gone unanswered (or before the host ever answered), each given as
        # long as any check still to end there, none sent within its own timeout after we abandoned a
        # request there (the host may have been busy with that): the host hangs, whatever our load.
        # An adaptive gate no longer holds anyone back, and a timeout is not retried once the checks
        # in flight ended unanswered too. An answer ends it.
        self.hung = False
        self._silent_timeouts = 0
        self._silent_since = float("inf")  # when the last counted silent timeout happened
        self.shortest_allowed = 0.0  # the shortest timeout of the checks submitted to this host (0: none known)
        # The timeouts of the checks submitted and of those ended (appends need no lock): a host is
        # judged hung only by checks given as long as any still to end.
        self._allowed_submitted: list[float] = []
        self._allowed_ended: list[float] = []
        self._in_flight: set[int] = set()
        self._peak: dict[int, int] = {}  # per check: the most checks in flight to the host at once
        self._exclusive = False
        self._other_waiting = 0  # waiters for another condition than a free slot (alone, still hung): notify_all
        self._retries_waiting = 0  # of which retries waiting to go alone
        self._closed = False  # the run stopped starting checks: nobody waiting gets a slot
        # When we stopped waiting for a request (a timeout). A sync worker keeps serving it until it
        # is done, so it is our load until the host answers a request sent after it.
        self._abandoned: list[float] = []
        self._condition = threading.Condition()

    def expect(self, allowed_seconds: float) -> None:
        """A check with this timeout will be sent to the host."""
        self._allowed_submitted.append(allowed_seconds)
        if not allowed_seconds or self.shortest_allowed and self.shortest_allowed <= allowed_seconds:
            return  # nothing new; the lock would only make the run's submitting wait for its checks
        with self._condition:
            self.shortest_allowed = min(self.shortest_allowed or allowed_seconds, allowed_seconds)

    def ended(self, allowed_seconds: float) -> None:
        """A check :meth:`expect` announced has ended, retries and all."""
        self._allowed_ended.append(allowed_seconds)

    def _longest_pending(self) -> float:
        pending = Counter(self._allowed_submitted)
        pending.subtract(self._allowed_ended)
        return max((allowed for allowed, count in pending.items() if count > 0), default=0.0)

    def enter(self, token: int) -> bool:
        """Wait for a slot; False (no slot taken) once the gate is closed: the check must not start."""
        with self._condition:
            self._waiting += 1
            try:
                self._condition.wait_for(
                    lambda: (
                        self._closed
                        or self.opened
                        or (not self._exclusive and len(self._in_flight) < self.limiter.current)
                    )
                )
            finally:
                self._waiting -= 1
            if self._closed:
                return False
            self._claim(token)
            return True

    def enter_alone(self, token: int, patience: float, own: float | None = None) -> int | None:
        """Wait to be the only request of ours at the host: no check in flight and, as far as the
        host shows, none we abandoned still served (the check's own first attempt, abandoned at
        ``own``, included). Other checks' answers clear abandoned requests; with none left to run,
        the host gets ``patience`` seconds (the check's timeout) from the latest abandonment.
        Returns how many abandoned requests may still have been served when it was sent (its own
        first attempt not, once it is ``patience`` old: a healthy endpoint has answered it by then,
        so a retry still unanswered is the endpoint's failure), or None once the gate is closed."""
        with self._condition:
            self._other_waiting += 1
            self._retries_waiting += 1
            try:
                while True:
                    self._wait_out_abandoned(patience)
                    self._condition.wait_for(lambda: self._closed or not self._exclusive)
                    if self._closed:
                        return None
                    self._exclusive = True
                    # An opened gate lets its queued checks in whatever the exclusive claim: they are
                    # the round to wait for.
                    self._condition.wait_for(
                        lambda: self._closed or not (self._in_flight or (self.opened and self._waiting))
                    )
                    lingering = self._lingering(own, patience)
                    if self._closed or (lingering and self._waiting and not self.hung):
                        # Closed, or the checks that just ended left requests behind at the host: let
                        # the waiting checks run (and clear them) before going alone.
                        self._exclusive = False
                        self._condition.notify_all()
                        if self._closed:
                            return None
                        continue
                    self._claim(token)
                    return lingering
            finally:
                self._other_waiting -= 1
                self._retries_waiting -= 1

    def _wait_out_abandoned(self, patience: float) -> None:
        """Under the lock: wait until no request we abandoned is still served, as far as the host
        shows; with no check left to run, the host gets ``patience`` from the latest abandonment."""
        while not (self._closed or self.hung or not self._abandoned):
            idle = not (self._in_flight or self._waiting)
            left = max(self._abandoned) + patience - time.monotonic()
            if idle and left <= 0:
                return
            self._condition.wait(timeout=left if idle else None)

    def _lingering(self, own: float | None, patience: float) -> int:
        """How many abandoned requests may still be served: a check's own first attempt (abandoned
        at ``own``) not, once it is ``patience`` old."""
        lingering = len(self._abandoned)
        if own in self._abandoned and time.monotonic() - own >= patience:
            lingering -= 1
        return lingering

    def _claim(self, token: int) -> None:
        self._in_flight.add(token)
        now = time.monotonic()
        self._entered[token] = (
            now,
            len(self._in_flight),
            self.limiter.epoch,
            now - max(self._abandoned, default=float("-inf")),
        )
        for other in self._in_flight:
            self._peak[other] = max(self._peak.get(other, 1), len(self._in_flight))

    def close(self) -> None:
        """The run stops starting checks (fail_fast, -x, the run is over): wake every waiter."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def limit(self) -> int:
        return self.limiter.current

    def settled_retry(self, sent_among: int) -> int:
        """A timed-out check passed alone: count it as our probing's if it was sent among more checks
        than the host had answered in time at once. Returns that most."""
        with self._condition:
            if sent_among > self.proven:
                self.quiet_retries += 1
            return self.proven

    def describe(self) -> str:
        """The limit in words, and the timeouts our own load caused."""
        with self._condition:
            text = self.limiter.describe()
            if self.quiet_retries:
                text += (
                    f"; {self.quiet_retries} timed out among more checks than it had answered in time at once "
                    "and passed when retried alone"
                )
            return text

    def likelier(self) -> str:
        """Which explanation of a pass alone the host's answers favour: did they slow down with
        others in flight? (Endpoints differ, so only a clear difference says anything.)"""
        with self._condition:
            (alone_sum, alone_n), (crowd_sum, crowd_n) = self._latency
        if not alone_n or not crowd_n:
            return ""
        ratio = (crowd_sum / crowd_n) / max(alone_sum / alone_n, 1e-6)
        if ratio >= SLOWED_RATIO:
            return f"; the likelier: our load, its answers took {ratio:.1f}x as long with others in flight"
        if ratio <= UNSLOWED_RATIO:
            return f"; the likelier: a hung backend, its answers took no longer with others in flight ({ratio:.1f}x)"
        return ""

    def still_hung(self, settled: bool = False) -> bool:
        """Whether the host is hung once the checks queued or in flight to it have ended (an answer
        to any of them ends it): a check that timed out is judged on the whole round, not on its
        start. ``settled``: also once the retries waiting to go alone have gone (their silence may
        yet show it hung)."""

        def over() -> bool:
            busy = self._in_flight or self._waiting or (settled and self._retries_waiting)
            return self._closed or not busy or (not self.hung and not settled)

        with self._condition:
            self._other_waiting += 1
            try:
                self._condition.wait_for(over)
            finally:
                self._other_waiting -= 1
            return self.hung

    @property
    def opened(self) -> bool:
        """A hung host's remaining checks start at once, with their own timeouts; an explicit
        limit is the operator's and stays."""
        return self.hung and not self.limiter.fixed

    def leave(self, token: int, alone: bool = False, outcome: BaseException | None = None, sent: bool = True) -> Left:
        """Leave, with what the check ended with (None: it passed; ``sent`` False: nothing was
        sent, nothing to learn)."""
        with self._condition:
            others = self._peak.pop(token, 1) - 1
            limit, opened = self.limiter.current, self.opened
            if not sent:
                self._entered.pop(token, None)
            left = self._learn(token, outcome, others)
            self._in_flight.discard(token)
            if alone:
                self._exclusive = False
            # One freed slot is for one waiter; waking them all only to send most back to sleep
            # costs more than a fast check. An "alone" waiter, a raised limit or an opened gate
            # have room for more than one.
            if alone or self._exclusive or self._other_waiting or opened or self.opened or self.limiter.current > limit:
                self._condition.notify_all()
            else:
                self._condition.notify()
            return left

    def _learn(self, token: int, outcome: BaseException | None, others: int) -> Left:
        """What the check's end says about the host: an answer (fast or not), a sign of overload,
        or silence."""
        entered = self._entered.pop(token, None)
        if entered is None:
            return Left(others, answered=True)
        started, crowded, epoch, since_abandoned = entered
        answered = self.last_answer >= started
        now = time.monotonic()
        self.requests += 1
        kind = getattr(outcome, "kind", None)
        if outcome is None or (isinstance(outcome, CheckFailed) and kind not in SILENT_KINDS):
            self._learn_from_answer(outcome, started, crowded, epoch, now)
        elif kind == "timeout":
            return self._learn_from_timeout(outcome, entered, others, answered, now)
        return Left(others, answered, crowded)

    def _learn_from_answer(
        self, outcome: BaseException | None, started: float, crowded: int, epoch: int, now: float
    ) -> None:
        """The host answered (a pass, or a failure that is an answer): it is not hung; a 429 or a
        503 with Retry-After lowers the limit, a pass may raise it."""
        facts = getattr(outcome, "facts", None) or {}
        self.last_answer = now
        self._silent_timeouts, self._silent_since = 0, float("inf")
        self.hung = False  # it answers: slow to start, perhaps, but not hung
        if self._abandoned:  # it answered a request sent after these: it is through them
            self._abandoned = [when for when in self._abandoned if when >= started]
        status = facts.get("status")
        if outcome is None:
            self.proven = max(self.proven, crowded)
            total, count = self._latency[crowded > 1]
            self._latency[crowded > 1] = (total + now - started, count + 1)
        if status == 429 or (status == 503 and facts.get("retry_after")):
            self.limiter.overloaded(f"{status} answers", epoch)
        elif outcome is None:
            self.limiter.answered(
                now - started, self._waiting > 0 or crowded >= self.limiter.current, self.shortest_allowed
            )

    def _learn_from_timeout(
        self, outcome: BaseException, entered: tuple[float, int, int, float], others: int, answered: bool, now: float
    ) -> Left:
        """The check timed out: our load on the host, or its silence (a hang, once repeated)."""
        started, crowded, epoch, since_abandoned = entered
        self.timeouts += 1
        others += len(self._abandoned)
        self._abandoned.append(now)
        after_silence = self._silent_timeouts == 0 or started >= self._silent_since or self.last_answer == float("-inf")
        # Given less time than another check still to end at the host (a latency budget on a slow report), or
        # sent sooner after we abandoned a request there than its own timeout (the host may still
        # be busy with our work): its silence proves nothing.
        allowed = float(getattr(outcome, "seconds", 0) or 0)
        if not answered and after_silence and since_abandoned >= allowed and allowed >= self._longest_pending():
            self._silent_timeouts += 1
            self._silent_since = now
            self.hung = self.hung or self._silent_timeouts >= HUNG_AFTER
        if others and not self.hung:
            self.limiter.overloaded("timeouts", epoch)
        return Left(others, answered, crowded, now)


class CheckScheduler:
    def __init__(self, max_workers: int = DEFAULT_CONCURRENCY, per_host: int | None = None):
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="smoke-check")
        self._futures: dict[Hashable, Future[object]] = {}  # until an item takes the result
        self._submitted: set[Hashable] = set()
        self._seconds: dict[Hashable, float] = {}
        self._cancel_reason: str | None = None
        self._lock = threading.Lock()
        self._per_host = per_host  # None: adaptive, up to max_workers
        self._ceiling = max(1, max_workers)
        self._gates: dict[str, HostGate] = {}
        self._abandoned: Future[object] = Future()  # done once the run stops waiting for checks in flight
        self._abandon_reason = ""
        self._abandon_cause: Hashable = None  # the check whose failure abandoned the run: its item takes its result

    def _gate(self, host: str) -> HostGate:
        gate = self._gates.get(host)  # without the lock once it exists: every check asks
        if gate is None:
            with self._lock:
                gate = self._gates.setdefault(host, HostGate(self._per_host, self._ceiling))
        return gate

    def submit(
        self,
        key: Hashable,
        func: Callable[[], object],
        host: str | None = None,
        retry_safe: bool = True,
        allowed_seconds: float = 0.0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``func`` in the pool, within ``host``'s limit. ``retry_safe`` False: the check sends
        a request body (a POST), so a timeout is never retried: the first attempt may still apply.
        ``allowed_seconds``: the check's own timeout (the limit grows only while the host's fastest
        answer, PROBE_MARGIN times over, fits the shortest; a host is judged hung only by checks
        given the longest). ``on_error``: called with what the check finally ended with (retries
        judged), before its item sees it."""
        if host is not None:
            self._gate(host).expect(allowed_seconds)

        def timed() -> object:
            reason = self._cancel_reason  # set once; a check it misses by a hair is stopped at its host's gate
            if reason is not None:
                raise NotStarted(reason)
            started = time.monotonic()
            try:
                return func() if host is None else self._run_gated(func, host, retry_safe)
            except BaseException as error:
                if on_error is not None:
                    on_error(error)
                raise
            finally:
                self._seconds[key] = time.monotonic() - started
                if host is not None:
                    self._gate(host).ended(allowed_seconds)

        future = self._pool.submit(timed)
        with self._lock:
            self._futures[key] = future
            self._submitted.add(key)

    def _run_gated(self, func: Callable[[], object], host: str, retry_safe: bool = True) -> object:
        gate, token = self._gate(host), threading.get_ident()
        if not gate.enter(token):  # queued for the host when the run stopped starting checks
            raise NotStarted(self._cancel_reason or self._abandon_reason or "the run stopped starting checks")
        try:
            result = func()
        except CheckFailed as failure:
            left = gate.leave(token, outcome=failure)
            token = 0
            if failure.kind != "timeout" or not left.others:
                raise
            crowd = _crowd(left.others, host)
            if gate.still_hung():
                _note(
                    failure,
                    f"timed out while {crowd}; not retried alone: {host} stopped answering "
                    f"({HUNG_AFTER} checks in a row timed out with no answer at all)",
                )
                raise
            if not retry_safe:
                if left.answered:  # the host served others meanwhile: its own slowness, not a queue of ours
                    _note(
                        failure,
                        f"timed out while {crowd}, which were answered meanwhile; not retried alone, "
                        "because it sends a request body and its first attempt may still be applied",
                    )
                    raise
                raise CheckNotEvaluated(
                    f"not evaluated: {failure.reason} while {crowd}, with no answer from {host} meanwhile; "
                    "not retried, "
                    "because it sends a request body and its first attempt may still be applied",
                    kind="timeout_in_crowd",
                ) from None
            return self._retry_alone(func, gate, host, failure, crowd, left)
        except BaseException as error:
            if token:
                gate.leave(token, outcome=error)
                token = 0
            raise
        else:
            return result
        finally:
            if token:
                gate.leave(token)  # passed: an answer, and its time

    def _retry_alone(
        self, func: Callable[[], object], gate: HostGate, host: str, failure: CheckFailed, crowd: str, first: Left
    ) -> object:
        """Our own load may have caused the timeout: try once more with nothing else of ours at the
        host, abandoned requests included as far as the host's answers show."""
        token = threading.get_ident()
        lingering = gate.enter_alone(token, patience=float(getattr(failure, "seconds", 0) or 0), own=first.abandoned_at)
        if lingering is None:
            # The run stopped before the retry: a timeout in a crowd may be our own load's doing.
            raise CheckNotEvaluated(
                f"not evaluated: {failure.reason} while {crowd}, and the run stopped before the retry alone",
                kind="timeout_in_crowd",
            )
        outcome: BaseException | None = None
        sent, inside = True, True
        try:
            if gate.hung:  # another check found the host hung while this one waited
                sent = False
                _note(failure, f"timed out while {crowd}; not retried alone: {host} stopped answering meanwhile")
                raise failure
            result = func()
        except CheckNotEvaluated as spent:
            outcome = spent  # the first attempt was crowded by our own load, the retry judged nothing
            raise CheckNotEvaluated(
                f"not evaluated: {failure.reason} while {crowd}, and the retry alone was not evaluated ({spent})",
                kind=getattr(spent, "kind", "timeout_in_crowd"),
            ) from None
        except CheckFailed as again:
            if again is failure:
                raise
            gate.leave(token, alone=True, outcome=again)  # first: its own silence may show the host hung
            inside = False
            if again.kind == "timeout" and lingering and not gate.still_hung(settled=True):
                # Still behind requests we had abandoned: neither attempt was judged on its own.
                raise CheckNotEvaluated(
                    f"not evaluated: {failure.reason} while {crowd}, and again when retried, "
                    f"while {_requests(lingering)} "
                    f"we had stopped waiting for may still have kept {host} busy",
                    kind="timeout_in_crowd",
                ) from None
            again.reason += " (also when retried alone)"
            _note(again, f"first attempt: timed out while {crowd}")
            raise
        finally:
            if inside:
                gate.leave(token, alone=True, outcome=outcome, sent=sent)
        if isinstance(result, CheckResult):
            proven = gate.settled_retry(first.sent_among)
            if first.sent_among > proven:
                # Sent among more checks than the host had yet answered in time: our probing's timeout.
                result.summary += (
                    f" (passed when retried alone: the first attempt timed out as one of {first.sent_among} "
                    f"checks in flight to {host}, more than it had answered in time at once)"
                )
            else:
                # A pass alone proves nothing about our load: one hung backend of several behind a
                # load balancer looks the same. Say both, with what the host showed.
                result.warnings.insert(
                    0,
                    (
                        f"timed out while {crowd}, then passed when retried alone: either {host} could not take "
                        f"{first.others + 1} requests at once (its limit is now {gate.limit}), "
                        "or one of its backends hangs "
                        f"({gate.timeouts} of {gate.requests} requests to it timed out){gate.likelier()}"
                    ),
                )
        return result

    def host_limits(self, notable_only: bool = False) -> dict[str, str]:
        """Per host: the limit it reached and when it was cut, in words. ``notable_only``: only
        where that says something (a cut, timeouts of our own making, a host that stopped answering)."""
        with self._lock:
            gates = dict(self._gates)
        said = {True: " (stopped answering: the rest started at once)", False: " (stopped answering: no retries alone)"}
        return {
            host: gate.describe() + (said[gate.opened] if gate.hung else "")
            for host, gate in sorted(gates.items())
            if not notable_only or gate.limiter.cuts or gate.quiet_retries or gate.hung
        }

    def __contains__(self, key: Hashable) -> bool:
        """Whether the check was submitted to the pool (its result may have been taken since)."""
        return key in self._submitted

    def result(self, key: Hashable, timeout: float | None = None) -> object:
        """The check's result, taken once; raises its exception, NotStarted if it was cancelled, or
        NotFinished if it was still in flight when the run abandoned it or ``timeout`` passed (a
        backstop: every check keeps its own deadline, so only a bug of ours gets this far)."""
        future = self._futures[key]
        if future.cancelled():
            raise NotStarted(self._cancel_reason or "cancelled")
        if not future.done():
            waiting: list[Future[object]] = [future, self._abandoned]
            wait(waiting, timeout=timeout, return_when=FIRST_COMPLETED)
            if not future.done() and key == self._abandon_cause:
                wait([future], timeout=timeout)  # its own failure abandoned the run: that result is on its way
            if future.cancelled():
                raise NotStarted(self._cancel_reason or "cancelled")
            if not future.done():
                if not self._abandoned.done():
                    raise NotFinished(
                        f"no result within {round(timeout or 0, 1):g} s (the run budget and a backstop): "
                        "the check overran its own deadline"
                    )
                raise NotFinished(self._abandon_reason)
        # A finished future (its lock, condition and result) would otherwise live until the run
        # ends, and every garbage collection of a large run would walk it again.
        with self._lock:  # cancel_pending (on a pool thread, for fail_fast) reads the dict
            del self._futures[key]
        return future.result()

    def abandon(self, reason: str, cause: Hashable = None) -> None:
        """Stop waiting: checks not started are cancelled, checks in flight are reported as not
        finished (their threads end at their own deadline, unobserved), except ``cause``, the check
        whose failure called for it: its result is on its way."""
        self.cancel_pending(reason)
        with self._lock:
            if self._abandoned.done():
                return
            self._abandon_reason, self._abandon_cause = reason, cause
            self._abandoned.set_result(None)

    def seconds(self, key: Hashable) -> float | None:
        return self._seconds.get(key)

    def cancel_pending(self, reason: str) -> None:
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason
            gates = list(self._gates.values())
            futures = list(self._futures.values())  # items take theirs out meanwhile
        for future in futures:
            future.cancel()
        for gate in gates:  # checks queued for a host slot do not start either
            gate.close()

    def shutdown(self) -> None:
        """Cancel what has not started; wait for the rest (each is bounded by its deadline)."""
        self.cancel_pending("the run is over")
        self._pool.shutdown(wait=True, cancel_futures=True)


class HostSlots:
    """The per-host limit across processes (pytest-xdist workers), with one lock file per slot.

    Each worker runs its own checks one at a time, so ``-n 8`` would otherwise put 8 checks on one
    host at once. ``flock`` locks vanish with the process that held them, a crashed worker included.
    """

    def __init__(self, directory: str, per_host: int):
        self.directory = directory
        self.per_host = max(1, per_host)

    def hold(self, host: str, seconds: float) -> "_Slot":
        # Lazy: POSIX only, and every pytest run imports this module (plugin.main): at the top it
        # would break them all on Windows.
        import fcntl

        os.makedirs(self.directory, exist_ok=True)
        stem = hashlib.sha256(host.encode()).hexdigest()[:16]
        end = time.monotonic() + seconds
        while True:
            for slot in range(self.per_host):
                handle = open(os.path.join(self.directory, f"{stem}-{slot}.lock"), "a+")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    continue
                return _Slot(handle)
            if time.monotonic() >= end:
                raise NotStarted(f"no free slot for {host} within {seconds:g} s (max_concurrency_per_host)")
            time.sleep(0.05)


class _Slot:
    def __init__(self, handle: object):
        self.handle = handle

    def __enter__(self) -> "_Slot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()  # type: ignore[attr-defined]  # closing releases the flock
