"""``previous-image``: ``kubectl set image`` back to the images of a safe earlier revision.

The target revision is the newest one an earlier green smoke run marked as verified, else the
previous revision. Only images change: a strategic merge patch by container name.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ...model import Plan, Target
from ..kube import REJECTED, REJECTED_AT, REJECTED_REASON, VERIFIED, Kube, containers_of, revision_of
from . import RollbackRefused, change_cause_op, guarded_patch


def choose_target(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The newest verified earlier revision not rejected since; when none was ever verified, the
    newest earlier one not rejected by a smoke run."""
    name = deployment["metadata"]["name"]
    if deployment["spec"].get("paused"):
        raise RollbackRefused(f"deployment/{name} is paused; resume it or roll back by hand")
    current = revision_of(deployment)
    older = [rs for rs in replicasets if 0 < revision_of(rs) < current]
    if not older:
        raise RollbackRefused(f"deployment/{name} has no earlier revision to roll back to (current revision {current})")

    def marks(rs: dict[str, Any]) -> dict[str, str]:
        return rs["metadata"].get("annotations") or {}

    # Once a smoke run has verified any revision, only verified ones are targets: never an older,
    # untested one. A rejection (made later) always wins over a verification.
    ever_verified = [rs for rs in older if marks(rs).get(VERIFIED) == "true"]
    candidates = [rs for rs in (ever_verified or older) if marks(rs).get(REJECTED) != "true"]
    if not candidates:
        rejected = ", ".join(
            f"revision {revision_of(rs)} (rejected {marks(rs).get(REJECTED_AT, '')}: {marks(rs).get(REJECTED_REASON, '')})"
            for rs in sorted(older, key=revision_of, reverse=True)
        )
        raise RollbackRefused(
            f"deployment/{name} has no safe earlier revision: every one was rolled away from by a smoke run "
            f"({rejected}); rolling back would bring a rejected version back"
        )
    return current, max(candidates, key=revision_of)


def read_revisions(target: Target | None) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """The live Deployment, its current revision and the ReplicaSet to roll back to."""
    assert target is not None
    kube = Kube(target)
    deployment = kube.deployment()
    current_revision, chosen = choose_target(deployment, kube.replicasets(deployment))
    return deployment, current_revision, chosen


class PreviousImage:
    name = "previous-image"

    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan:
        assert target is not None
        deployment, current_revision, chosen = read_revisions(target)
        current = containers_of(deployment["spec"]["template"])
        wanted = containers_of(chosen["spec"]["template"])
        if target.container:
            if target.container not in current:
                raise RollbackRefused(
                    f"container {target.container!r} is not in deployment/{target.deployment} (containers: {', '.join(current)})"
                )
            wanted = {target.container: wanted.get(target.container, current[target.container])}
        changed = {name: image for name, image in wanted.items() if name in current and current[name] != image}
        if not changed:
            raise RollbackRefused(
                f"revision {revision_of(chosen)} runs the same images as revision {current_revision}; nothing to roll back"
            )
        settings = " ".join(f"{name}={image}" for name, image in changed.items())
        return Plan(
            handler=self.name,
            target=target,
            manual_command=target.kubectl("set", "image", f"deployment/{target.deployment}", settings),
            from_revision=current_revision,
            to_revision=revision_of(chosen),
            current_images={name: current[name] for name in changed},
            target_images=changed,
            details={
                "verified": (chosen["metadata"].get("annotations") or {}).get(VERIFIED) == "true",
                "live_template": deployment["spec"]["template"],
            },
        )

    def execute(self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]) -> None:
        assert plan.target is not None
        kube = Kube(plan.target)
        containers = plan.details["live_template"]["spec"]["containers"]
        ops = [
            {"op": "replace", "path": f"/spec/template/spec/containers/{index}/image", "value": plan.target_images[c["name"]]}
            for index, c in enumerate(containers)
            if c["name"] in plan.target_images
        ]
        ops.append(change_cause_op(kube, plan))
        guarded_patch(kube, plan, ops)
        progress(f"patched deployment/{plan.target.deployment}: " + ", ".join(f"{n}={i}" for n, i in plan.target_images.items()))
        kube.wait_for_rollout(timeout, progress)


