"""The report document's shape, for mypy: what :func:`document.build` writes and every renderer
reads (terminal, JSON, Markdown, JUnit, metrics, notifications, the fleet merge).

These types follow ``schema/smoke-report.schema.json``, which validates the document at run time
(tests, and ``python -m pytest_smoke.fleet merge`` for reports read from disk); here a misspelt key
in a renderer is a type error instead of a KeyError in production.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict


class Remediation(TypedDict):
    issue: str
    impact: str
    steps: List[str]


class _CheckRequired(TypedDict):
    nodeid: str
    name: str
    kind: str
    required: bool
    status: str  # passed, failed, not_evaluated, not_run, skipped, not_selected
    severity: str  # critical, warning, passed, not_run, not_selected
    duration_seconds: float
    finished_at: Optional[str]
    reason: str
    failure_kind: str
    details: str
    facts: Dict[str, Any]
    rollback: bool
    attributed_to: str
    shared_cause: str
    precondition: bool
    order: int


class CheckEntry(_CheckRequired, total=False):
    remediation: Remediation  # failures and warnings, and required checks that never ran


class VerdictEntry(TypedDict):
    state: str
    critical: int
    warnings: int
    passed: int
    skipped: int
    verified: bool
    not_evaluated_required: List[str]
    not_selected_required: List[str]
    unattributed: str


class DecisionEntry(TypedDict):
    action: str
    reason: str
    critical_count: int
    threshold: int


class RollbackEntry(TypedDict):
    status: str
    message: str
    attempts: int
    handler: Optional[str]
    manual_command: Optional[str]
    from_revision: Optional[int]
    to_revision: Optional[int]
    current_images: Dict[str, str]
    target_images: Dict[str, str]
    confirmation: str
    verification: str
    progress: List[str]
    started_at: Optional[str]
    finished_at: Optional[str]
    target_verified: bool
    next_steps: List[str]


class DeploymentEntry(TypedDict):
    name: str
    namespace: str
    revision: Optional[int]


class TimelineEvent(TypedDict):
    event: str
    at: str


class FleetEntry(TypedDict):
    target: str
    labels: Dict[str, str]
    wave: Optional[int]
    config_digest: str
    run_id: str


class _DocumentRequired(TypedDict):
    schema_version: str
    generator: str
    config: str
    environment: Optional[str]
    base_url: Optional[str]
    started_at: str
    finished_at: str
    duration_seconds: float
    verdict: VerdictEntry
    decision: DecisionEntry
    rollback: Optional[RollbackEntry]
    manual_rollback_command: str
    deployment: Optional[DeploymentEntry]
    timeline: List[TimelineEvent]
    checks: List[CheckEntry]
    exit_status: int
    rerun_command: str
    notes: List[str]
    notifications: List[Dict[str, Any]]
    fleet: Optional[FleetEntry]


class ReportDocument(_DocumentRequired, total=False):
    monitoring: List[Dict[str, Any]]  # added by publish once the metrics outputs were written
    incidents: List[str]  # the tickets incident channels opened, for the channels told after them
