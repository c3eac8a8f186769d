"""The marks a smoke run leaves on ReplicaSets: ``verified`` (a complete green run of this revision)
and ``rejected`` (a rollback moved away from it). A later rollback chooses its target by them.

Every mark is one JSON patch guarded by a ``test`` on the ReplicaSet's resourceVersion, written only
after the Deployment was read again: a mark never lands on a revision that changed meanwhile, and a
conflict is read again and retried (bounded). A revision is never both: the later fact replaces the
earlier one in the same write. ``verified-at`` stays as history, so that "a smoke run has verified
this Deployment before" survives a rejection (see ``previous_image.choose_target``).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any, Callable

from .kube import (
    REJECTED,
    REJECTED_AT,
    REJECTED_REASON,
    ROLLED_BACK_FROM,
    VERIFIED,
    VERIFIED_AT,
    VERIFIED_ONCE,
    DeploymentState,
    Kube,
    KubeError,
    _annotation_ops,
    _pointer,
    revision_of,
    rolled_back_from,
    template_hash_of,
    unsettled_reason,
)

MARK_ATTEMPTS = 4
HASH_LABEL = "pod-template-hash"


class MarkNotWritten(KubeError):
    """The mark could not be written (conflicts every time, an API error, no ReplicaSet)."""


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    """A pod template as the Deployment holds it: a ReplicaSet's copy carries pod-template-hash."""
    clean = copy.deepcopy(template)
    (clean.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return clean


def same_template(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return without_hash(a) == without_hash(b)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write(
    kube: Kube,
    find: Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any] | str],
    marks: dict[str, str | None],
) -> dict[str, Any]:
    """Read, choose the ReplicaSet (``find`` returns it, or why not), write guarded; retry conflicts."""
    for attempt in range(1, MARK_ATTEMPTS + 1):
        # ReplicaSets first, then the Deployment: a change to the Deployment between the two reads
        # is seen by ``find``; a mark written meanwhile by another run fails the guard below.
        replicasets = kube.replicasets(kube.deployment())
        deployment = kube.deployment()
        found = find(deployment, replicasets)
        if isinstance(found, str):
            raise MarkNotWritten(found)
        try:
            kube.patch_replicaset(found, marks)
            return found
        except KubeError as exc:
            if not exc.conflict or attempt == MARK_ATTEMPTS:
                raise MarkNotWritten(str(exc), status=exc.status) from None
        time.sleep(0.1 * attempt)
    raise MarkNotWritten("conflicts on every attempt")  # pragma: no cover - the loop returns or raises


def reject(kube: Kube, tested: DeploymentState, reason: str) -> str:
    """Mark the tested revision rejected (and no longer verified). Raises MarkNotWritten."""

    def find(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> dict[str, Any] | str:
        for replicaset in replicasets:
            if revision_of(replicaset) == tested.revision and same_template(
                replicaset["spec"]["template"], tested.template
            ):
                return replicaset
        return f"no ReplicaSet of {kube.target.ref} carries revision {tested.revision} with the tested template"

    marks: dict[str, str | None] = {
        REJECTED: "true",
        REJECTED_AT: _stamp(),
        REJECTED_REASON: (reason or "smoke checks failed")[:250],
        VERIFIED: None,
    }
    _write(kube, find, marks)
    return (
        f"marked revision {tested.revision} as rejected: "
        "it is never a rollback target again unless a green run verifies it"
    )


def verify(kube: Kube, tested: DeploymentState) -> str:
    """Mark the tested revision verified (lifting an earlier rejection), only while the Deployment
    still runs it, settled. Raises MarkNotWritten with the reason it was not written."""
    ref = kube.target.ref

    def find(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> dict[str, Any] | str:
        if deployment["spec"]["template"] != tested.template or revision_of(deployment) != tested.revision:
            return f"{ref} changed while the checks ran"
        unsettled = unsettled_reason(deployment, replicasets)
        if unsettled:
            return unsettled
        for replicaset in replicasets:
            if revision_of(replicaset) == tested.revision and same_template(
                replicaset["spec"]["template"], tested.template
            ):
                return replicaset
        return f"no ReplicaSet carries revision {tested.revision}"

    marks: dict[str, str | None] = {
        VERIFIED: "true",
        VERIFIED_AT: _stamp(),
        REJECTED: None,
        REJECTED_AT: None,
        REJECTED_REASON: None,
    }
    replicaset = _write(kube, find, marks)
    _lift_record(kube, tested, template_hash_of(replicaset))
    return f"marked revision {tested.revision} of {ref} as verified"


def _lift_record(kube: Kube, tested: DeploymentState, template_hash: str) -> None:
    """On the Deployment, in one write guarded by the tested template and the values read: the
    verified template leaves the rolled-back-from record, and ``verified-once`` is set."""
    for attempt in range(1, MARK_ATTEMPTS + 1):
        deployment = kube.deployment()
        annotations = deployment["metadata"].get("annotations") or {}
        record = rolled_back_from(deployment)
        kept = [e for e in record if e["hash"] != template_hash]
        ops: list[dict[str, Any]] = [{"op": "test", "path": "/spec/template", "value": tested.template}]
        if len(kept) != len(record):
            path = "/metadata/annotations/" + _pointer(ROLLED_BACK_FROM)
            ops += [
                {"op": "test", "path": path, "value": annotations[ROLLED_BACK_FROM]},
                {"op": "replace", "path": path, "value": json.dumps(kept)},
            ]
        if VERIFIED_ONCE not in annotations:
            ops += _annotation_ops(deployment["metadata"], {VERIFIED_ONCE: _stamp()})
        if len(ops) == 1:
            return
        try:
            kube.patch_deployment(ops, "application/json-patch+json")
            return
        except KubeError as exc:
            if not exc.conflict or attempt == MARK_ATTEMPTS:
                raise MarkNotWritten(f"verified, but the Deployment's own record could not be updated: {exc}") from None
        time.sleep(0.1 * attempt)
