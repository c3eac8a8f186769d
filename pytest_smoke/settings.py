"""The config's run-wide settings, typed and built once, defaults from the schema.

A check's own entry stays a typed dict (``specs.py``); these are the sections that steer the run:
``auto_rollback`` and ``rollback_strategy``. Each is built from what the config writes over the
schema's declared defaults (``schema.defaults``), so no default is repeated where it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .schema import defaults


def _known(cls: type, written: Mapping[str, Any], section: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in {**defaults(section), **written}.items() if key in names}


@dataclass(frozen=True)
class AutoRollback:
    """``auto_rollback``: whether, when and how a rollback may happen."""

    enabled: bool
    critical_failure_threshold: int
    requires_ops_confirmation: bool
    rollback_timeout_seconds: float
    confirmation_timeout_seconds: float
    approval_url: str | None = None

    @classmethod
    def of(cls, written: Mapping[str, Any] | None) -> AutoRollback:
        return cls(**_known(cls, written or {}, "auto_rollback"))


@dataclass(frozen=True)
class RollbackStrategy:
    """``rollback_strategy``: what is rolled back, where, and how."""

    type: str
    max_rollback_attempts: int
    namespace: str
    verify_after_rollback: bool
    verify_timeout_seconds: float
    deployment: str | None = None
    container: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    cluster_uid: str | None = None
    notify_channels: tuple[str, ...] = ()
    expect_images: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    # As written: what a plugin's rollback handler reads beyond the built-in keys.
    written: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, written: Mapping[str, Any] | None) -> RollbackStrategy:
        values = _known(cls, written or {}, "rollback_strategy")
        values["notify_channels"] = tuple(values.get("notify_channels") or ())
        values["command"] = tuple(values.get("command") or ())
        values["expect_images"] = dict(values.get("expect_images") or {})
        return cls(**values, written=dict(written or {}))
