"""Run configured checks concurrently in a bounded pool, in item order.

Each check stays its own pytest item: the item only waits for its future. Checks that have not
started can be cancelled (``-x``, ``--maxfail``, ``fail_fast``); a check that has started finishes
within its own deadline, unless the run abandons it (``fail_fast`` once a rollback is certain):
then its item stops waiting at once and reports it as not finished. Plain Python, no pytest.

The smoke run must never become the load that fails the service: at most ``per_host`` checks are
in flight against one host, and a check that timed out while others to the same host were in
flight is tried once more alone before its timeout counts.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Callable, Hashable

from .base import CheckFailed, CheckResult

# A two-worker app server (gunicorn's common setting) must survive the defaults.
DEFAULT_CONCURRENCY = 8
DEFAULT_PER_HOST = 2


class NotStarted(Exception):
    """The check was cancelled before it started; ``reason`` says why."""

    word = "not started"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotFinished(NotStarted):
    """The check was in flight when the run abandoned it; it judged nothing."""

    word = "not finished"


class HostGate:
    """At most ``limit`` checks in flight against one host; ``alone`` waits until it is the only one."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self._in_flight: set[int] = set()
        self._peak: dict[int, int] = {}  # per check: the most checks in flight to the host at once
        self._exclusive = False
        self._alone_waiting = 0  # "alone" waiters wait for another condition than a free slot
        self._closed = False  # the run stopped starting checks: nobody waiting gets a slot
        self._condition = threading.Condition()
        # Set once a check timed out with nothing else in flight: the host itself is slow or hung,
        # so later crowded timeouts count at once (one extra timeout per host at most).
        self.timed_out_alone = False

    def enter(self, token: int, alone: bool = False) -> bool:
        """Wait for a slot; False (no slot taken) once the gate is closed: the check must not start."""
        with self._condition:
            if alone:
                self._alone_waiting += 1
                try:
                    self._condition.wait_for(lambda: self._closed or not self._exclusive)
                    if self._closed:
                        return False
                    self._exclusive = True
                    self._condition.wait_for(lambda: self._closed or not self._in_flight)
                    if self._closed:
                        self._exclusive = False
                        self._condition.notify_all()
                        return False
                finally:
                    self._alone_waiting -= 1
            else:
                self._condition.wait_for(lambda: self._closed or (not self._exclusive and len(self._in_flight) < self.limit))
                if self._closed:
                    return False
            self._in_flight.add(token)
            for other in self._in_flight:
                self._peak[other] = max(self._peak.get(other, 1), len(self._in_flight))
            return True

    def close(self) -> None:
        """The run stops starting checks (fail_fast, -x, the run is over): wake every waiter."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def leave(self, token: int, alone: bool = False) -> int:
        """Leave; returns the most checks that were in flight to this host beside this one."""
        with self._condition:
            self._in_flight.discard(token)
            if alone:
                self._exclusive = False
            # One freed slot is for one waiter; waking them all only to send most back to sleep
            # costs more than a fast check. An "alone" waiter needs everyone told.
            if alone or self._exclusive or self._alone_waiting:
                self._condition.notify_all()
            else:
                self._condition.notify()
            return self._peak.pop(token, 1) - 1


class CheckScheduler:
    def __init__(self, max_workers: int = DEFAULT_CONCURRENCY, per_host: int = DEFAULT_PER_HOST):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="smoke-check")
        self._futures: dict[Hashable, Future[object]] = {}  # until an item takes the result
        self._submitted: set[Hashable] = set()
        self._seconds: dict[Hashable, float] = {}
        self._cancel_reason: str | None = None
        self._lock = threading.Lock()
        self._per_host = per_host
        self._gates: dict[str, HostGate] = {}
        self._abandoned: Future[object] = Future()  # done once the run stops waiting for checks in flight
        self._abandon_reason = ""

    def _gate(self, host: str) -> HostGate:
        with self._lock:
            return self._gates.setdefault(host, HostGate(self._per_host))

    def submit(self, key: Hashable, func: Callable[[], object], host: str | None = None) -> None:
        def timed() -> object:
            with self._lock:
                if self._cancel_reason is not None:
                    raise NotStarted(self._cancel_reason)
            started = time.monotonic()
            try:
                return func() if host is None else self._run_gated(func, host)
            finally:
                self._seconds[key] = time.monotonic() - started

        future = self._pool.submit(timed)
        with self._lock:
            self._futures[key] = future
            self._submitted.add(key)

    def _run_gated(self, func: Callable[[], object], host: str) -> object:
        gate, token = self._gate(host), threading.get_ident()
        if not gate.enter(token):  # queued for the host when the run stopped starting checks
            raise NotStarted(self._cancel_reason or self._abandon_reason or "the run stopped starting checks")
        try:
            return func()
        except CheckFailed as failure:
            others = gate.leave(token)
            token = 0
            if failure.kind != "timeout" or not others:
                raise
            crowd = f"{others} other check(s) to {host} were in flight"
            if gate.timed_out_alone:  # the host hangs even without our load: no more retries
                failure.details = "\n".join(filter(None, [failure.details, f"timed out while {crowd}; "
                                                          "not retried alone: another check to it timed out alone"]))
                raise
            return self._retry_alone(func, gate, host, failure, crowd)
        finally:
            if token:
                gate.leave(token)

    def _retry_alone(self, func: Callable[[], object], gate: HostGate, host: str, failure: CheckFailed, crowd: str) -> object:
        """Our own load may have caused the timeout: try once more with nothing else in flight."""
        from .base import CheckNotEvaluated

        token = threading.get_ident()
        if not gate.enter(token, alone=True):
            # The run stopped before the retry: a timeout in a crowd may be our own load's doing.
            raise CheckNotEvaluated(f"not evaluated: {failure.reason} while {crowd}, and the run stopped before the retry "
                                    "alone", kind="timeout_in_crowd")
        try:
            if gate.timed_out_alone:  # another check found the host hung while this one waited
                raise failure
            result = func()
        except CheckNotEvaluated:
            raise failure from None  # the retry ran out of budget: the first attempt had its full time
        except CheckFailed as again:
            if again is failure:
                raise
            gate.timed_out_alone = gate.timed_out_alone or again.kind == "timeout"
            again.reason += " (also when retried alone)"
            again.details = "\n".join(filter(None, [again.details, f"first attempt: timed out while {crowd}"]))
            raise
        finally:
            gate.leave(token, alone=True)
        if isinstance(result, CheckResult):
            result.warnings.insert(
                0, f"timed out while {crowd}; passed when retried alone (lower max_concurrency_per_host?)"
            )
        return result

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
            if future.cancelled():
                raise NotStarted(self._cancel_reason or "cancelled")
            if not future.done():
                if not self._abandoned.done():
                    raise NotFinished(f"no result within {round(timeout or 0, 1):g} s (the run budget and a backstop): the check overran its own deadline")
                raise NotFinished(self._abandon_reason)
        # A finished future (its lock, condition and result) would otherwise live until the run
        # ends, and every garbage collection of a large run would walk it again.
        with self._lock:  # cancel_pending (on a pool thread, for fail_fast) reads the dict
            del self._futures[key]
        return future.result()

    def abandon(self, reason: str) -> None:
        """Stop waiting: checks not started are cancelled, checks in flight are reported as not
        finished (their threads end at their own deadline, unobserved)."""
        self.cancel_pending(reason)
        with self._lock:
            if self._abandoned.done():
                return
            self._abandon_reason = reason
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
        import fcntl
        import hashlib
        import os

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
