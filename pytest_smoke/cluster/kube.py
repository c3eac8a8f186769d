"""The few Kubernetes API calls the rollback and the rollout wait need, through the official client.

Objects are handled as plain JSON dicts (``_preload_content=False``) so the code reads like the
API reference and does not depend on one client version's model classes. The client is imported
only here, only when a rollback (or the verified-revision mark) needs it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..model import Target

REVISION = "deployment.kubernetes.io/revision"
VERIFIED = "pytest-smoke.dev/verified"
VERIFIED_AT = "pytest-smoke.dev/verified-at"
# Set on the ReplicaSet a rollback moved away from: never a rollback target again, unless a later
# complete green run verifies it.
REJECTED = "pytest-smoke.dev/rejected"
REJECTED_AT = "pytest-smoke.dev/rejected-at"
REJECTED_REASON = "pytest-smoke.dev/rejected-reason"
LEASE_ATTEMPTS = 3
MAX_LEASE_SECONDS = 3600.0
CHANGE_CAUSE = "kubernetes.io/change-cause"
POLL_SECONDS = 1.0
# Every (API group, resource, verb) this module calls; example_suites/kubernetes/rbac.yaml grants
# exactly these plus "watch" on deployments (kubectl rollout status needs it), checked by a test.
REQUIRED_PERMISSIONS = (
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("apps", "replicasets", "list"),
    ("apps", "replicasets", "patch"),
)


class KubeError(Exception):
    """A Kubernetes API problem in operator words; ``status`` is the API's HTTP status, if it answered."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def conflict(self) -> bool:
        """409 Conflict or 422 (a failed JSON-patch ``test``): someone else wrote first."""
        return self.status in (409, 422)


class KubeUsageError(KubeError):
    """A target the plugin cannot act on (a StatefulSet, an empty name): the user's input, exit 4."""


LEASE = "pytest-smoke.dev/rollback-lease"


class LeaseHeld(KubeError):
    """Another smoke run is rolling this Deployment back right now."""


class Kube:
    def __init__(self, target: Target):
        from kubernetes import client, config  # deferred: heavy, and only rollbacks need it

        self.target = target
        configuration = client.Configuration()
        try:
            if target.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=target.kubeconfig, context=target.context, client_configuration=configuration
                )
            else:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except Exception as exc:  # the client raises ConfigException, TypeError, OSError...
            if target.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                source = f"kubeconfig {target.kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}"
                source += f", context {target.context}" if target.context else ""
            else:
                source = "the in-cluster service account"
            raise KubeError(f"cannot load Kubernetes credentials from {source}: {exc}") from None
        self.server = configuration.host
        # One attempt per call: urllib3's silent retries would multiply every deadline here.
        configuration.retries = False
        api_client = client.ApiClient(configuration)
        self.apps = client.AppsV1Api(api_client)
        self._api_exception = client.exceptions.ApiException

    def _call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seconds = max(0.5, self.target.request_timeout)
        try:
            response = func(*args, _preload_content=False, _request_timeout=seconds, **kwargs)
        except self._api_exception as exc:
            raise KubeError(f"{what}: {_api_message(exc)}", status=getattr(exc, "status", None)) from None
        except Exception as exc:  # urllib3 connection errors and the like
            if "Timeout" in exc.__class__.__name__ or "timed out" in str(exc):
                raise KubeError(f"{what}: the Kubernetes API at {self.server} did not answer within {seconds:g} s") from None
            raise KubeError(f"{what}: cannot reach the Kubernetes API at {self.server} ({exc.__class__.__name__})") from None
        try:
            return json.loads(response.data)
        except ValueError:  # a proxy's login page, an HTML error page: not the Kubernetes API
            content_type = (getattr(response, "headers", None) or {}).get("Content-Type", "unknown")
            raise KubeError(
                f"{what}: {self.server} answered {content_type}, not JSON: is it the Kubernetes API (or a proxy's login page)?"
            ) from None

    def state(self) -> "DeploymentState":
        """What is deployed now: the revision, the pod template and its images."""
        deployment = self.deployment()
        template = deployment["spec"]["template"]
        cause = (deployment["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "")
        return DeploymentState(revision_of(deployment), json.loads(json.dumps(template)), containers_of(template), str(cause)[:200])

    def deployment(self) -> dict[str, Any]:
        t = self.target
        deployment: dict[str, Any] = self._call(f"read {t.ref}", self.apps.read_namespaced_deployment, t.deployment, t.namespace)
        return deployment

    def replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """The Deployment's own ReplicaSets (by owner reference uid), oldest revision first."""
        labels = deployment["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        items = self._call(
            f"list replicasets of {self.target.ref}",
            self.apps.list_namespaced_replica_set,
            self.target.namespace,
            label_selector=selector,
        )["items"]
        uid = deployment["metadata"]["uid"]
        owned = [rs for rs in items if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])]
        return sorted(owned, key=revision_of)

    def patch_deployment(self, body: Any, content_type: str) -> dict[str, Any]:
        t = self.target
        patched: dict[str, Any] = self._call(
            f"patch {t.ref}", self.apps.patch_namespaced_deployment, t.deployment, t.namespace, body, _content_type=content_type
        )
        return patched

    def acquire_lease(self, holder: str, ttl: float) -> None:
        """Take the rollback lease (an annotation on the Deployment), or raise LeaseHeld.

        The write is a JSON patch guarded by a ``test`` on resourceVersion, so two runs racing for
        the lease cannot both win. A conflict is retried (bounded) after reading again: only a
        lease that another run really holds makes this one stand down.
        """
        for attempt in range(1, LEASE_ATTEMPTS + 1):
            deployment = self.deployment()
            meta = deployment["metadata"]
            current = _read_lease((meta.get("annotations") or {}).get(LEASE))
            now = time.time()
            expires = _lease_expiry(current)
            if current and current.get("holder") != holder and expires > now:
                until = time.strftime("%H:%M:%S", time.localtime(min(expires, now + 86400)))
                raise LeaseHeld(
                    f"another smoke run ({str(current.get('holder'))[:80]}) is rolling back {self.target.ref} (lease until {until})"
                )
            value = json.dumps({"holder": holder, "expires": round(now + ttl, 3)})
            ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}]
            if "annotations" not in meta or meta["annotations"] is None:
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {LEASE: value}})
            else:
                ops.append({"op": "add", "path": "/metadata/annotations/" + _pointer(LEASE), "value": value})
            try:
                self.patch_deployment(ops, "application/json-patch+json")
                return
            except KubeError as exc:
                if not exc.conflict or attempt == LEASE_ATTEMPTS:
                    raise
            time.sleep(0.2 * 2**attempt)  # someone else wrote in between (often the controller): read again

    def release_lease(self, holder: str) -> None:
        deployment = self.deployment()
        current = _read_lease((deployment["metadata"].get("annotations") or {}).get(LEASE))
        if not current or current.get("holder") != holder:
            return
        self.patch_deployment({"metadata": {"annotations": {LEASE: None}}}, "application/merge-patch+json")

    def annotate_replicaset(self, name: str, annotations: Mapping[str, str | None]) -> None:
        """Merge-patch annotations onto a ReplicaSet; None removes one."""
        self._call(
            f"annotate replicaset/{name}",
            self.apps.patch_namespaced_replica_set,
            name,
            self.target.namespace,
            {"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
        )

    def wait_for_rollout(self, timeout: float, progress: Callable[[str], None], describe: Callable[["Progress"], str] | None = None) -> "Progress":
        """Poll like ``kubectl rollout status`` until done, failed or out of time."""
        describe = describe or describe_progress
        end = time.monotonic() + timeout
        last = ""
        while True:
            state = rollout_progress(self.deployment())
            message = describe(state)
            if state.done:
                progress(message)
                return state
            if message != last:
                progress(message)
                last = message
            if time.monotonic() + POLL_SECONDS > end:
                raise KubeError(f"rollout did not finish within {timeout:g} s ({message})")
            time.sleep(POLL_SECONDS)


@dataclass
class Progress:
    observed: bool
    replicas: int
    updated: int
    total: int
    available: int
    completed_at: float | None = None

    @property
    def done(self) -> bool:
        return self.observed and self.updated >= self.replicas and self.total <= self.updated and self.available >= self.updated


def rollout_progress(deployment: dict[str, Any]) -> Progress:
    """kubectl's DeploymentStatusViewer as data; raises KubeError on a dead rollout."""
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
    completed_at = None
    for condition in status.get("conditions") or []:
        if condition.get("type") != "Progressing":
            continue
        if condition.get("reason") == "ProgressDeadlineExceeded":
            raise KubeError(f"deployment/{meta['name']} exceeded its progress deadline")
        if condition.get("reason") == "NewReplicaSetAvailable" and condition.get("lastUpdateTime"):
            completed_at = _parse_time(condition["lastUpdateTime"])
    return Progress(
        observed=status.get("observedGeneration", 0) >= meta.get("generation", 0),
        replicas=spec.get("replicas", 1),
        updated=status.get("updatedReplicas", 0),
        total=status.get("replicas", 0),
        available=status.get("availableReplicas", 0),
        completed_at=completed_at,
    )


ROLLBACK_PHRASES = {
    "unobserved": "waiting for the rollback to be observed",
    "done": "Rollback complete: {updated}/{replicas} pods updated and available",
    "updating": "Rolling back {updated}/{replicas} pods...",
    "terminating": "Rolling back {updated}/{replicas} pods ({old} old pods terminating)...",
    "unavailable": "Rolling back: {available} of {updated} updated pods available...",
}


def describe_progress(p: Progress, phrases: Mapping[str, str] = ROLLBACK_PHRASES, **extra: str) -> str:
    """One line for a rollout's state, like kubectl rollout status, in the caller's words."""
    if not p.observed:
        key = "unobserved"
    elif p.done:
        key = "done"
    elif p.updated < p.replicas:
        key = "updating"
    elif p.total > p.updated:
        key = "terminating"
    else:
        key = "unavailable"
    return phrases[key].format(
        updated=p.updated, replicas=p.replicas, old=p.total - p.updated, available=p.available, **extra
    )


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


@dataclass
class DeploymentState:
    revision: int
    template: dict[str, Any]
    images: dict[str, str]
    change_cause: str = ""

    def describe(self) -> str:
        return f"revision {self.revision} ({', '.join(self.images.values()) or 'no images'})"


def _lease_expiry(lease: dict[str, Any] | None) -> float:
    """A lease's expiry; a malformed one ("soon", null, 1e300) counts as expired, never a crash."""
    try:
        expires = float((lease or {}).get("expires", 0))
    except (TypeError, ValueError, OverflowError):
        return 0.0
    # NaN, or further ahead than any rollback could hold it: malformed, so expired.
    return expires if expires == expires and expires < time.time() + MAX_LEASE_SECONDS else 0.0


def _read_lease(raw: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _parse_time(text: str) -> float | None:
    import calendar

    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def revision_of(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def containers_of(template: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c.get("image", "") for c in template["spec"].get("containers") or []}


def _api_message(exc: Any) -> str:
    try:
        message = json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        message = exc.reason
    return f"{exc.status} {exc.reason}: {message}" if message != exc.reason else f"{exc.status} {exc.reason}"
