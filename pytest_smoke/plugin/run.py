"""The state of one smoke run in one process (the controller or an xdist worker)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pytest

from ..checks import CheckContext, CheckFailed, CheckResult, Deadline, run_check, target_host
from ..checks.base import new_run_id
from ..redact import Redactor

if TYPE_CHECKING:
    from ..checks.scheduler import CheckScheduler
    from ..config import SmokeConfig
    from ..model import Check

# Every pytest run imports this module (plugin.main): .critical_path and .http are imported where
# used, once a smoke config is found (with requests, ~110 ms).

REQUIRED_MARKER = "smoke_required"
OPTIONAL_MARKER = "smoke_optional"
# pytest-timeout backstop past a check's own deadline; the check normally fails first, cleanly.
TIMEOUT_BACKSTOP_SECONDS = 10.0

# Environment variables a dependency check falls back to when its config entry names no address.
CHECK_ENVIRONMENT = ("DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "REDIS_URL", "AMQP_URL")

smoke_run_key = pytest.StashKey["SmokeRun"]()
# A fleet session's xdist arguments (-n N --dist MODE), for its targets' processes.
target_workers_key = pytest.StashKey[tuple[str, ...]]()
CONTROLLER_NAME = "smoke-controller"


class SmokeRun:
    """Everything one process knows about this smoke run."""

    def __init__(
        self,
        config: SmokeConfig,
        concurrency: int,
        fail_fast: bool,
        per_host: int | None = None,
        extensions: Any = None,
        dry_run: bool = False,
        identity: tuple[str, int] | None = None,
    ):
        self.config = config
        # The targets this session collects: the config alone, or a fleet session's every target.
        self.targets: list[SmokeConfig] = [config]
        self.rollback_handler = getattr(extensions, "rollback_handler", None)
        self.expected_images: dict[str, str] = dict(getattr(extensions, "expected_images", None) or {})
        self.redactor = Redactor(config.secrets)
        self.context = CheckContext(
            base_url=config.base_url,
            headers=config.headers,
            verify=config.verify,
            redactor=self.redactor,
            # Only what the checks read: no frame of ours holds a copy of the whole environment.
            environ={name: os.environ[name] for name in CHECK_ENVIRONMENT if name in os.environ},
            check_types=dict(getattr(extensions, "check_types", None) or {}),
            connections=_connection_pool(concurrency),
            follow_redirects=bool(config.setting("follow_redirects")),
            max_redirects=int(config.setting("max_redirects")),
            # One id and start per run: the controller's, handed to every xdist worker.
            run_id=identity[0] if identity else new_run_id(),
            run_started=identity[1] if identity else int(time.time()),
        )
        self._budget: Deadline | None = None
        from ..checks.critical_path import CLEANUP_SECONDS, cleanup_seconds  # lazy: see the top

        paths = [c.spec for c in config.checks if c.kind == "critical_path"]
        self._longest_cleanup = max([CLEANUP_SECONDS, *(cleanup_seconds(spec) for spec in paths)])
        self.concurrency = concurrency
        self.per_host = per_host
        self.fail_fast = fail_fast
        self.dry_run = dry_run  # --smoke-no-rollback
        self.scheduler: CheckScheduler | None = None
        self.consumed: set[str] = set()  # checks whose pooled result an item has already reported
        self.deselected: list[list[Any]] = []  # [node id, name, required, why] of every item deselected
        self.stop_reason: str | None = None
        self.log_records: Any = None  # RedactingLogRecords, while the run lasts
        self.host_slots: Any = None  # HostSlots in an xdist worker: the per-host limit across workers

    @property
    def budget(self) -> Deadline:
        """The config's timeout_seconds bounds every check of the run, started or not. It starts
        with the first check (after any rollout wait), in whichever process runs checks."""
        if self._budget is None:
            self._budget = Deadline(self.config.timeout)
        return self._budget

    def pooled_wait_bound(self) -> float:
        """How long a pooled item may still wait for its result: the run budget, a critical
        path's cleanup and a backstop (every check keeps its own deadline; past this, "not finished")."""
        return self.budget.remaining() + TIMEOUT_BACKSTOP_SECONDS + self._longest_cleanup

    def run_one(self, check: Check) -> CheckResult:
        host = target_host(check, self.config.base_url) if self.host_slots else None
        if host is None or self.host_slots is None:
            return run_check(check, self.context, budget=self.budget)
        with self.host_slots.hold(host, self.budget.remaining()):
            return run_check(check, self.context, budget=self.budget)

    def pooled_check_ended(self, check: Check, error: BaseException) -> None:
        """A check in the pool ended with ``error``, its retries judged. A critical failure that
        makes a rollback certain stops the generated checks not yet started when the rollback needs
        no one's confirmation (they cannot change it, and the broken deploy serves traffic
        meanwhile); with fail_fast it also abandons the checks in flight."""
        if not (
            isinstance(error, CheckFailed) and check.required and check.rollback and self.rollback_certain_after_one
        ):
            return
        if self.fail_fast:
            reason = f"fail_fast: a rollback is due after the critical failure of {check.name}"
            self.stop_starting_checks(reason)
            if self.scheduler is not None:
                self.scheduler.abandon(reason, cause=check.node_name)
        elif self.rollback_needs_no_one and self.scheduler is not None:
            # Generated checks only: a developer's own tests still run (one may be a precondition).
            self.scheduler.cancel_pending(
                f"a rollback is due after the critical failure of {check.name}; no check left could change that"
            )

    @property
    def rollback_certain_after_one(self) -> bool:
        """One critical failure calls for a rollback: auto_rollback is on with a threshold of 1, and
        no check could still veto it: a precondition (its failure makes the run inconclusive) or a
        ``rollback: false`` check (its failure may explain the others: then no rollback helps).
        (With a higher threshold, failures a dependency explains count once: only the verdict
        can tell, so the checks in flight are awaited.)"""
        auto = self.config.auto_rollback
        if any(check.precondition or not check.rollback for check in self.config.checks):
            return False
        return auto.enabled and auto.critical_failure_threshold <= 1

    @property
    def rollback_needs_no_one(self) -> bool:
        """The rollback will be written without a person's confirmation (not a dry run either):
        a person deciding is better served by every result."""
        return not self.config.auto_rollback.requires_ops_confirmation and not self.dry_run

    def stop_starting_checks(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.scheduler is not None:
            self.scheduler.cancel_pending(reason)


def _connection_pool(size: int) -> Any:
    from ..checks.http import connection_pool  # lazy: see the top

    return connection_pool(size)


def get_run(config: pytest.Config) -> SmokeRun | None:
    return config.stash.get(smoke_run_key, None)
