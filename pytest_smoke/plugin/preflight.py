"""Before the first request: every library, tool and file the run will use is there.

A missing client library found halfway through a run would make a required check fail for a
reason that has nothing to do with the service. Here it is a usage error (exit 4) that names the
config path and the package to install, and nothing has been sent yet.
"""

from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from ..checks import BUILTIN_TYPES
from ..cluster.kube import Kube, KubeError, KubeUsageError
from ..cluster.rollback import BUILTIN_HANDLERS
from ..cluster.rollout_wait import target_for
from ..config import ConfigError, SmokeConfig
from ..model import Target

# Built-in dependency types and the library each needs: (import name, what to install).
TYPE_LIBRARIES = {
    "postgres": ("psycopg", "pip install 'psycopg[binary]'"),
    "redis": ("redis", "pip install redis"),
    "amqp": ("pika", "pip install 'pytest-deploy-smoke[amqp]'"),
    "grpc": ("grpc_health.v1.health_pb2_grpc", "pip install 'pytest-deploy-smoke[grpc]'"),
}
KUBERNETES = ("kubernetes", "pip install kubernetes")
JUNIT = ("junit_xml", "pip install junit-xml")
PROMETHEUS = ("prometheus_client", "pip install 'pytest-deploy-smoke[metrics]'")


@dataclass
class Extensions:
    """What the plugins' hooks provide for this config, resolved once, before the first request."""

    check_types: dict[str, Any] = field(default_factory=dict)  # dependency type -> check function
    rollback_handler: Any = None  # for rollback_strategy.type; None when no strategy is set
    # What the pipeline deployed (rollback_strategy.expect_images, then --smoke-expect-image)
    expected_images: dict[str, str] = field(default_factory=dict)


def check(
    smoke: SmokeConfig,
    *,
    resolve_type: Callable[[str], Any],
    resolve_handler: Callable[[str], Any],
    junit_path: str | None = None,
    wait_rollout: str | None = None,
    metrics_options: dict[str, str] | None = None,
    expect_images: list[str] | None = None,
    dry_run: bool = False,
) -> Extensions:
    """Raise ConfigError for the first thing the run needs and cannot have; return the check types
    and the rollback handler the config names, as the ``pytest_smoke_*`` hooks resolve them."""
    found = Extensions()
    _resolve_check_types(smoke, found.check_types, resolve_type)
    strategy = smoke.section("rollback_strategy")
    handler = smoke.rollback_strategy.type
    if strategy:
        found.rollback_handler = _resolve_rollback_handler(smoke, handler, resolve_handler)
    _check_cluster_access(smoke, strategy, wait_rollout, dry_run)
    found.expected_images = _expected_images(smoke, strategy, expect_images)
    if handler == "command" and strategy.get("command"):
        program = strategy["command"][0]
        if not (os.path.isfile(program) if os.sep in program else shutil.which(program)):
            _fail(smoke, "rollback_strategy.command[0]", f"rollback command {program!r} is not on the PATH")
    if smoke.data.get("ca_bundle") and not os.path.isfile(smoke.data["ca_bundle"]):
        _fail(smoke, "ca_bundle", f"CA bundle {smoke.data['ca_bundle']} does not exist")
    if junit_path:
        _need_library(smoke, "--smoke-junit", "--smoke-junit", JUNIT)
    _check_monitoring(smoke, metrics_options or {})
    return found


def _resolve_check_types(smoke: SmokeConfig, check_types: dict[str, Any], resolve_type: Callable[[str], Any]) -> None:
    """Each dependency type the config uses, resolved into ``check_types``, with its client library."""
    for item in smoke.checks:
        if item.kind != "dependency":
            continue
        kind = item.spec["type"]
        if kind not in check_types:
            func = resolve_type(kind)
            if func is None:
                _fail(
                    smoke,
                    f"{item.location}.type",
                    f"unknown dependency type {kind!r} (built in: {', '.join(BUILTIN_TYPES)}; "
                    "a plugin adds one by implementing pytest_smoke_check_type)",
                )
            check_types[kind] = func
        if kind in TYPE_LIBRARIES:
            _need_library(smoke, f"{item.location}.type", f"dependency type {kind!r}", TYPE_LIBRARIES[kind])


def _resolve_rollback_handler(smoke: SmokeConfig, handler: str, resolve_handler: Callable[[str], Any]) -> Any:
    found = resolve_handler(handler)
    if found is None:
        _fail(
            smoke,
            "rollback_strategy.type",
            f"unknown rollback handler {handler!r} (built in: {', '.join(BUILTIN_HANDLERS)}; "
            "a plugin adds one by implementing pytest_smoke_rollback_handler)",
        )
    return found


def _check_cluster_access(
    smoke: SmokeConfig, strategy: dict[str, Any], wait_rollout: str | None, dry_run: bool
) -> None:
    """What the rollback and the rollout wait need to reach the Kubernetes API."""
    wait = smoke.section("wait_for_rollout")
    if strategy.get("deployment"):
        # The rollback and the verified-revision mark both talk to the Kubernetes API.
        _need_library(smoke, "rollback_strategy.deployment", "a Kubernetes rollback", KUBERNETES)
    if wait_rollout:
        try:
            target_for(smoke.data, wait_rollout)
        except KubeUsageError as exc:
            _fail(smoke, "--smoke-wait-rollout", str(exc).removeprefix("--smoke-wait-rollout "))
    if wait.get("deployment") or wait_rollout:
        where = "wait_for_rollout" if wait.get("deployment") else "--smoke-wait-rollout"
        _need_library(smoke, where, "waiting for the rollout", KUBERNETES)
    for section, settings in (("rollback_strategy", strategy), ("wait_for_rollout", wait)):
        kubeconfig = settings.get("kubeconfig")
        if kubeconfig and not os.path.isfile(os.path.expanduser(kubeconfig)):
            _fail(smoke, f"{section}.kubeconfig", f"kubeconfig file {kubeconfig} does not exist")
    if strategy.get("deployment") and smoke.section("auto_rollback").get("enabled") and not dry_run:
        # Only a rollback that can happen needs the cluster up front; the tested revision and the
        # verified mark are notes when it cannot be reached.
        _check_kube_credentials(smoke, strategy)


def _expected_images(smoke: SmokeConfig, strategy: dict[str, Any], expect_images: list[str] | None) -> dict[str, str]:
    """What the pipeline deployed: rollback_strategy.expect_images, then --smoke-expect-image."""
    expected = dict(strategy.get("expect_images") or {})
    for value in expect_images or []:
        container, _, image = value.partition("=")
        if not container.strip() or not image.strip():
            _fail(smoke, "--smoke-expect-image", f"takes CONTAINER=IMAGE, got {value!r}")
        expected[container.strip()] = image.strip()
    if expected and not strategy.get("deployment"):
        where = "--smoke-expect-image" if expect_images else "rollback_strategy.expect_images"
        _fail(smoke, where, "needs rollback_strategy.deployment: the Deployment whose images are compared")
    return expected


def _check_kube_credentials(smoke: SmokeConfig, strategy: dict[str, Any]) -> None:
    """The kubeconfig (or the service account) loads, with the context named: no request is sent."""
    target = Target.from_settings(strategy)
    if target is None:
        return
    try:
        Kube(target)
    except KubeError as exc:
        where = "rollback_strategy.context" if strategy.get("context") else "rollback_strategy.kubeconfig"
        _fail(smoke, where, str(exc))


def _check_monitoring(smoke: SmokeConfig, options: dict[str, str]) -> None:
    """The metrics outputs: the client library, and a Pushgateway URL that can be sent to."""
    monitoring = smoke.section("monitoring")
    wanted = [(option, value) for option, value in options.items()]
    if (monitoring.get("pushgateway") or {}).get("url"):
        wanted.append(("monitoring.pushgateway.url", monitoring["pushgateway"]["url"]))
    if monitoring.get("metrics_file"):
        wanted.append(("monitoring.metrics_file", monitoring["metrics_file"]))
    for where, value in wanted:
        _need_library(smoke, where, "metrics", PROMETHEUS)
        if where.endswith("pushgateway") or where.endswith("pushgateway.url"):
            try:
                parts = urlsplit(value)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                credentials = bool(parts.username or parts.password)
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError:
                ok, credentials = False, "@" in value
            if credentials:  # prometheus-client would not send them, and an error would show them
                _fail(
                    smoke,
                    where,
                    "carries credentials (user:password@): put them in monitoring.pushgateway.headers "
                    "(Authorization: Basic or Bearer ${VAR}) instead",
                )
            if not ok:
                _fail(smoke, where, "not an http(s) URL with a host")


def _need_library(smoke: SmokeConfig, location: str, what: str, library: tuple[str, str]) -> None:
    module, install = library
    try:
        importlib.import_module(module)
    except ImportError as exc:
        # ImportError too: a package that is there but broken (psycopg without libpq) is as missing.
        detail = f" ({exc})" if getattr(exc, "name", None) != module else ""
        _fail(
            smoke, location, f"{what} needs the Python package {module!r}, which cannot be imported{detail}: {install}"
        )


def _fail(smoke: SmokeConfig, location: str, message: str) -> None:
    raise ConfigError(smoke.path, message, location=location)
