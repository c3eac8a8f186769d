"""``python -m pytest_smoke.fleet run``: one pytest process per target, wave by wave.

Each target is exactly a plugin run (``pytest --smoke-config F --smoke-target NAME``): its own
verdict, decision, rollback and lease. What this adds is the fleet's order and its limits:

- waves run in order; wave k+1 starts only when every target of wave k passed and was verified,
  after its ``bake_seconds``; a failure stops the rest ("not started: wave 1 failed at eu-canary");
- the targets of a wave run one after the other in config order, so ``max_rollbacks`` counts in
  wave and config order: once that many targets were rolled back, every later target's rollback
  is held for a human (``--smoke-hold-rollback``), because when every target fails at once the
  cause is likely shared (the runner's network, a shared database), not each deploy;
- a dependency that failed in one target (by its address, ``postgres://db:5432/orders``) counts
  once: a later target whose rollback is due only to it holds it (``--smoke-shared-outage``);
- targets left out by ``--smoke-target``/``--smoke-target-selector`` receive no request and are
  reported as not selected (the fleet is PARTIAL, never verified).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..model import Fleet
from ..selector import parse as parse_selector
from .merge import FleetResult, merge, read_reports

# Rollback statuses that wrote to a target's cluster (or may have): they count toward max_rollbacks.
WROTE = frozenset({"completed", "unmarked", "still_failing", "failed"})
HELD_REASON = "more targets failed than max_rollbacks ({limit}) allows; a shared cause is likely"


@dataclass
class FleetRun:
    config: Path
    out: Path  # where each target writes TARGET.json
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    environment: str | None = None
    pytest_args: Sequence[str] = ()
    python: str = sys.executable
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep


def selected_targets(fleet: Fleet, names: Sequence[str], selector: str | None) -> list[str]:
    """The targets a run checks, in config order: those matching any ``names`` glob (all without
    one) and the ``selector``. ValueError when a glob or the selector selects nothing."""
    chosen = [target.name for target in fleet.targets]
    if names:
        for pattern in names:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in chosen):
                known = ", ".join(target.name for target in fleet.targets)
                raise ValueError(f"--smoke-target {pattern}: no target matches (targets: {known})")
        chosen = [name for name in chosen if any(fnmatch.fnmatchcase(name, pattern) for pattern in names)]
    if selector:
        wanted = parse_selector(selector)
        chosen = [name for name in chosen if wanted.matches(fleet.target(name).labels)]  # type: ignore[union-attr]
        if not chosen:
            raise ValueError(f"--smoke-target-selector {selector!r} selects no target")
    return chosen


def run_fleet(fleet: Fleet, selected: Sequence[str], run: FleetRun) -> FleetResult:
    """Run the selected targets wave by wave and merge what they reported."""
    run.out.mkdir(parents=True, exist_ok=True)
    rolled_back = 0
    stopped = ""
    written: list[Path] = []
    outages: set[str] = set()  # dependency addresses that failed in a target so far
    for number, members in _waves(fleet, selected):
        if stopped:
            break
        for name in members:
            held = HELD_REASON.format(limit=fleet.max_rollbacks) if rolled_back >= fleet.max_rollbacks else ""
            report = _run_target(run, name, number, held, sorted(outages))
            rolled_back += _wrote(report)
            if report is not None:
                written.append(report)
                outages |= _failed_dependencies(report)
        result = merge(fleet, str(run.config), read_reports(written), run.run_id, selected=set(selected))
        failing = next((t.name for t in result.targets if t.name in members and not t.green), None)
        if failing is not None and number is not None:
            stopped = f"wave {number} failed at {failing}"
        elif number is not None and number < len(fleet.waves):
            bake = fleet.waves[number - 1].bake_seconds
            if bake:
                run.say(f"fleet: wave {number} passed; baking {bake:g} s before wave {number + 1}")
                run.sleep(bake)
    return merge(fleet, str(run.config), read_reports(written), run.run_id, selected=set(selected))


def _waves(fleet: Fleet, selected: Sequence[str]) -> list[tuple[int | None, list[str]]]:
    if not fleet.waves:
        return [(None, [name for name in selected])]
    return [(wave.number, [name for name in wave.targets if name in selected]) for wave in fleet.waves]


def _run_target(run: FleetRun, name: str, wave: int | None, held: str, outages: Sequence[str]) -> Path | None:
    report = run.out / f"{name}.json"
    report.unlink(missing_ok=True)  # a stale report must never stand for this run
    command = [run.python, "-m", "pytest", "--smoke-config", str(run.config), "--smoke-target", name]
    command += ["--smoke-report", str(report)]
    if run.environment:
        command += ["--smoke-env", run.environment]
    if held:
        command += ["--smoke-hold-rollback", held]
    for address in outages:
        command += ["--smoke-shared-outage", address]
    command += list(run.pytest_args)
    run.say(f"fleet: target {name}" + (f" (wave {wave})" if wave else "") + (" - rollback held" if held else ""))
    environ = {**os.environ, "SMOKE_FLEET_RUN_ID": run.run_id, "SMOKE_TARGET": name}
    # The child's output goes to ours as it comes: its verdict, its rollback progress.
    subprocess.run(command, env=environ, check=False)
    return report if report.exists() else None


def _failed_dependencies(report: Path) -> set[str]:
    """The addresses of the dependencies that failed in a target's run."""
    document = read_reports([report])[0][1]
    checks = document["checks"] if document is not None else []
    return {
        str(check["facts"]["address"])
        for check in checks
        if check["kind"] == "dependency" and check["status"] == "failed" and check["facts"].get("address")
    }


def _wrote(report: Path | None) -> int:
    """1 when the target's run rolled back, or may have: a run that left no readable report (it
    crashed, it was killed mid-rollback) counts too, so the cap errs toward a human."""
    document = read_reports([report])[0][1] if report is not None else None
    if document is None:
        return 1
    return int(document["rollback"] is not None and document["rollback"]["status"] in WROTE)
