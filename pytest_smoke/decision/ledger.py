"""The fleet's rollback ledger: one small JSON document every target run of a fleet run shares.

``python -m pytest_smoke.fleet run`` (and a fleet session) writes it as a file before the first
target starts and hands its path to every target (``--smoke-fleet-ledger``); a target settles under
the file's lock. With ``fleet.ledger``, it is a ConfigMap in a cluster every run reaches instead,
for runs on different machines; a target settles with a write guarded by its resourceVersion
(:func:`settle_in_cluster`). Either way, in one step:

- it records the addresses of its failed dependencies (``postgres://db:5432/orders``);
- a rollback due only to dependencies another target already recorded is held: one outage of a
  shared database counts once across the fleet;
- a rollback beyond ``max_rollbacks`` targets is held: when every target fails at once the cause is
  likely shared (the runner's network), and rolling them all back fixes nothing.

Targets that run one after the other take their turn in wave and config order; targets running at
once take it in the order their rollbacks come due. A target that claimed a rollback stays counted
whatever happens next (a crash, a refused write): the cap errs toward a human.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..cluster.kube import Kube, KubeError

VERSION = 1
# The key of the ConfigMap's data that holds the ledger, and how often a settlement that lost a race
# reads it again: each loss means another target settled, so a fleet of N needs at most N.
LEDGER_KEY = "ledger.json"
CONFLICT_ATTEMPTS = 50
# A ledger holds a few names and addresses per target: anything larger is not one (bound the read).
MAX_LEDGER_CHARS = 1024 * 1024


def path_for(directory: Path, run_id: str) -> Path:
    """One ledger per fleet run: two runs sharing an output directory never share a cap. The run id
    is the user's: only letters, digits, dot, dash and underscore reach the file name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:64].lstrip(".")
    if safe != run_id:
        safe += "-" + hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return directory / f"rollback-ledger-{safe}.json"


def create(path: Path, max_rollbacks: int, run_id: str) -> None:
    """A new ledger for one fleet run. FileExistsError if one is there: a run id is used once
    (a second run with it, or a file planted there, would otherwise reset the cap)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _new(max_rollbacks, run_id)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data))


@dataclass(frozen=True)
class Claim:
    """What one target brings to the ledger once its decision is made."""

    run_id: str
    target: str
    failed_addresses: tuple[str, ...]  # the addresses of its failed dependencies
    wants_rollback: bool
    # For each failure that counts toward the rollback, its dependency's address (None: not a dependency's).
    counted_addresses: tuple[str | None, ...]


def settle(path: str | os.PathLike[str], claim: Claim) -> str:
    """Record the target's failed dependencies and, if it wants a rollback, claim one: "" when it
    may go ahead, else why it is held."""
    with open(path, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        data = _read(handle.read(MAX_LEDGER_CHARS + 1))
        reason = _settle_in(data, claim)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(data))
        handle.flush()
        os.fsync(handle.fileno())
    return reason


def _new(max_rollbacks: int, run_id: str) -> dict[str, Any]:
    return {"version": VERSION, "run_id": run_id, "max_rollbacks": max_rollbacks, "rolled_back": [], "outages": {}}


def _settle_in(data: dict[str, Any], claim: Claim) -> str:
    """One target's settlement, applied to the ledger's ``data``: why its rollback is held, or ""."""
    if data["run_id"] != claim.run_id:
        raise ValueError(f"the ledger is fleet run {data['run_id']!r}'s, not {claim.run_id!r}'s")
    target = claim.target
    others = {address for name, found in data["outages"].items() if name != target for address in found}
    reason = _hold_reason(data, target, claim.wants_rollback, list(claim.counted_addresses), others)
    data["outages"][target] = sorted(set(claim.failed_addresses))
    if claim.wants_rollback and not reason and target not in data["rolled_back"]:
        data["rolled_back"].append(target)
    return reason


# -- the ledger in a ConfigMap: runs on different machines (a Job per cluster, a CI matrix) --------


def config_map_name(run_id: str) -> str:
    """``smoke-fleet-ledger-RUN_ID``, a valid object name whatever the run id (else a hash of it)."""
    safe = re.sub(r"[^a-z0-9-]", "-", run_id.lower()).strip("-")[:40]
    if safe != run_id:
        safe = (safe + "-" if safe else "") + hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"smoke-fleet-ledger-{safe}"


def settle_in_cluster(kube: Kube, max_rollbacks: int, claim: Claim) -> str:
    """As :func:`settle`, with the ledger in a ConfigMap that every run of the fleet reaches. Each
    settlement is read, applied and written back guarded by the ConfigMap's resourceVersion (the
    API server's optimistic concurrency): two runs settling at once cannot both take the last slot;
    the one that lost reads again (bounded). The first run to settle creates it. KubeError when the
    ledger cannot be used, ValueError when what is there is not a ledger of this run."""
    name = config_map_name(claim.run_id)
    for _ in range(CONFLICT_ATTEMPTS):
        found = kube.config_map(name)
        text = str(((found or {}).get("data") or {}).get(LEDGER_KEY, ""))
        data = _read(text) if found is not None else _new(max_rollbacks, claim.run_id)
        reason = _settle_in(data, claim)
        try:
            if found is None:
                kube.create_config_map(name, {LEDGER_KEY: json.dumps(data)})
            else:
                kube.replace_config_map(found, {LEDGER_KEY: json.dumps(data)})
        except KubeError as exc:
            if exc.status == 409:  # another run settled (or created it) meanwhile: read again
                continue
            raise
        return reason
    raise KubeError(f"the fleet ledger configmap {name} kept changing under {CONFLICT_ATTEMPTS} attempts")


def _hold_reason(data: dict[str, Any], target: str, wants: bool, counted: list[str | None], others: set[str]) -> str:
    if not wants or target in data["rolled_back"]:
        return ""  # nothing due, or this target's claim stands (its own retry is not a second one)
    if counted and all(address and address in others for address in counted):
        shared = ", ".join(sorted({str(address) for address in counted}))
        return f"{shared} failed in another target of the fleet too: one outage, counted once across the fleet"
    earlier = [name for name in data["rolled_back"] if name != target]
    if len(earlier) >= int(data["max_rollbacks"]):
        return (
            f"more targets failed than max_rollbacks ({data['max_rollbacks']}) allows; a shared cause is likely"
            f" ({', '.join(earlier)} rolled back already)"
        )
    return ""


def _read(text: str) -> dict[str, Any]:
    """The ledger, or ValueError for anything that is not one written by :func:`create` and settle."""
    if len(text) > MAX_LEDGER_CHARS:
        raise ValueError("the ledger is larger than a fleet run writes")
    data = json.loads(text)
    valid = (
        isinstance(data, dict)
        and data.get("version") == VERSION
        and isinstance(data.get("run_id"), str)
        and type(data.get("max_rollbacks")) is int
        and isinstance(data.get("rolled_back"), list)
        and all(isinstance(name, str) for name in data["rolled_back"])
        and isinstance(data.get("outages"), dict)
        and all(isinstance(found, list) for found in data["outages"].values())
    )
    if not valid:
        raise ValueError("not a fleet rollback ledger of this version")
    return cast("dict[str, Any]", data)
