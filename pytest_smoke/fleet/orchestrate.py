"""``python -m pytest_smoke.fleet run``: one pytest process per target, wave by wave.

Each target is exactly a plugin run (``pytest --smoke-config F --smoke-target NAME``): its own
verdict, decision, rollback and lease. What this adds is the fleet's order and its limits:

- waves run in order; wave k+1 starts only when every target of wave k passed and was verified,
  after its ``bake_seconds``; a failure stops the rest ("not started: wave 1 failed at eu-canary");
- the targets share a rollback ledger (``decision/ledger.py``): once ``max_rollbacks`` targets
  rolled back, every later rollback is held for a human, because when every target fails at once
  the cause is likely shared (the runner's network), not each deploy; and a dependency that failed
  in one target (by its address, ``postgres://db:5432/orders``) counts once: a rollback due only
  to it elsewhere is held. With ``--parallel 1`` (the default) the targets of a wave run one after
  the other, so "later" is wave and config order; with ``--parallel K`` up to K run at once and
  "later" is the order their rollbacks come due;
- targets left out by ``--smoke-target``/``--smoke-target-selector`` receive no request and are
  reported as not selected (the fleet is PARTIAL, never verified).
"""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..decision import ledger
from ..model import Fleet
from .merge import FleetResult, merge, read_reports


@dataclass
class FleetRun:
    config: Path
    out: Path  # where each target writes TARGET.json
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    environment: str | None = None
    pytest_args: Sequence[str] = ()
    python: str = sys.executable
    parallel: int = 1  # targets of a wave running at once
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep


# Runs one target to its end: (target, wave, ledger) -> its report, or None when it wrote none.
Launch = Callable[[str, "int | None", Path], "Path | None"]


def run_fleet(fleet: Fleet, selected: Sequence[str], run: FleetRun, launch: Launch | None = None) -> FleetResult:
    """Run the selected targets wave by wave and merge what they reported. ``launch`` runs one
    target (default: a pytest process with its output on ours, see :func:`target_command`)."""
    start = launch or functools.partial(_run_target, run)
    run.out.mkdir(parents=True, exist_ok=True)
    ledger_path = ledger.path_for(run.out, run.run_id)
    ledger.create(ledger_path, fleet.max_rollbacks, run.run_id)
    stopped = ""
    written: list[Path] = []
    for number, members in _waves(fleet, selected):
        if stopped:
            break
        if not members:  # a wave whose targets were all left out: nothing to run, nothing to bake
            continue
        with ThreadPoolExecutor(max_workers=max(1, run.parallel)) as pool:
            reports = list(pool.map(start, members, itertools.repeat(number), itertools.repeat(ledger_path)))
        written += [report for report in reports if report is not None]
        result = merge(
            fleet,
            str(run.config),
            read_reports(written),
            run.run_id,
            selected=set(selected),
            environment=run.environment,
        )
        failing = next((t.name for t in result.targets if t.name in members and not t.green), None)
        if failing is not None and number is not None:
            stopped = f"wave {number} failed at {failing}"
        elif number is not None and number < len(fleet.waves):
            bake = fleet.waves[number - 1].bake_seconds
            if bake:
                run.say(f"fleet: wave {number} passed; baking {bake:g} s before wave {number + 1}")
                run.sleep(bake)
    return merge(
        fleet, str(run.config), read_reports(written), run.run_id, selected=set(selected), environment=run.environment
    )


def _waves(fleet: Fleet, selected: Sequence[str]) -> list[tuple[int | None, list[str]]]:
    if not fleet.waves:
        return [(None, list(selected))]
    return [(wave.number, [name for name in wave.targets if name in selected]) for wave in fleet.waves]


def report_path(run: FleetRun, name: str) -> Path:
    """Where a target writes its report; a stale one is removed first, so it never stands for this run."""
    report = run.out / f"{name}.json"
    report.unlink(missing_ok=True)
    return report


def target_command(run: FleetRun, name: str, report: Path, ledger_path: Path) -> tuple[list[str], dict[str, str]]:
    """The pytest command line and environment that check one target: exactly a plugin run."""
    command = [run.python, "-m", "pytest", "--smoke-config", str(run.config), "--smoke-fleet-target", name]
    command += ["--smoke-report", str(report), "--smoke-fleet-ledger", str(ledger_path)]
    if run.environment:
        command += ["--smoke-env", run.environment]
    command += list(run.pytest_args)
    return command, {**os.environ, "SMOKE_FLEET_RUN_ID": run.run_id, "SMOKE_TARGET": name}


def _run_target(run: FleetRun, name: str, wave: int | None, ledger_path: Path) -> Path | None:
    report = report_path(run, name)
    command, environ = target_command(run, name, report, ledger_path)
    run.say(f"fleet: target {name}" + (f" (wave {wave})" if wave else ""))
    if run.parallel <= 1:
        # One at a time: the child's output goes to ours as it comes (its verdict, its rollback).
        subprocess.run(command, env=environ, check=False)
    else:
        # Several at once: each child's output is kept whole and shown when it ends, not interleaved.
        log = run.out / f"{name}.log"
        with open(log, "wb") as handle:
            subprocess.run(command, env=environ, check=False, stdout=handle, stderr=subprocess.STDOUT)
        run.say(f"fleet: target {name} ended; its output: {log}")
    return report if report.exists() else None
