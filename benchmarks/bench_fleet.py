"""Fleet runs side by side: 20 targets x 5 checks, one at a time against 4 at once, and a fleet
session (one ``pytest`` command, 4 at once). A script, not a test: run it by hand.

    python benchmarks/bench_fleet.py [--repeat 2] [--targets 20] [--latency-ms 200]

Each target is a real ``pytest`` process, as ``python -m pytest_smoke.fleet run`` starts it, against
the demo service on a free local port (its ``/slow?ms=N`` answers after N ms). Both variants run
interleaved in one invocation, so their ratio is meaningful on a small, noisy machine. Printed per
variant: the wall-clock median, what "batches x one target's time" predicts (batches = targets / K,
one target's time measured alone), and the largest resident set of any target process and of the
orchestrator itself, which should not grow with the number of targets (memory flat).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "example_suites" / "demo"))
sys.path.insert(0, str(ROOT))
from pytest_smoke.config import load_fleet  # noqa: E402
from pytest_smoke.fleet.orchestrate import FleetRun, run_fleet  # noqa: E402

from demo_service import DemoService  # noqa: E402


def config(path: Path, service: DemoService, targets: int, latency_ms: int) -> Path:
    checks = [{"name": f"c{i}", "endpoint": f"/slow?ms={latency_ms}", "timeout_seconds": 10} for i in range(5)]
    doc = {
        "health_checks": checks,
        "fleet": {"targets": {f"t{n:02d}": {"base_url": service.url} for n in range(targets)}},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def one_run(fleet_config: Path, names: list[str], parallel: int, out: Path) -> float:
    run = FleetRun(config=fleet_config, out=out, parallel=parallel, say=lambda line: None)
    run.pytest_args = ["-p", "no:cacheprovider", "-q"]
    started = time.perf_counter()
    saved = os.dup(1)  # one at a time, the children print to our stdout: not into the table
    with open(os.devnull, "wb") as quiet:
        os.dup2(quiet.fileno(), 1)
        try:
            result = run_fleet(load_fleet(fleet_config), names, run)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    elapsed = time.perf_counter() - started
    assert result.exit_status == 0, [t.summary for t in result.targets if t.exit_status]
    return elapsed


def session_run(fleet_config: Path, parallel: int, out: Path) -> float:
    """The same fleet as one pytest command: the session collects every target and replays each
    target process's reports through its own hooks."""
    command = [sys.executable, "-m", "pytest", "--smoke-config", str(fleet_config), "-p", "no:cacheprovider", "-q"]
    command += ["--smoke-fleet-out", str(out), "--smoke-fleet-parallel", str(parallel)]
    started = time.perf_counter()
    finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    assert finished.returncode == 0, finished.returncode
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    os.environ.setdefault("PYTEST_ADDOPTS", "-p deploy_smoke -p timeout -p xdist")
    service = DemoService(faults=set()).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)  # the targets' pytest collects from here: only the config's checks
            fleet_config = config(Path(tmp) / "fleet.yaml", service, args.targets, args.latency_ms)
            names = [target.name for target in load_fleet(fleet_config).targets]
            alone = statistics.median(one_run(fleet_config, names[:1], 1, Path(tmp) / "alone") for _ in range(3))
            times: dict[str, list[float]] = {"1": [], "4": [], "4, fleet session": []}
            for round_number in range(args.repeat):
                for variant in times:  # interleaved: every variant sees the same machine
                    out = Path(tmp) / f"out-{variant[:1]}-{len(variant)}-{round_number}"
                    if variant.endswith("session"):
                        times[variant].append(session_run(fleet_config, 4, out))
                    else:
                        times[variant].append(one_run(fleet_config, names, int(variant), out))
    finally:
        os.chdir(ROOT)
        service.stop()
    children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    own_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"One target alone (5 checks at {args.latency_ms} ms, process start included): {alone:.2f} s\n")
    print("| Targets at once | Wall (median) | Batches x one target | Ratio to 1 at a time |")
    print("| --- | --- | --- | --- |")
    base = statistics.median(times["1"])
    for parallel, samples in times.items():
        batches = math.ceil(args.targets / int(parallel[:1]))
        median = statistics.median(samples)
        print(
            f"| {parallel} | {median:.1f} s | {batches} x {alone:.2f} = {batches * alone:.1f} s | {median / base:.2f} |"
        )
    print(f"\nLargest target process: {children_mib:.0f} MiB; the orchestrator itself: {own_mib:.0f} MiB")


if __name__ == "__main__":
    main()
