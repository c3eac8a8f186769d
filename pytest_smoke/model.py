"""The run's data types, and how a check's result travels on its pytest report. Plain Python, no pytest.

Every layer speaks these words: a :class:`Check` (its defaults resolved once, here), the
:class:`Outcome` of a check, the :class:`Verdict` over all of them, the :class:`Decision` it calls
for, the :class:`RollbackResult`, and :class:`RunSummary`, which the report document is built from.
The functions that produce them live in their own layers (config, checks, verdict, cluster).

A generated item (or a custom test in a smoke run) carries what the controller needs in
``report.user_properties`` as ``smoke_<key>`` pairs, because under pytest-xdist the controller
never sees the item itself, only its serialized reports. One encoder, one decoder.

:class:`RunSummary` is what the run concluded (verdict, decision, rollback, timeline, notes): the
one input of the report document, which every renderer reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final, Iterable, Literal, Mapping
from urllib.parse import quote

# What a check is, how it ended, and what the run calls for: the words every layer shares.
CheckKind = Literal["health", "dependency", "critical_path", "metric", "custom"]
Status = Literal["passed", "failed", "not_evaluated", "not_run", "skipped", "not_selected"]
Action = Literal[
    "none",
    "rollback",
    "confirm",
    "disabled",
    "below_threshold",
    "no_rollback_helps",
    "dry_run",
    "held",
    "vetoed",
    "inconclusive",
    "not_evaluated",
]
RollbackStatus = Literal[
    "completed",
    "unmarked",
    "still_failing",
    "failed",
    "superseded",
    "refused",
    "dry_run",
    "held",
    "awaiting_confirmation",
    "not_configured",
]
# A rollback was due and a human must act: it failed, the rolled-back version fails too, it was
# refused (unsafe, or another run holds the lease), held (a fleet's max_rollbacks), no Deployment
# is configured to roll back, or its rejection mark is missing.
ROLLBACK_NEEDS_A_HUMAN: tuple[RollbackStatus, ...] = (
    "failed",
    "still_failing",
    "refused",
    "held",
    "unmarked",
    "not_configured",
)

CHECK_KINDS: tuple[CheckKind, ...] = ("health", "dependency", "critical_path", "metric", "custom")


def check_kind(value: Any) -> CheckKind:
    """A kind read back from a report: one of CHECK_KINDS, else "custom" (a developer's test)."""
    return next((kind for kind in CHECK_KINDS if kind == value), "custom")


# Sections that generate checks, the node-id prefix of their items, and their default timeouts.
SECTIONS: dict[str, tuple[CheckKind, float]] = {
    "health_checks": ("health", 5.0),
    "dependency_checks": ("dependency", 5.0),
    "critical_paths": ("critical_path", 30.0),
    "metric_checks": ("metric", 10.0),
}


def default_timeout(kind: str) -> float:
    """A check's timeout when its config entry sets none."""
    return next(seconds for section_kind, seconds in SECTIONS.values() if section_kind == kind)


@dataclass(frozen=True)
class FleetTarget:
    """One target of a fleet: a whole run of its own (verdict, decision, rollback, lease)."""

    name: str
    labels: Mapping[str, str]
    wave: int | None = None  # 1-based, when the fleet has waves


@dataclass(frozen=True)
class FleetWave:
    number: int  # 1-based
    select: str  # the label selector as written
    bake_seconds: float
    targets: tuple[str, ...]  # in config order


@dataclass(frozen=True)
class FleetLedger:
    """Where target runs that do not share a machine (a Job per cluster, a CI matrix) keep the
    fleet's rollback ledger: a ConfigMap in a cluster every run reaches (``fleet.ledger``)."""

    namespace: str
    context: str | None = None
    kubeconfig: str | None = None
    cluster_uid: str | None = None


@dataclass(frozen=True)
class Fleet:
    """A config's ``fleet:`` section, read once: who is expected to report, in which order."""

    targets: tuple[FleetTarget, ...]
    waves: tuple[FleetWave, ...]
    max_rollbacks: int
    digest: str  # config_digest() of the file: a report from another config is refused
    ledger: FleetLedger | None = None  # None: runs share a ledger only under one machine's fleet run

    def target(self, name: str) -> FleetTarget | None:
        return next((target for target in self.targets if target.name == name), None)


def _timeout_of(kind: CheckKind, spec: Mapping[str, Any]) -> float:
    """The check's one deadline. With repeat: N, each of the N runs is owed its whole
    timeout_seconds, after the warm-up delay."""
    timeout = float(spec.get("timeout_seconds", default_timeout(kind)))
    if not spec.get("repeat"):
        return timeout
    return timeout * int(spec["repeat"]) + float(spec.get("initial_delay_seconds", 0))


# Printable ASCII that pytest keeps as is in an id ('%' is encoded, so the encoding is reversible).
_ID_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%\\")


@dataclass(frozen=True)
class Check:
    """One generated check: what to run and how it counts in the verdict."""

    kind: CheckKind  # never "custom": that is a developer's own test
    name: str
    required: bool
    timeout: float
    spec: Mapping[str, Any]
    location: str  # e.g. "health_checks[1]"
    rollback: bool = True  # False: a failure alerts but does not count toward the rollback threshold
    order: int = 0  # position in the config, across sections
    precondition: bool = False  # True: it proves the runner's setup; its failure makes the run inconclusive

    def __repr__(self) -> str:
        # Never the spec: it holds interpolated secrets, and reporters record a parameter's repr
        # (allure-pytest's parameters, pytest -l's locals).
        return f"Check({self.kind}: {self.name!r})"

    @property
    def param_id(self) -> str:
        """The check's pytest parameter id: its name, with every character pytest would escape
        (non-ASCII, control characters, backslashes) percent-encoded as in a URL, so the id is the
        same on every pytest version: ``prêt`` is ``pr%C3%AAt``."""
        return quote(self.name, safe=_ID_SAFE)

    @property
    def node_name(self) -> str:
        """The item's name: the section's test function and the check's id, ``health[readiness]``."""
        return f"{self.kind}[{self.param_id}]"

    @classmethod
    def of(cls, kind: CheckKind, spec: Mapping[str, Any], location: str = "", order: int = 0) -> Check:
        """A check from one config entry, its defaults resolved here and only here."""
        return cls(
            kind=kind,
            name=str(spec.get("name", kind)),
            required=bool(spec.get("required", True)),
            timeout=_timeout_of(kind, spec),
            spec=spec,
            location=location,
            rollback=bool(spec.get("rollback", True)),
            order=order,
            precondition=bool(spec.get("precondition", False)),
        )


# -- outcomes, the verdict and the decision --------------------------------------------------------

CRITICAL = "critical"
WARNING = "warning"
PASSED = "passed"
SKIPPED = "skipped"
NOT_RUN = "not_run"
NOT_SELECTED = "not_selected"
INCONCLUSIVE = "inconclusive"
PARTIAL = "partial"
NO_CHECKS = "no_checks"

# Statuses of an Outcome.
STATUS_PASSED: Final = "passed"
STATUS_FAILED: Final = "failed"
STATUS_NOT_EVALUATED: Final = "not_evaluated"  # the runner could not tell: never the service's fault
STATUS_NOT_RUN: Final = "not_run"  # cut off: -x/--maxfail, fail_fast, the run budget, a crash
STATUS_SKIPPED: Final = "skipped"  # the user's own skip marker or pytest.skip
STATUS_NOT_SELECTED: Final = "not_selected"  # deselected with -k, -m, --deselect, or enabled: false
RAN = (STATUS_PASSED, STATUS_FAILED, STATUS_NOT_EVALUATED)

# Root cause first: a dependency failure explains the health and path failures after it.
KIND_RANK = {"dependency": 0, "health": 1, "critical_path": 2, "metric": 3, "custom": 4}


@dataclass
class Outcome:
    """One check's result as the verdict sees it."""

    nodeid: str
    name: str
    kind: CheckKind
    required: bool
    status: Status
    reason: str = ""
    failure_kind: str = ""
    duration: float = 0.0
    finished_at: float = field(default_factory=time.time)
    facts: dict[str, Any] = field(default_factory=dict)
    details: str = ""
    warning: str = ""  # a passing check that still deserves attention: flaky, failed cleanup
    rollback: bool = True  # False: its failure alerts but does not count toward a rollback
    order: int = 0  # config order (custom tests after, in collection order)
    attributed_to: str = ""  # the failed dependency (or the shared cause) that likely explains this failure
    precondition: bool = False  # it proves the runner's setup (a login, a token), not the deploy
    shared_cause: str = ""  # the cause it shares with an earlier failure, which counts for both

    @property
    def severity(self) -> str:
        if self.status == STATUS_PASSED:
            return WARNING if self.warning else PASSED
        if self.status == STATUS_FAILED:
            return CRITICAL if self.required else WARNING
        if self.status == STATUS_NOT_EVALUATED:
            return WARNING
        return {STATUS_NOT_RUN: NOT_RUN, STATUS_NOT_SELECTED: NOT_SELECTED}.get(self.status, SKIPPED)

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (KIND_RANK.get(self.kind, 3), self.order, self.nodeid)


@dataclass
class Verdict:
    """The outcomes of one run, classified: built by :func:`pytest_smoke.verdict.classify`."""

    outcomes: list[Outcome]  # in config order
    # The critical failures that count toward the rollback threshold, and those one per shared
    # cause (what "multiple failures: roll back at once" compares).
    rollback_failures: list[Outcome] = field(default_factory=list)
    independent_causes: list[Outcome] = field(default_factory=list)
    # Why the results cannot be attributed to one settled revision (a rollout under way as the
    # checks started, a change while they ran): the run is inconclusive, whatever failed.
    unattributed: str = ""

    def _by_severity(self, severity: str) -> list[Outcome]:
        return sorted((o for o in self.outcomes if o.severity == severity), key=lambda o: o.sort_key)

    @property
    def critical(self) -> list[Outcome]:
        """Critical failures, root cause (dependencies) first, then config order."""
        return self._by_severity(CRITICAL)

    @property
    def warnings(self) -> list[Outcome]:
        return self._by_severity(WARNING)

    @property
    def passed(self) -> list[Outcome]:
        return self._by_severity(PASSED)

    @property
    def unverified_required(self) -> list[Outcome]:
        """Required checks that were not evaluated or never ran: the run proves nothing about them."""
        return [o for o in self.outcomes if o.required and o.status in (STATUS_NOT_EVALUATED, STATUS_NOT_RUN)]

    @property
    def unselected_required(self) -> list[Outcome]:
        """Required checks the user left out of this run (deselected, disabled or skipped)."""
        return [o for o in self.outcomes if o.required and o.status in (STATUS_NOT_SELECTED, STATUS_SKIPPED)]

    @property
    def complete(self) -> bool:
        """Every required check selected, run and evaluated."""
        return not self.unverified_required and not self.unselected_required

    @property
    def state(self) -> str:
        if not any(o.status in RAN or o.status == STATUS_NOT_RUN for o in self.outcomes):
            return NO_CHECKS
        if self.attribution_problem:
            return INCONCLUSIVE
        if self.critical:
            return CRITICAL
        if self.unverified_required:
            return INCONCLUSIVE
        if self.unselected_required:
            return PARTIAL
        if self.warnings:
            return WARNING
        return PASSED

    @property
    def failed_preconditions(self) -> list[Outcome]:
        """Required preconditions that failed the way the runner's own setup fails (refused
        credentials, a name that does not resolve, TLS); a 500 or a timeout is the service's."""
        return [
            o
            for o in self.outcomes
            if o.precondition and o.required and o.status == STATUS_FAILED and o.failure_kind in RUNNER_SETUP_FAILURES
        ]

    @property
    def attribution_problem(self) -> str:
        """Why no failure here can be put down to the deploy: the revision was not settled, or a
        check that proves the runner's own setup (a precondition) failed. "" when there is none."""
        if self.unattributed:
            return self.unattributed
        failed = self.failed_preconditions
        if failed:
            first = failed[0]
            return (
                f"precondition {', '.join(o.name for o in failed)} failed ({first.reason}): the runner's own setup "
                "(credentials, network, a test account) is at fault, not the deploy"
            )
        return ""

    @property
    def verified(self) -> bool:
        """A complete green run: the only kind that may mark a revision as known-good."""
        return self.state in (PASSED, WARNING) and self.complete


# How a precondition fails when the runner's setup is at fault, not the service.
RUNNER_SETUP_FAILURES = frozenset(
    {"http_auth", "http_forbidden", "db_auth", "redis_auth", "queue_auth", "csrf_rejected", "dns_failure", "tls_error"}
)


@dataclass
class Decision:
    """What the verdict calls for. ``action`` is one of:

    ``none`` (nothing to do), ``rollback`` (do it now), ``confirm`` (needs ops confirmation),
    ``disabled`` (auto_rollback is off), ``below_threshold``, ``no_rollback_helps`` (every
    critical failure says ``rollback: false``), ``dry_run`` (--smoke-no-rollback), ``vetoed``
    (a pytest_smoke_decision hook said no), ``inconclusive`` (a required check was not evaluated),
    ``not_evaluated`` (interrupted run).
    """

    action: Action
    reason: str
    critical_count: int = 0
    threshold: int = 1

    @property
    def wants_rollback(self) -> bool:
        return self.action in ("rollback", "confirm", "dry_run")


# -- the rollback -----------------------------------------------------------------------------------


@dataclass
class Target:
    deployment: str
    namespace: str = "default"
    container: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    cluster_uid: str | None = None  # the kube-system namespace's uid: checked before the first write
    request_timeout: float = 10.0  # the most one API call may take
    deadline: float | None = None  # time.monotonic() by which every API call must be over (the rollback's)
    setting: str = "rollback_strategy"  # where the config names it, for messages

    @property
    def ref(self) -> str:
        return f"deployment/{self.deployment} -n {self.namespace}"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> "Target | None":
        """A target from a config block (``rollback_strategy``, ``wait_for_rollout``), with
        ``defaults`` filling namespace and credentials the block leaves out."""
        defaults = defaults or {}
        if not settings.get("deployment"):
            return None
        return cls(
            deployment=settings["deployment"],
            namespace=settings.get("namespace") or defaults.get("namespace") or "default",
            container=settings.get("container"),
            context=settings.get("context") or defaults.get("context"),
            kubeconfig=settings.get("kubeconfig") or defaults.get("kubeconfig"),
            cluster_uid=settings.get("cluster_uid") or defaults.get("cluster_uid"),
        )

    def kubectl(self, *args: str) -> str:
        context = f" --context {self.context}" if self.context else ""
        return "kubectl " + " ".join(args) + f" -n {self.namespace}{context}"


@dataclass
class Plan:
    handler: str
    target: Target | None
    manual_command: str
    from_revision: int | None = None
    to_revision: int | None = None
    current_images: dict[str, str] = field(default_factory=dict)
    target_images: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RollbackResult:
    """``status``: completed, unmarked (rolled back, but the rejection mark could not be written),
    still_failing (rolled back, verification failed), failed, superseded (the Deployment changed
    since the checks: stood down), refused (due, but not safe or not this run's to do), dry_run,
    held (due, but a fleet's max_rollbacks was reached: a human decides), awaiting_confirmation,
    not_configured."""

    status: RollbackStatus
    message: str
    plan: Plan | None = None
    attempts: int = 0
    progress: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    confirmation: str = ""
    verification: str = ""
    notes: list[str] = field(default_factory=list)  # marks left on the cluster (rejected revision)


# -- on the pytest report --------------------------------------------------------------------------

PREFIX = "smoke_"
# Facts a check reports for the outputs (endpoint, HTTP status, timing, attempts, summary).
FACT_KEYS = (
    "endpoint",
    "status",
    "elapsed_ms",
    "attempts",
    "redirects",
    "summary",
    "address",  # a dependency's, without credentials: a fleet counts an outage of it once
    # repeat: N (checks/repeat.py): the counts, the share that failed, the spread of the passing runs
    "repetitions",
    "repetitions_failed",
    "failure_ratio",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
)


def encode(key: str, value: Any) -> tuple[str, Any]:
    return (PREFIX + key, value)


def decode(user_properties: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The ``smoke_*`` properties of a report, prefix removed; the last value of a key wins."""
    return {k[len(PREFIX) :]: v for k, v in user_properties if isinstance(k, str) and k.startswith(PREFIX)}


def facts_of(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {key: properties[key] for key in FACT_KEYS if key in properties}


@dataclass
class Timeline:
    checks_started: float = field(default_factory=time.time)
    deployment_completed: float | None = None
    failures_detected: float | None = None
    rollback_started: float | None = None
    rollback_finished: float | None = None


@dataclass
class RunSummary:
    verdict: Verdict
    decision: Decision
    rollback: RollbackResult | None = None
    timeline: Timeline = field(default_factory=Timeline)
    notes: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    exit_status: int = 0
    tested_revision: int | None = None  # the Deployment's revision as the checks started, when it could be read
