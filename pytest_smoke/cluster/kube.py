"""The few Kubernetes API calls the rollback and the rollout wait need, through the official client.

Objects are handled as plain JSON dicts (``_preload_content=False``) so the code reads like the
API reference and does not depend on one client version's model classes. The client is imported
only here, only when a rollback (or the verified-revision mark) needs it.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlencode

import urllib3

from ..checks.base import CheckTimeout, Deadline, run_with_deadline
from ..model import Target

REVISION = "deployment.kubernetes.io/revision"
VERIFIED = "pytest-smoke.dev/verified"
VERIFIED_AT = "pytest-smoke.dev/verified-at"
# Set on the ReplicaSet a rollback moved away from: never a rollback target again, unless a later
# complete green run verifies it.
REJECTED = "pytest-smoke.dev/rejected"
REJECTED_AT = "pytest-smoke.dev/rejected-at"
REJECTED_REASON = "pytest-smoke.dev/rejected-reason"
# On the Deployment, written in the same guarded patch as the rollback itself: the pod-template
# hashes rolled away from (newest last). A rejection that holds even when the ReplicaSet's own mark
# could not be written, so a re-run can never roll forward onto it.
ROLLED_BACK_FROM = "pytest-smoke.dev/rolled-back-from"
ROLLED_BACK_FROM_KEPT = 10
# On the Deployment: a smoke run has verified one of its revisions. Kept there because Kubernetes
# prunes old ReplicaSets (revisionHistoryLimit), and with them their own verified marks.
VERIFIED_ONCE = "pytest-smoke.dev/verified-once"
HASH_LABEL = "pod-template-hash"
LEASE_ATTEMPTS = 3
MAX_LEASE_SECONDS = 3600.0
CHANGE_CAUSE = "kubernetes.io/change-cause"
POLL_SECONDS = 1.0
READ_BACK_SECONDS = 10.0  # after an ambiguous answer: time to read the state back (and to wait on our write)
# The most any one API answer may hold. A Deployment's ReplicaSet list is kilobytes; a proxy that
# never stops sending must not take the runner's memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
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

    def __init__(self, message: str, status: int | None = None, timeout: bool = False):
        super().__init__(message)
        self.status = status
        self.timeout = timeout  # no answer in time: a write may have been applied all the same

    @property
    def conflict(self) -> bool:
        """409 Conflict or 422 (a failed JSON-patch ``test``): someone else wrote first."""
        return self.status in (409, 422)


class KubeCredentialsError(KubeError):
    """The kubeconfig, its context or the service account cannot be loaded: a config error, exit 4."""


class KubeUsageError(KubeError):
    """A target the plugin cannot act on (a StatefulSet, an empty name): the user's input, exit 4."""


LEASE = "pytest-smoke.dev/rollback-lease"
MANAGED_BY = {"app.kubernetes.io/managed-by": "pytest-deploy-smoke"}


KUBE_SYSTEM = "/api/v1/namespaces/kube-system"


class LeaseHeld(KubeError):
    """Another smoke run is rolling this Deployment back right now."""


class WrongCluster(KubeUsageError):
    """The credentials reach another cluster than the target's ``cluster_uid``: nothing is read
    from it as the target's state, nothing is written to it."""


def kubeconfig_path(target: Target) -> str | None:
    """The kubeconfig file the target's credentials come from, in kubectl's and helm's order: the
    config's ``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config`` if it exists; None: the
    in-cluster service account. A ``command`` rollback gets the same file, so it reaches the cluster
    this client checked. KUBECONFIG is read now, not when the client library was imported (it
    keeps the value it saw then): a conftest or a wrapper may set it after the import."""
    if target.kubeconfig:
        return target.kubeconfig
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    default = os.path.expanduser("~/.kube/config")
    return default if os.path.isfile(default) else None


class Kube:
    def __init__(self, target: Target):
        # Lazy (~250 ms): only runs that talk to a cluster load it, and preflight names it when missing.
        from kubernetes import client, config

        self.target = target
        configuration = client.Configuration()

        source = kubeconfig_path(target)

        def load() -> None:
            if source is not None or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=source, context=target.context, client_configuration=configuration
                )
            else:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]

        try:
            # An exec credential plugin (aws, gke-gcloud-auth-plugin) runs here: within the same bound.
            seconds = self._seconds("load Kubernetes credentials")
            run_with_deadline(load, Deadline(seconds), what="loading Kubernetes credentials")
        except CheckTimeout:
            raise KubeCredentialsError(
                f"loading Kubernetes credentials did not finish within {_seconds_text(seconds)} s "
                "(an exec credential plugin?)"
            ) from None
        except KubeError:
            raise
        except Exception as exc:  # the client raises ConfigException, TypeError, OSError...
            if source is not None or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                where = f"kubeconfig {source or '~/.kube/config'}"
                where += f", context {target.context}" if target.context else ""
            else:
                where = "the in-cluster service account"
            raise KubeCredentialsError(f"cannot load Kubernetes credentials from {where}: {exc}") from None
        self.server = configuration.host
        self._configuration = configuration
        # The client's connection pool carries its TLS settings, client certificates and proxy; the
        # exchange itself is ours, so that every answer is read within one deadline and a byte cap
        # (the generated API reads an error answer whole, at any size and speed).
        self._pool = client.ApiClient(configuration).rest_client.pool_manager
        self._cluster_checked = not target.cluster_uid

    def allow_read_back(self) -> None:
        allow_read_back(self.target)

    # -- one exchange ------------------------------------------------------------------------------

    def _seconds(self, what: str) -> float:
        """The most this call may take: the per-call bound, within the rollback's deadline."""
        seconds = max(0.5, self.target.request_timeout)
        if self.target.deadline is not None:
            left = self.target.deadline - time.monotonic()
            if left <= 0.05:
                raise KubeError(f"{what}: no time left within rollback_timeout_seconds")
            seconds = min(seconds, left)
        return seconds

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        if not self._cluster_checked and path != KUBE_SYSTEM:
            self._check_cluster(what)
        seconds = self._seconds(what)
        url = self.server.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "pytest-deploy-smoke"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = json.dumps(body).encode()
        deadline = Deadline(seconds)

        def exchange() -> tuple[int, str, str, bytes]:
            # Inside the deadline: refreshing an expiring token may run an exec credential plugin.
            settings: Mapping[str, Any] = self._configuration.auth_settings() or {}
            for setting in settings.values():
                if setting.get("in") == "header" and setting.get("value"):
                    headers[setting["key"]] = setting["value"]
            response = self._pool.request(
                method,
                url,
                body=data,
                headers=headers,
                preload_content=False,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(connect=seconds, read=seconds),
            )
            try:
                return (
                    response.status,
                    response.reason or "",
                    response.headers.get("Content-Type", ""),
                    _read_capped(response, deadline, what),
                )
            finally:
                response.release_conn()

        try:
            status, reason, received_type, raw = run_with_deadline(
                exchange, deadline, what=what, abort=self._pool.clear
            )
        except (CheckTimeout, TimeoutError):
            raise KubeError(
                f"{what}: the Kubernetes API at {self.server} did not answer within {_seconds_text(seconds)} s",
                timeout=True,
            ) from None
        except KubeError:
            raise
        except Exception as exc:  # urllib3 connection errors and the like
            if "Timeout" in exc.__class__.__name__ or "timed out" in str(exc):
                raise KubeError(
                    f"{what}: the Kubernetes API at {self.server} did not answer within {_seconds_text(seconds)} s",
                    timeout=True,
                ) from None
            raise KubeError(
                f"{what}: cannot reach the Kubernetes API at {self.server} ({exc.__class__.__name__})"
            ) from None
        if not 200 <= status <= 299:
            raise KubeError(f"{what}: {_api_message(status, reason, raw)}", status=status)
        try:
            return json.loads(raw)
        except ValueError:  # a proxy's login page, an HTML error page: not the Kubernetes API
            raise KubeError(
                f"{what}: {self.server} answered {received_type or 'unknown'}, not JSON: "
                "is it the Kubernetes API (or a proxy's login page)?"
            ) from None

    def _check_cluster(self, what: str) -> None:
        """Before the first call (so before the first write, a dry run included): the credentials
        must reach the cluster the target names by its kube-system uid. A wrong context or a reused
        kubeconfig is refused: its Deployment is not the target's, its revision attributes nothing."""
        found = self._call(f"{what}: read namespace kube-system", "GET", KUBE_SYSTEM)
        uid = str((found.get("metadata") or {}).get("uid") or "")
        if uid.lower() != str(self.target.cluster_uid).lower():
            raise WrongCluster(
                f"{what}: refused: {self.server} is the cluster whose kube-system uid is {uid or 'unknown'},"
                f" not {self.target.setting}.cluster_uid {self.target.cluster_uid} (a wrong context or kubeconfig?):"
                " nothing is read from it or written to it"
            )
        self._cluster_checked = True

    # -- reads and writes --------------------------------------------------------------------------

    def _path(self, resource: str, name: str | None = None) -> str:
        path = f"/apis/apps/v1/namespaces/{quote(self.target.namespace, safe='')}/{resource}"
        return path + (f"/{quote(name, safe='')}" if name else "")

    def state(self) -> "DeploymentState":
        """What is deployed now: the revision, the pod template and its images, and whether it is settled."""
        deployment = self.deployment()
        template = deployment["spec"]["template"]
        cause = (deployment["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "")
        unsettled = unsettled_reason(deployment, self.replicasets(deployment))
        return DeploymentState(
            revision_of(deployment),
            json.loads(json.dumps(template)),
            containers_of(template),
            str(cause)[:200],
            unsettled,
        )

    def deployment(self) -> dict[str, Any]:
        t = self.target
        deployment: dict[str, Any] = self._call(f"read {t.ref}", "GET", self._path("deployments", t.deployment))
        if not isinstance(deployment, dict) or not isinstance(deployment.get("spec"), dict):
            raise KubeError(f"read {t.ref}: the answer is not a Deployment")
        return deployment

    def replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """The Deployment's own ReplicaSets (by owner reference uid), oldest revision first."""
        labels = deployment["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        answer = self._call(
            f"list replicasets of {self.target.ref}",
            "GET",
            self._path("replicasets"),
            query={"labelSelector": selector},
        )
        items = answer.get("items") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise KubeError(f"list replicasets of {self.target.ref}: the answer is not a ReplicaSet list")
        uid = deployment["metadata"]["uid"]
        owned = [rs for rs in items if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])]
        return sorted(owned, key=revision_of)

    def patch_deployment(self, body: Any, content_type: str) -> dict[str, Any]:
        t = self.target
        patched: dict[str, Any] = self._call(
            f"patch {t.ref}", "PATCH", self._path("deployments", t.deployment), body, content_type
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
                    f"another smoke run ({str(current.get('holder'))[:80]}) holds the rollback lease "
                    f"on {self.target.ref} (until {until})"
                )
            value = json.dumps({"holder": holder, "expires": round(now + ttl, 3)})
            ops = [_test_version(meta), *_annotation_ops(meta, {LEASE: value})]
            try:
                self.patch_deployment(ops, "application/json-patch+json")
                return
            except KubeError as exc:
                if not exc.conflict and self._holds_lease(holder):
                    return  # applied, though its answer was lost (a timeout, a gateway error)
                if not exc.conflict or attempt == LEASE_ATTEMPTS:
                    raise
            time.sleep(0.2 * 2**attempt)  # someone else wrote in between (often the controller): read again

    def _holds_lease(self, holder: str) -> bool:
        self.allow_read_back()
        try:
            current = _read_lease((self.deployment()["metadata"].get("annotations") or {}).get(LEASE))
        except KubeError:
            return False
        return bool(current) and current.get("holder") == holder  # type: ignore[union-attr]

    def release_lease(self, holder: str) -> None:
        for attempt in range(1, LEASE_ATTEMPTS + 1):
            deployment = self.deployment()
            meta = deployment["metadata"]
            current = _read_lease((meta.get("annotations") or {}).get(LEASE))
            if not current or current.get("holder") != holder:
                return
            # Guarded: a lease another run took after ours expired is never removed by us.
            try:
                self.patch_deployment(
                    [_test_version(meta), *_annotation_ops(meta, {LEASE: None})], "application/json-patch+json"
                )
                return
            except KubeError as exc:
                if not exc.conflict or attempt == LEASE_ATTEMPTS:
                    raise
            time.sleep(0.1 * attempt)  # the controller wrote status meanwhile: read again

    # -- a ConfigMap (the fleet's shared rollback ledger) -----------------------------------------

    def _config_map_path(self, name: str | None = None) -> str:
        path = f"/api/v1/namespaces/{quote(self.target.namespace, safe='')}/configmaps"
        return path + (f"/{quote(name, safe='')}" if name else "")

    def config_map(self, name: str) -> dict[str, Any] | None:
        """The ConfigMap, or None when there is none."""
        try:
            found: dict[str, Any] = self._call(f"read configmap {name}", "GET", self._config_map_path(name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def create_config_map(self, name: str, data: Mapping[str, str], dry_run: bool = False) -> None:
        """Create it; a KubeError with status 409 when it exists (another run created it first)."""
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": MANAGED_BY}}
        body["data"] = dict(data)
        query = {"dryRun": "All"} if dry_run else None
        self._call(f"create configmap {name}", "POST", self._config_map_path(), body, query=query)

    def replace_config_map(self, found: Mapping[str, Any], data: Mapping[str, str], dry_run: bool = False) -> None:
        """Replace ``found`` with ``data``, guarded by its resourceVersion: a KubeError with status
        409 when another run wrote it since it was read."""
        meta = found["metadata"]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta), "data": dict(data)}
        query = {"dryRun": "All"} if dry_run else None
        path = self._config_map_path(str(meta["name"]))
        self._call(f"replace configmap {meta['name']}", "PUT", path, body, query=query)

    def patch_replicaset(self, replicaset: dict[str, Any], annotations: Mapping[str, str | None]) -> None:
        """Set (or, with None, remove) annotations on a ReplicaSet, only if it is still exactly what
        was read: a JSON patch with a ``test`` on resourceVersion. A conflict raises KubeError."""
        meta = replicaset["metadata"]
        ops = [_test_version(meta), *_annotation_ops(meta, annotations)]
        self._call(
            f"annotate replicaset/{meta['name']}",
            "PATCH",
            self._path("replicasets", meta["name"]),
            ops,
            "application/json-patch+json",
        )

    def wait_for_rollout(
        self, timeout: float, progress: Callable[[str], None], describe: Callable[["Progress"], str] | None = None
    ) -> "Progress":
        """Poll like ``kubectl rollout status`` until done, failed or out of time."""
        describe = describe or describe_progress
        end = time.monotonic() + timeout
        if self.target.deadline is not None:
            end = min(end, self.target.deadline)
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
                raise KubeError(f"rollout did not finish within {_seconds_text(timeout)} s ({message})")
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
        return (
            self.observed
            and self.updated >= self.replicas
            and self.total <= self.updated
            and self.available >= self.updated
        )


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
    unsettled: str = ""  # why the answers cannot come from this revision alone ("" once it is settled)

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
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def allow_read_back(target: Target) -> None:
    """After an ambiguous answer (a timeout, a lost response), give reading back its own time, even
    past the rollback's deadline: what happened must be known, not guessed."""
    if target.deadline is not None:
        target.deadline = max(target.deadline, time.monotonic() + READ_BACK_SECONDS)


def rolled_back_from(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The Deployment's record of templates a smoke run rolled away from; malformed reads as empty."""
    raw = (deployment["metadata"].get("annotations") or {}).get(ROLLED_BACK_FROM)
    try:
        entries = json.loads(raw) if raw else []
    except (TypeError, ValueError):
        return []
    return (
        [e for e in entries if isinstance(e, dict) and isinstance(e.get("hash"), str)]
        if isinstance(entries, list)
        else []
    )


def template_hash_of(replicaset: dict[str, Any]) -> str:
    return str((replicaset["metadata"].get("labels") or {}).get(HASH_LABEL, ""))


def revision_of(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def containers_of(template: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c.get("image", "") for c in template["spec"].get("containers") or []}


def image_mismatch(state: DeploymentState, expected: Mapping[str, str], ref: str) -> str:
    """Why the Deployment does not run what the pipeline said it deployed, or ""."""
    wrong = {name: image for name, image in expected.items() if state.images.get(name) != image}
    if not wrong:
        return ""
    runs = ", ".join(f"{name}={state.images.get(name, '(no such container)')}" for name in wrong)
    wanted = ", ".join(f"{name}={image}" for name, image in wrong.items())
    return f"{ref} runs {runs}, not what the pipeline deployed ({wanted})"


def check_rollback_access(kube: Kube, state: DeploymentState) -> None:
    """Before the first check: the named container exists, and the credentials may patch the
    Deployment and its ReplicaSets (server-side dry runs: nothing is changed). Raises KubeError
    (KubeUsageError for a missing container)."""
    container = kube.target.container
    if container and container not in state.images:
        raise KubeUsageError(
            f"container {container!r} is not in {kube.target.ref} (containers: {', '.join(state.images) or 'none'})"
        )
    t = kube.target
    dry_run = {"dryRun": "All"}
    kube._call(
        f"patch {t.ref} (dry run)",
        "PATCH",
        kube._path("deployments", t.deployment),
        {},
        "application/merge-patch+json",
        dry_run,
    )
    deployment = kube.deployment()
    live = [rs for rs in kube.replicasets(deployment) if revision_of(rs) == revision_of(deployment)]
    if live:
        name = live[0]["metadata"]["name"]
        kube._call(
            f"patch replicaset/{name} (dry run)",
            "PATCH",
            kube._path("replicasets", name),
            {},
            "application/merge-patch+json",
            dry_run,
        )


def _api_message(status: int, reason: str, raw: bytes) -> str:
    """``403 Forbidden: <the API's message>`` from a Status answer; the reason phrase otherwise."""
    try:
        message = json.loads(raw).get("message") or reason
    except (TypeError, ValueError, AttributeError):
        message = reason
    message = str(message)[:300]
    return f"{status} {reason}: {message}" if message != reason else f"{status} {reason}"


def _seconds_text(seconds: float) -> str:
    """A bound as people write it: 2, not 1.98132 (what was left of a 2 s deadline)."""
    return f"{round(seconds + 0.05):g}" if seconds >= 0.95 else f"{seconds:.1f}"


def _read_capped(response: Any, deadline: Any, what: str) -> bytes:
    """The whole body, read piece by piece: over MAX_ANSWER_BYTES or past the deadline is an error."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if deadline.expired:
            raise TimeoutError(what)
        chunk = response.read1(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise KubeError(
                f"{what}: the answer is over {MAX_ANSWER_BYTES // (1024 * 1024)} MiB: "
                "not the Kubernetes API (a broken proxy?)"
            )
        chunks.append(chunk)


def _test_version(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}


def _annotation_ops(meta: Mapping[str, Any], annotations: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """JSON patch ops that set (None: remove) annotations on an object read as ``meta``."""
    present = meta.get("annotations")
    if present is None:
        values = {k: v for k, v in annotations.items() if v is not None}
        return [{"op": "add", "path": "/metadata/annotations", "value": values}] if values else []
    ops: list[dict[str, Any]] = []
    for key, value in annotations.items():
        path = "/metadata/annotations/" + _pointer(key)
        if value is not None:
            ops.append({"op": "add", "path": path, "value": value})
        elif key in present:
            ops.append({"op": "remove", "path": path})
    return ops


def unsettled_reason(deployment: dict[str, Any], replicasets: list[dict[str, Any]]) -> str:
    """Why the answers may come from more than one pod template: a change the controller has not
    observed, pods not yet on the latest template, ready pods of an older ReplicaSet. "" when every
    pod that can answer runs the latest template. Availability is not asked: new pods failing
    their readiness probe are a symptom of the revision, not a rollout."""
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
    name = meta.get("name", "")
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return f"deployment/{name}: the controller has not observed the latest change yet"
    replicas, updated = int(spec.get("replicas", 1)), int(status.get("updatedReplicas") or 0)
    if updated < replicas:
        return f"deployment/{name} is rolling out: {updated}/{replicas} pods run the latest template"
    current = revision_of(deployment)
    old_ready = sum(
        int((rs.get("status") or {}).get("readyReplicas") or 0) for rs in replicasets if revision_of(rs) != current
    )
    if old_ready:
        return f"deployment/{name} is rolling out: {old_ready} ready pod(s) of an older revision still answer"
    return ""
