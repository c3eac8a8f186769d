"""A faithful local test double of the Kubernetes apps/v1 REST API.

No API server can run on these machines, so the rollback tests talk to this instead, through the
real ``kubernetes`` client and the real ``kubectl`` binary. It speaks the real paths and JSON:
discovery, Deployments and ReplicaSets with owner references and revision annotations, strategic
merge / JSON merge / JSON patches (with ``test`` ops), and a rollout whose status progresses over a
few polls, the way the deployment controller's would.

Modes: ``paused`` (a Deployment field), ``stuck`` (a rollout that never completes),
``deadline`` (ProgressDeadlineExceeded), ``forbidden`` (403 on every write). Fault rules
(:meth:`KubeDouble.fault`) answer a chosen call with a status, late, trickled, or applied with the
answer lost, a given number of times. ``?dryRun=All`` is honoured: checked, never stored.

Besides apps/v1, core/v1 ConfigMaps (get, create, replace) with the API server's optimistic
concurrency: a replace whose ``metadata.resourceVersion`` is not the stored one is 409 Conflict, a
create of an existing name 409 AlreadyExists. The fleet's shared rollback ledger lives in one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def strategic_merge(target: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge patch, with the merge keys apps/v1 pod templates use."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target)
    for name, value in patch.items():
        if name.startswith("$"):
            continue  # $setElementOrder, $retainKeys, $patch: ordering hints
        if value is None:
            result.pop(name, None)
        elif name in ("containers", "initContainers", "env", "volumes", "volumeMounts", "ports") and isinstance(
            value, list
        ):
            merge_key = "containerPort" if name == "ports" else "name"
            merged = copy.deepcopy(result.get(name) or [])
            for item in value:
                match = next((m for m in merged if m.get(merge_key) == item.get(merge_key)), None)
                if match is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[merged.index(match)] = strategic_merge(match, item)
            result[name] = merged
        elif isinstance(value, dict):
            result[name] = strategic_merge(result.get(name) or {}, value)
        else:
            result[name] = copy.deepcopy(value)
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


class PatchConflict(Exception):
    pass


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        if op["op"] == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise PatchConflict(f"test failed at {op['path']}")
        elif op["op"] in ("replace", "add"):
            if isinstance(parent, list):
                parent[int(last)] = op["value"]
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
    return doc


def template_hash(template: dict[str, Any]) -> str:
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:10]


class KubeDouble:
    """The API server state plus an HTTP server on 127.0.0.1 serving it."""

    def __init__(self, polls_to_complete: int = 3):
        self.polls_to_complete = polls_to_complete
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.patches: list[tuple[str, str, Any]] = []
        self.forbidden = False
        self.kube_system = {"name": "kube-system", "uid": str(uuid.uuid4()), "resourceVersion": "1"}
        # content type (or "template": any write to the pod template) -> HTTP status to answer instead
        self.fail_patches: dict[str, int] = {}
        self.fail_next_patch: int | None = None  # answer the next PATCH with this status, once
        self.lose_template_answer: int | None = None  # apply the next template write, answer this status
        # A deployment controller writing status on every read (pods crash-looping): status-only
        # updates that move resourceVersion but never the pod template.
        self.status_churn = False
        self.slow_seconds = 0.0  # delay before every answer (an API server that does not answer)
        self.rules: list[dict[str, Any]] = []  # see fault()
        self.stuck = False
        self.deadline_exceeded = False
        self.lock = threading.RLock()
        self._rv = 1000
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fault(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        times: int = 1,
        delay: float = 0.0,
        apply: bool = False,
        trickle: bool = False,
        endless: bool = False,
        body: str = "",
    ) -> None:
        """Answer the next ``times`` calls of ``method`` to a path matching the regex ``path``:
        with ``status`` (a Status body); after ``delay`` seconds; ``apply``: do the write, then
        answer ``status`` (or nothing in time: a lost answer); ``trickle``: one byte every 0.5 s;
        ``endless``: a 200 list that never ends (a broken proxy); ``body``: only a request whose
        body holds this text."""
        self.rules.append(
            {
                "method": method,
                "path": path,
                "status": status,
                "times": times,
                "delay": delay,
                "apply": apply,
                "trickle": trickle,
                "endless": endless,
                "body": body,
            }
        )

    def _rule_for(self, method: str, path: str, body: bytes = b"") -> dict[str, Any] | None:
        with self.lock:
            for rule in self.rules:
                if rule["body"] and rule["body"].encode() not in body:
                    continue
                if rule["times"] > 0 and rule["method"] == method and re.search(rule["path"], path):
                    rule["times"] -= 1
                    return rule
        return None

    def start(self) -> "KubeDouble":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def write_kubeconfig(self, path: Path, namespace: str = "prod") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": {"server": self.url}}],
                    "users": [{"name": "smoke", "user": {"token": "kube-double-token-123"}}],
                    "contexts": [
                        {"name": "double", "context": {"cluster": "double", "user": "smoke", "namespace": namespace}}
                    ],
                    "current-context": "double",
                }
            )
        )
        return path

    # -- state -------------------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def add_deployment(
        self,
        name: str,
        images: list[str] | dict[str, str],
        namespace: str = "prod",
        replicas: int = 3,
        paused: bool = False,
    ) -> dict[str, Any]:
        """A Deployment at revision 1 with its ReplicaSet, fully rolled out."""
        containers = (
            [{"name": n, "image": i} for n, i in images.items()]
            if isinstance(images, dict)
            else [{"name": name, "image": i} for i in images]
        )
        labels = {"app": name}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "resourceVersion": self._next_rv(),
                "creationTimestamp": _now(),
                "labels": labels,
                "annotations": {},
            },
            "spec": {
                "replicas": replicas,
                "paused": paused,
                "selector": {"matchLabels": labels},
                "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate"},
                "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": containers}},
            },
            "status": {},
        }
        with self.lock:
            self.deployments[(namespace, name)] = deployment
            self._roll(deployment, complete=True)
        return deployment

    def deploy(
        self,
        namespace: str,
        name: str,
        images: dict[str, str],
        complete: bool = True,
        init_images: dict[str, str] | None = None,
    ) -> None:
        """What a CD pipeline does: set new images, creating a new revision, fully rolled out
        (``complete=False``: just applied, the controller has not observed it yet)."""
        with self.lock:
            deployment = self.deployments[(namespace, name)]
            pod: dict[str, Any] = {"containers": [{"name": c, "image": i} for c, i in images.items()]}
            if init_images:
                pod["initContainers"] = [{"name": c, "image": i} for c, i in init_images.items()]
            deployment.update(strategic_merge(deployment, {"spec": {"template": {"spec": pod}}}))
            self._roll(deployment, complete=complete)

    def images(self, namespace: str, name: str) -> dict[str, str]:
        with self.lock:
            containers = self.deployments[(namespace, name)]["spec"]["template"]["spec"]["containers"]
            return {c["name"]: c["image"] for c in containers}

    def revision(self, namespace: str, name: str) -> int:
        return int(self.deployments[(namespace, name)]["metadata"]["annotations"][REVISION])

    def owned_replicasets(self, namespace: str, name: str) -> list[dict[str, Any]]:
        uid = self.deployments[(namespace, name)]["metadata"]["uid"]
        return [
            rs
            for (ns, _), rs in self.replicasets.items()
            if ns == namespace and any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences", []))
        ]

    def _roll(self, deployment: dict[str, Any], complete: bool = False) -> None:
        """The deployment controller's reaction to a template change."""
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, name = meta["namespace"], meta["name"]
        owned = self.owned_replicasets(namespace, name)
        revisions = [int(rs["metadata"]["annotations"][REVISION]) for rs in owned]
        digest = template_hash(spec["template"])
        current = next((rs for rs in owned if rs["metadata"]["labels"][HASH_LABEL] == digest), None)
        current_revision = int(meta["annotations"].get(REVISION, 0))
        if current is not None and int(current["metadata"]["annotations"][REVISION]) == current_revision:
            return  # template unchanged
        new_revision = max(revisions, default=0) + 1
        if current is None:
            template = copy.deepcopy(spec["template"])
            template["metadata"].setdefault("labels", {})[HASH_LABEL] = digest
            current = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{digest}",
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self._next_rv(),
                    "creationTimestamp": _now(),
                    "labels": {**spec["selector"]["matchLabels"], HASH_LABEL: digest},
                    "annotations": {},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": spec["replicas"],
                    "selector": {"matchLabels": {**spec["selector"]["matchLabels"], HASH_LABEL: digest}},
                    "template": template,
                },
                "status": {"replicas": spec["replicas"]},
            }
            self.replicasets[(namespace, current["metadata"]["name"])] = current
        current["metadata"]["annotations"][REVISION] = str(new_revision)
        meta["annotations"][REVISION] = str(new_revision)
        meta["generation"] += 1
        meta["resourceVersion"] = self._next_rv()
        deployment["_updated"] = spec["replicas"] if complete else 0
        deployment["_polls"] = 0
        self._refresh_status(deployment)

    def _refresh_status(self, deployment: dict[str, Any]) -> None:
        replicas = deployment["spec"]["replicas"]
        updated = deployment.get("_updated", replicas)
        conditions = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]
        if self.deadline_exceeded and updated < replicas:
            conditions.append(
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "ReplicaSet has timed out progressing.",
                }
            )
        else:
            reason = "NewReplicaSetAvailable" if updated >= replicas else "ReplicaSetUpdated"
            conditions.append({"type": "Progressing", "status": "True", "reason": reason})
        self._refresh_replicasets(deployment, updated)
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"]
            if deployment.get("_polls", 1) > 0
            else deployment["metadata"]["generation"] - 1,
            "replicas": replicas + (replicas - updated),
            "updatedReplicas": updated,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "unavailableReplicas": 0,
            "conditions": conditions,
        }

    def _refresh_replicasets(self, deployment: dict[str, Any], updated: int) -> None:
        """The new ReplicaSet has the updated pods ready; the previous one the rest, until done."""
        meta = deployment["metadata"]
        current = int(meta["annotations"].get(REVISION, 0))
        owned = sorted(
            self.owned_replicasets(meta["namespace"], meta["name"]),
            key=lambda rs: int(rs["metadata"]["annotations"][REVISION]),
        )
        replicas = deployment["spec"]["replicas"]
        older = [rs for rs in owned if int(rs["metadata"]["annotations"][REVISION]) < current]
        for rs in owned:
            revision = int(rs["metadata"]["annotations"][REVISION])
            ready = updated if revision == current else (replicas - updated if older and rs is older[-1] else 0)
            rs["status"] = {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready}

    def poll(self, deployment: dict[str, Any]) -> None:
        """Each read moves an unfinished rollout along, unless the rollout is stuck."""
        replicas = deployment["spec"]["replicas"]
        deployment["_polls"] = deployment.get("_polls", 0) + 1
        if not (self.stuck or self.deadline_exceeded) and deployment.get("_updated", replicas) < replicas:
            step = max(1, -(-replicas // self.polls_to_complete))
            deployment["_updated"] = min(replicas, deployment["_updated"] + step)
        self._refresh_status(deployment)

    def public(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _resource(
    name: str, kind: str, namespaced: bool = True, verbs: tuple[str, ...] = ("get", "list", "patch", "update", "watch")
) -> dict[str, Any]:
    return {
        "name": name,
        "singularName": kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": list(verbs),
        "shortNames": {"deployments": ["deploy"], "replicasets": ["rs"], "pods": ["po"]}.get(name, []),
    }


class _Handler(BaseHTTPRequestHandler):
    """The API server's side of one connection; :func:`_handler` binds it to a KubeDouble."""

    api: KubeDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(120):  # bounded: one minute at most
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    def endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()  # no length: the body ends when the connection does
        try:
            self.wfile.write(b'{"kind": "ReplicaSetList", "items": [')
            chunk = b'{"metadata": {"name": "x"}},' * 4096
            for _ in range(100_000):  # bounded, but far past any cap
                self.wfile.write(chunk)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        self.handle_request("GET")

    def do_PATCH(self) -> None:
        self.handle_request("PATCH")

    def do_PUT(self) -> None:
        self.handle_request("PUT")

    def do_POST(self) -> None:
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path.rstrip("/"), parse_qs(parts.query)
        with self.api.lock:
            self.api.requests.append((method, path))
        if self.api.slow_seconds:
            time.sleep(self.api.slow_seconds)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method != "GET" else b""
        rule = self.api._rule_for(method, path, raw)
        self._rule = rule
        if self.answer_rule(rule):
            return
        self._dry_run = "dryRun" in query
        kind = self.headers.get("Content-Type", "").split(";")[0]
        if method == "PATCH":
            self._body = json.loads(raw or b"null")
            if "/spec/template" in json.dumps(self._body) or '"template"' in json.dumps(self._body):
                kind = self.api.fail_patches.get("template") and "template" or kind  # a write to the pod template
        if self.answer_injected_error(method, kind):
            return
        discovery = _discovery(path)
        if discovery is not None:
            return self.send(200, discovery)
        if path == "/api/v1/namespaces/kube-system" and method == "GET":
            # What identifies a cluster: kube-system's uid (kubectl get ns kube-system -o jsonpath=...).
            return self.send(200, {"kind": "Namespace", "apiVersion": "v1", "metadata": self.api.kube_system})
        config_map = re.fullmatch(r"/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?", path)
        if config_map:
            return self.answer_config_map(method, *config_map.groups(), json.loads(raw or b"null"))
        self.answer_resource(method, path, query)

    def answer_config_map(self, method: str, namespace: str, name: str | None, body: Any) -> None:
        api = self.api
        with api.lock:
            if method == "POST" and name is None:
                name = str(((body or {}).get("metadata") or {}).get("name") or "")
                if (namespace, name) in api.config_maps:
                    return self.send(409, _status(409, "AlreadyExists", f'configmaps "{name}" already exists'))
                stored = {**body, "metadata": {**body["metadata"], "namespace": namespace, "uid": str(uuid.uuid4())}}
                stored["metadata"]["resourceVersion"] = api._next_rv()
                if not self._dry_run:
                    api.config_maps[(namespace, name)] = stored
                return self.send(201, stored)
            found = api.config_maps.get((namespace, name or ""))
            if found is None:
                return self.send(404, _status(404, "NotFound", f'configmaps "{name}" not found'))
            if method == "GET":
                return self.send(200, found)
            if method == "PUT":
                given = str(((body or {}).get("metadata") or {}).get("resourceVersion") or "")
                if given != found["metadata"]["resourceVersion"]:
                    return self.send(
                        409,
                        _status(
                            409,
                            "Conflict",
                            f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified;'
                            " please apply your changes to the latest version and try again",
                        ),
                    )
                replaced = {**body, "metadata": {**found["metadata"], "resourceVersion": api._next_rv()}}
                if not self._dry_run:
                    api.config_maps[(namespace, name or "")] = replaced
                return self.send(200, replaced)
        return self.send(405, _status(405, "MethodNotAllowed", "method not allowed"))

    def answer_rule(self, rule: dict[str, Any] | None) -> bool:
        """An injected fault of a rule for this request (a delay alone answers nothing): whether it answered."""
        if rule and rule["delay"] and not rule["apply"]:
            time.sleep(rule["delay"])
        if rule and rule["trickle"]:
            self.trickle()
            return True
        if rule and rule["endless"]:
            self.endless()
            return True
        if rule and rule["status"] and not rule["apply"]:
            self.send(rule["status"], _status(rule["status"], "InternalError", f"injected {rule['status']}"))
            return True
        return False

    def answer_injected_error(self, method: str, kind: str) -> bool:
        """A failed patch or a forbidden write, as set on the double: whether it answered."""
        if method == "PATCH" and self.api.fail_next_patch and not self._dry_run:
            code, self.api.fail_next_patch = self.api.fail_next_patch, None
            self.send(
                code,
                _status(
                    code,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                ),
            )
            return True
        if method == "PATCH" and kind in self.api.fail_patches and not self._dry_run:
            code = self.api.fail_patches[kind]
            reason = {409: "Conflict", 404: "NotFound", 500: "InternalError"}.get(code, "Error")
            self.send(code, _status(code, reason, f"injected {code} for {kind}"))
            return True
        if method != "GET" and self.api.forbidden:
            self.send(
                403,
                _status(
                    403,
                    "Forbidden",
                    'deployments.apps is forbidden: User "system:serviceaccount:prod:smoke" cannot patch resource in API group "apps"',
                ),
            )
            return True
        return False

    def answer_resource(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        api = self.api
        match = re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/(deployments|replicasets)(?:/([^/]+))?", path)
        if not match:
            return self.send(
                404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")
            )
        namespace, resource, name = match.groups()
        store = api.deployments if resource == "deployments" else api.replicasets
        with api.lock:
            if name is None and method == "GET":
                items = [
                    api.public(o)
                    for (ns, _), o in store.items()
                    if ns == namespace and _selected(o, query.get("labelSelector", [""])[0])
                ]
                kind = "DeploymentList" if resource == "deployments" else "ReplicaSetList"
                return self.send(
                    200,
                    {
                        "kind": kind,
                        "apiVersion": "apps/v1",
                        "metadata": {"resourceVersion": str(api._rv)},
                        "items": items,
                    },
                )
            obj = store.get((namespace, name or ""))
            if obj is None:
                return self.send(404, _status(404, "NotFound", f'{resource}.apps "{name}" not found'))
            if method == "GET":
                if resource == "deployments":
                    api.poll(obj)
                    if api.status_churn:
                        obj["metadata"]["resourceVersion"] = api._next_rv()
                return self.send(200, api.public(obj))
            if method == "PATCH":
                late = self.patch(resource, obj)
                if late is None:
                    return
        if method == "PATCH" and late is not None:  # applied; answered late, outside the lock
            time.sleep(late[0])
            return self.send(*late[1:]) if late[1] else self.send(200, api.public(obj))
        return self.send(405, _status(405, "MethodNotAllowed", "method not allowed"))

    def patch(self, resource: str, obj: dict[str, Any]) -> tuple[float, int | None, Any] | None:
        body = self._body
        kind = self.headers.get("Content-Type", "").split(";")[0]
        if not self._dry_run:
            self.api.patches.append((resource, kind, body))
        try:
            if kind == "application/strategic-merge-patch+json":
                updated = strategic_merge(self.api.public(obj), body)
            elif kind == "application/merge-patch+json":
                updated = merge_patch(self.api.public(obj), body)
            elif kind == "application/json-patch+json":
                updated = json_patch(self.api.public(obj), body)
            else:
                return self.send(
                    415,
                    _status(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {kind})",
                    ),
                )
        except PatchConflict as exc:
            return self.send(422, _status(422, "Invalid", str(exc)))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            return self.send(422, _status(422, "Invalid", f"invalid patch: {exc}"))
        if self._dry_run:
            return self.send(200, updated)
        template_before = json.dumps(obj.get("spec", {}).get("template"), sort_keys=True)
        for key in ("metadata", "spec"):
            obj[key] = updated.get(key, obj[key])
        obj["metadata"]["resourceVersion"] = self.api._next_rv()
        if resource == "deployments" and json.dumps(obj["spec"]["template"], sort_keys=True) != template_before:
            if not obj["spec"].get("paused"):
                self.api._roll(obj)
        rule = self._rule
        if rule and rule["apply"]:  # applied; the answer comes late (after the client gave up) or lost
            status = rule["status"]
            return rule["delay"], status, _status(status, "Timeout", "the gateway timed out") if status else None
        if self.api.lose_template_answer and "/spec/template" in json.dumps(body):
            # Applied, but the answer is lost (a gateway timeout): the client cannot tell.
            code, self.api.lose_template_answer = self.api.lose_template_answer, None
            return self.send(code, _status(code, "Timeout", "the gateway timed out"))
        self.send(200, self.api.public(obj))


def _discovery(path: str) -> dict[str, Any] | None:
    """The discovery documents kubectl and the client read first."""
    if path == "/version":
        return {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        group = {
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        }
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
    if path == "/api/v1":
        return {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                _resource("pods", "Pod", verbs=("get", "list", "watch")),
                _resource("namespaces", "Namespace", False, ("get", "list")),
                _resource("configmaps", "ConfigMap", verbs=("get", "create", "update")),
            ],
        }
    if path == "/apis/apps/v1":
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "apps/v1",
            "resources": [_resource("deployments", "Deployment"), _resource("replicasets", "ReplicaSet")],
        }
    return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (its deadline passed, its run was killed) is not an error of the
        # double: no traceback on stderr, where it would land in whichever test captures it next.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def _handler(api: KubeDouble) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"api": api})


def _selected(obj: dict[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels", {})
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value.lstrip("="):
            return False
    return True
