"""Run configured checks concurrently in a bounded pool, in item order.

Each check stays its own pytest item: the item only waits for its future. Checks that have not
started can be cancelled (``-x``, ``--maxfail``, ``fail_fast``); a check that has started always
finishes within its own deadline. Plain Python, no pytest.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Hashable

if TYPE_CHECKING:
    from concurrent.futures import Future

DEFAULT_CONCURRENCY = 16


class NotStarted(Exception):
    """The check was cancelled before it started; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CheckScheduler:
    def __init__(self, max_workers: int = DEFAULT_CONCURRENCY):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="smoke-check")
        self._futures: dict[Hashable, Future] = {}
        self._seconds: dict[Hashable, float] = {}
        self._cancel_reason: str | None = None
        self._lock = threading.Lock()

    def submit(self, key: Hashable, func: Callable[[], object]) -> None:
        def timed() -> object:
            with self._lock:
                if self._cancel_reason is not None:
                    raise NotStarted(self._cancel_reason)
            started = time.monotonic()
            try:
                return func()
            finally:
                self._seconds[key] = time.monotonic() - started

        self._futures[key] = self._pool.submit(timed)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._futures

    def result(self, key: Hashable) -> object:
        """The check's result; raises its exception, or NotStarted if it was cancelled."""
        future = self._futures[key]
        if future.cancelled():
            raise NotStarted(self._cancel_reason or "cancelled")
        return future.result()

    def seconds(self, key: Hashable) -> float | None:
        return self._seconds.get(key)

    def cancel_pending(self, reason: str) -> None:
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason
        for future in self._futures.values():
            future.cancel()

    def shutdown(self) -> None:
        """Cancel what has not started; wait for the rest (each is bounded by its deadline)."""
        self.cancel_pending("the run is over")
        self._pool.shutdown(wait=True, cancel_futures=True)
