"""``previous-image``: back to the pod template of a safe earlier revision, images first.

The target revision is the newest one an earlier green smoke run marked as verified (once any was),
else the previous revision. What is written is that revision's whole pod template: every container,
init container and sidecar, so the result is a template that ran before, never a mix of two
revisions. The manual command is ``kubectl set image`` when only images differ. With
``rollback_strategy.container`` only that container's image changes (the user's choice, for
containers versioned apart).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

from ...model import Plan, Target
from ..kube import (
    REJECTED,
    REJECTED_AT,
    REJECTED_REASON,
    VERIFIED,
    VERIFIED_AT,
    VERIFIED_ONCE,
    Kube,
    revision_of,
    rolled_back_from,
    template_hash_of,
)
from ..marks import without_hash
from . import RollbackRefused, restore_template


def choose_target(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The newest verified earlier revision not rejected since; when no revision of this Deployment
    was ever verified, the newest earlier one not rejected by a smoke run."""
    name = deployment["metadata"]["name"]
    if deployment["spec"].get("paused"):
        raise RollbackRefused(f"deployment/{name} is paused; resume it or roll back by hand")
    current = revision_of(deployment)
    older = [rs for rs in replicasets if 0 < revision_of(rs) < current]
    if not older:
        raise RollbackRefused(f"deployment/{name} has no earlier revision to roll back to (current revision {current})")

    def marks(rs: dict[str, Any]) -> dict[str, str]:
        return rs["metadata"].get("annotations") or {}

    record = {entry["hash"]: entry for entry in rolled_back_from(deployment)}

    def rejected(rs: dict[str, Any]) -> bool:
        return marks(rs).get(REJECTED) == "true" or template_hash_of(rs) in record

    # Once a smoke run has verified any revision (the live one included, and one rejected since:
    # verified-at stays as history), only verified ones are targets: never an untested one.
    ever_verified = bool((deployment["metadata"].get("annotations") or {}).get(VERIFIED_ONCE)) or any(
        marks(rs).get(VERIFIED) == "true" or marks(rs).get(VERIFIED_AT) for rs in replicasets
    )
    candidates = [rs for rs in older if not rejected(rs) and (marks(rs).get(VERIFIED) == "true" or not ever_verified)]
    if candidates:
        return current, max(candidates, key=revision_of)

    def describe(rs: dict[str, Any]) -> str:
        if marks(rs).get(REJECTED) == "true":
            return (
                f"revision {revision_of(rs)} "
                f"(rejected {marks(rs).get(REJECTED_AT, '')}: {marks(rs).get(REJECTED_REASON, '')})"
            )
        if rejected(rs):
            return f"revision {revision_of(rs)} (rolled away from {record[template_hash_of(rs)].get('at', '')})"
        return f"revision {revision_of(rs)} (never verified)"

    listed = ", ".join(describe(rs) for rs in sorted(older, key=revision_of, reverse=True))
    if ever_verified:
        raise RollbackRefused(
            f"deployment/{name} has no earlier revision that a smoke run verified and none rejected since ({listed}); "
            "rolling back would bring an untested or rejected version back"
        )
    raise RollbackRefused(
        f"deployment/{name} has no safe earlier revision: every one was rolled away from by a smoke run "
        f"({listed}); rolling back would bring a rejected version back"
    )


def read_revisions(target: Target | None) -> tuple[dict[str, Any], int, dict[str, Any], str]:
    """The live Deployment, its current revision, the ReplicaSet to roll back to and the
    pod-template hash of the current one (what the rollback moves away from)."""
    assert target is not None
    kube = Kube(target)
    deployment = kube.deployment()
    replicasets = kube.replicasets(deployment)
    current_revision, chosen = choose_target(deployment, replicasets)
    current = [rs for rs in replicasets if revision_of(rs) == current_revision]
    return deployment, current_revision, chosen, template_hash_of(current[0]) if current else ""


def images_of(template: dict[str, Any]) -> dict[str, str]:
    """Every image of a pod template by container name, init containers (and native sidecars) included."""
    spec = template.get("spec") or {}
    return {c["name"]: c.get("image", "") for key in ("initContainers", "containers") for c in spec.get(key) or []}


class PreviousImage:
    name = "previous-image"

    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan:
        assert target is not None
        deployment, current_revision, chosen, current_hash = read_revisions(target)
        live = deployment["spec"]["template"]
        restored = without_hash(chosen["spec"]["template"])
        current, wanted = images_of(live), images_of(restored)
        if target.container:
            if target.container not in current:
                raise RollbackRefused(
                    f"container {target.container!r} is not in deployment/{target.deployment} "
                    f"(containers: {', '.join(current)})"
                )
            restored = _with_image(live, target.container, wanted.get(target.container, current[target.container]))
            wanted = images_of(restored)
        names = [*wanted, *(name for name in current if name not in wanted)]
        changed = {name: wanted.get(name, "(removed)") for name in names if current.get(name) != wanted.get(name)}
        if without_hash(live) == restored:
            raise RollbackRefused(
                f"revision {revision_of(chosen)} runs the same pod template as revision {current_revision}; "
                "nothing to roll back"
            )
        only_images = _with_images(live, wanted) == restored
        manual = (
            target.kubectl(
                "set", "image", f"deployment/{target.deployment}", " ".join(f"{n}={i}" for n, i in changed.items())
            )
            if only_images and set(current) == set(wanted)
            else target.kubectl(
                "rollout", "undo", f"deployment/{target.deployment}", f"--to-revision={revision_of(chosen)}"
            )
        )
        return Plan(
            handler=self.name,
            target=target,
            manual_command=manual,
            from_revision=current_revision,
            to_revision=revision_of(chosen),
            current_images={name: current.get(name, "(none)") for name in changed},
            target_images=changed,
            details={
                "verified": (chosen["metadata"].get("annotations") or {}).get(VERIFIED) == "true",
                "live_template": live,
                "template": restored,
                "from_hash": current_hash,
            },
        )

    def execute(self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]) -> None:
        assert plan.target is not None
        restore_template(Kube(plan.target), plan)
        progress(
            f"patched deployment/{plan.target.deployment}: "
            + ", ".join(f"{n}={i}" for n, i in plan.target_images.items())
        )


def _with_image(template: dict[str, Any], container: str, image: str) -> dict[str, Any]:
    return _with_images(template, {container: image})


def _with_images(template: dict[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    """``template`` with the images of the named containers (init containers too) replaced."""
    result = copy.deepcopy(template)
    for key in ("initContainers", "containers"):
        for container in (result.get("spec") or {}).get(key) or []:
            if container["name"] in images:
                container["image"] = images[container["name"]]
    return result
