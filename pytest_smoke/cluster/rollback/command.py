"""``command``: run a user-given argv (``helm rollback``, ``kubectl argo rollouts undo`` ...).

Placeholders ``{deployment}``, ``{namespace}``, ``{container}``, ``{previous_image}``,
``{context}`` and ``{kubeconfig}`` are filled in per argument. There is no shell: a templated value
can never become shell syntax. The command runs with ``KUBECONFIG`` set to the target's kubeconfig
(when the config names one), so it reaches the cluster the plugin itself checked; a target with a
``context`` must pass ``{context}`` to the command (a config error otherwise).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from typing import Any, Callable, Mapping

from ...config import COMMAND_PLACEHOLDERS as PLACEHOLDERS
from ...config import COMMAND_TOKEN as TOKEN
from ...model import Plan, Target
from ..kube import kubeconfig_path
from . import RollbackError, RollbackRefused
from .previous_image import PreviousImage

OUTPUT_EXCERPT = 400


def _fields(argv: list[str]) -> set[str]:
    return {match.group(1) for arg in argv for match in TOKEN.finditer(arg) if match.group(1)}


def expand(arg: str, values: Mapping[str, str]) -> str:
    """Fill the known placeholders of one argument, once: a filled-in value is never re-read."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return str(values[match.group(1)]) if match.group(1) in values else token

    return TOKEN.sub(fill, arg)


class Command:
    name = "command"

    def plan(self, target: Target | None, strategy: Mapping[str, Any]) -> Plan:
        argv = list(strategy.get("command") or [])
        if not argv:
            raise RollbackRefused("rollback_strategy.command is not set")
        unknown = _fields(argv) - PLACEHOLDERS
        if unknown:
            raise RollbackRefused(
                f"rollback_strategy.command uses unknown placeholder(s): {', '.join(sorted(unknown))}"
            )
        values = {
            "context": (target.context if target else None) or strategy.get("context") or "",
            "kubeconfig": (target.kubeconfig if target else None) or strategy.get("kubeconfig") or "",
            "deployment": target.deployment if target else "",
            "namespace": target.namespace if target else strategy.get("namespace", "default"),
            "container": (target.container if target else None) or (target.deployment if target else ""),
            "previous_image": "",
        }
        plan = Plan(handler=self.name, target=target, manual_command="")
        if "previous_image" in _fields(argv):
            if target is None:
                raise RollbackRefused("{previous_image} needs rollback_strategy.deployment")
            image_plan = PreviousImage().plan(target, strategy)
            container = target.container or next(iter(image_plan.target_images))
            values["container"] = container
            values["previous_image"] = image_plan.target_images.get(container, "")
            plan.from_revision, plan.to_revision = image_plan.from_revision, image_plan.to_revision
            # Report only what the command changes: one container.
            plan.current_images = {container: image_plan.current_images.get(container, "")}
            plan.target_images = {container: values["previous_image"]}
        plan.details["argv"] = [expand(arg, values) for arg in argv]
        plan.manual_command = " ".join(_quote(a) for a in plan.details["argv"])
        return plan

    def execute(self, plan: Plan, strategy: Mapping[str, Any], timeout: float, progress: Callable[[str], None]) -> None:
        argv = plan.details["argv"]
        # Written only once it exits 0 (carry_out then waits for the rollout); a failure reads the
        # Deployment back and reports what runs, and nothing is marked.
        try:
            completed = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                env=_environment(plan, strategy),
            )
        except FileNotFoundError:
            raise RollbackError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise RollbackError(f"{argv[0]} did not finish within {timeout:g} s") from None
        output = (completed.stdout + completed.stderr).strip()
        if completed.returncode != 0:
            raise RollbackError(f"{argv[0]} exited with {completed.returncode}: {output[-OUTPUT_EXCERPT:]}")
        progress(f"{argv[0]}: {output[-OUTPUT_EXCERPT:] or 'done'}")


def _environment(plan: Plan, strategy: Mapping[str, Any]) -> dict[str, str]:
    """The command's environment: ours, with KUBECONFIG the very file the plugin's own client read
    (kubectl's order: the config's kubeconfig, $KUBECONFIG, ~/.kube/config); without one both use
    the in-cluster service account."""
    environ = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    path = kubeconfig_path(plan.target) if plan.target else strategy.get("kubeconfig") or os.environ.get("KUBECONFIG")
    return {**environ, **({"KUBECONFIG": str(path)} if path else {})}


def _quote(arg: str) -> str:
    return shlex.quote(arg)
