"""``rollout-undo``: restore the whole pod template of the target revision, like
``kubectl rollout undo``. A JSON patch guarded by a ``test`` on the pod template makes sure a
concurrent change (another deploy, another rollback) is never overwritten."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ...model import Plan, Target
from ..kube import Kube, revision_of
from ..marks import without_hash
from . import restore_template
from .previous_image import images_of, read_revisions


class RolloutUndo:
    name = "rollout-undo"

    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan:
        assert target is not None
        deployment, current_revision, chosen, current_hash = read_revisions(target)
        template = without_hash(chosen["spec"]["template"])
        return Plan(
            handler=self.name,
            target=target,
            manual_command=target.kubectl(
                "rollout", "undo", f"deployment/{target.deployment}", f"--to-revision={revision_of(chosen)}"
            ),
            from_revision=current_revision,
            to_revision=revision_of(chosen),
            current_images=images_of(deployment["spec"]["template"]),
            target_images=images_of(template),
            details={"template": template, "live_template": deployment["spec"]["template"], "from_hash": current_hash},
        )

    def execute(self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]) -> None:
        assert plan.target is not None
        restore_template(Kube(plan.target), plan)
        progress(f"restored the pod template of revision {plan.to_revision}")
