"""Wait until the new version is fully rolled out before any check runs.

Without the wait, checks hit a mix of old and new pods. Same rules as ``kubectl rollout status``
(observedGeneration, updated / old / available replicas, ProgressDeadlineExceeded), with its own
deadline. The config's ``wait_for_rollout`` block, or ``--smoke-wait-rollout deployment/NAME``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from ..model import Target
from .kube import Kube, KubeError, KubeUsageError, describe_progress

DEFAULT_TIMEOUT_SECONDS = 300.0


def target_for(data: Mapping[str, Any], cli_value: str | None) -> tuple[Target, float] | None:
    """The Deployment to wait for and the wait's deadline, or None when no wait is asked for."""
    wait = dict(data.get("wait_for_rollout") or {})
    strategy = dict(data.get("rollback_strategy") or {})
    name = wait.get("deployment")
    if cli_value:
        kind, _, name = cli_value.rpartition("/")
        if kind not in ("", "deployment", "deploy", "deployments"):
            raise KubeUsageError(f"--smoke-wait-rollout takes deployment/NAME, got {cli_value!r}")
    target = Target.from_settings({**wait, "deployment": name}, defaults=strategy)
    if target is None:
        return None
    return target, float(wait.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))


WAIT_PHRASES = {
    "unobserved": "waiting for {ref}: the new revision is not observed yet",
    "done": "{ref} is rolled out: {updated}/{replicas} pods updated and available",
    "updating": "waiting for {ref}: {updated}/{replicas} new pods updated",
    "terminating": "waiting for {ref}: {old} old pods terminating",
    "unavailable": "waiting for {ref}: {available} of {updated} updated pods available",
}


def wait(target: Target, timeout: float, progress: Callable[[str], None]) -> float:
    """Block until rolled out; returns when it completed (epoch seconds). Raises KubeError."""
    try:
        describe = lambda state: describe_progress(state, WAIT_PHRASES, ref=target.ref)  # noqa: E731
        state = Kube(target).wait_for_rollout(timeout, progress, describe)
    except KubeError as exc:
        message = str(exc)
        if message.startswith("rollout did not finish"):
            message = f"{target.ref} did not finish rolling out within {timeout:g} s" + message[message.index(" (") :]
        raise KubeError(message) from None
    return state.completed_at or time.time()
