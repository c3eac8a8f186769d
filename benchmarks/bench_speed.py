"""Side-by-side speed measurements for pytest-smoke. A script, not a test: run it by hand.

    python benchmarks/bench_speed.py [--repeat 3]

It starts the demo service on a free local port (its ``/slow?ms=N`` endpoint answers after N ms),
generates configs in a temporary directory, runs each variant as a real ``pytest`` subprocess and
prints a Markdown table of wall-clock medians. Every row's variants run interleaved in the same
invocation, so their ratio is meaningful even on a small, noisy machine.

Rows (every knob at its default unless the row names one):
1. 60 health checks at 200 ms: defaults vs the previous fixed per-host limit of 2 vs
   ``--smoke-concurrency 1`` vs Tavern (if installed).
2. 1000 checks at 0 ms: per-check overhead over an empty pytest run, against a bare requests loop.
3. 1000 checks failing at once (connection refused) against 1000 passing ones.
4. 30 checks at 300 ms against a real gunicorn with two sync workers, 2 s timeouts.
5. 10 checks that hang, 2 s timeouts.
6. Start-up: ``pytest --smoke-config`` with one check against a bare ``pytest`` with one test.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "example_suites" / "demo"))
from demo_service import DemoService  # noqa: E402


def health(name: str, endpoint: str, timeout: float = 5) -> dict:
    return {"name": name, "endpoint": endpoint, "timeout_seconds": timeout}


# Every variant runs in the same plain environment: pytest with the plugins this package installs
# (pytest-timeout, pytest-xdist), and pytest-smoke itself only where a smoke config is run. The
# test-only plugins of a development checkout (hypothesis, pytest-randomly, pytest-sugar, ...) are
# no user's baseline; they would only add their own noise to every variant.
PLAIN_PYTEST = ("-p", "xdist.plugin", "-p", "pytest_timeout")
SMOKE_PLUGIN = ("-p", "pytest_smoke.plugin.main")


def pytest_wall(workdir: Path, *args: str, autoload: bool = False, tree: str | None = None) -> float:
    """One pytest run's wall time; ``tree``: import pytest_smoke from this checkout instead."""
    plugins = () if autoload else PLAIN_PYTEST + (SMOKE_PLUGIN if "--smoke-config" in args else ())
    env = dict(os.environ) if autoload else dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, *args],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
        env=env,
    )
    return time.perf_counter() - started


def median_of(repeat: int, *variants):
    """Run the variants interleaved ``repeat`` times; median wall time of each."""
    times = [[] for _ in variants]
    for _ in range(repeat):
        for index, variant in enumerate(variants):
            times[index].append(variant())
    return [statistics.median(t) for t in times]


def write(workdir: Path, name: str, doc: dict) -> str:
    (workdir / name).write_text(json.dumps(doc))
    return name


def tavern_files(workdir: Path, base_url: str, count: int, ms: int) -> Path:
    folder = workdir / "tavern"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"test_{i:03d}.tavern.yaml").write_text(
            f"test_name: slow {i}\nstages:\n  - name: get\n    request:\n      url: {base_url}/slow?ms={ms}&i={i}\n"
            "      method: GET\n    response:\n      status_code: 200\n"
        )
    return folder


def bare_requests_per_call(url: str, count: int) -> float:
    import requests

    with requests.Session() as session:
        started = time.perf_counter()
        for i in range(count):
            session.get(f"{url}?i={i}", timeout=5)
        return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="another checkout (say `git archive OLD | tar -x -C TREE`): the overhead row runs its "
        "pytest_smoke too, interleaved with this one",
    )
    parser.add_argument(
        "--only",
        choices=["overhead", "sixty", "two-worker", "hung"],
        help="some rows alone: overhead (per-check overhead, e.g. with --repeat 21 for a steadier median), "
        "sixty (row 1), two-worker (the two-worker service) or hung (the hung host and start-up)",
    )
    args = parser.parse_args()
    # As pip does on install: an editable checkout run with PYTHONDONTWRITEBYTECODE would compile
    # the plugin from source in every run, while pytest and requests load compiled. The tree the
    # runs import (another one through PYTHONPATH, for a side-by-side comparison) is compiled.
    compileall.compile_dir(_package_dir(), quiet=1)
    if args.baseline:
        compileall.compile_dir(os.path.join(args.baseline, "pytest_smoke"), quiet=1)
    rows: list[tuple[str, str, str]] = []
    with DemoService() as service, tempfile.TemporaryDirectory() as tmp:
        # Separate folders, so no run collects another variant's tests.
        root = Path(tmp)
        work, empty_dir = root / "smoke", root / "empty"
        for folder in (work, empty_dir):
            folder.mkdir()
            (folder / "pytest.ini").write_text("[pytest]\n")
        (empty_dir / "test_empty.py").write_text("def test_nothing():\n    pass\n")
        empty = lambda: pytest_wall(empty_dir)  # noqa: E731
        if args.only in (None, "sixty"):
            rows += sixty_checks(work, root, empty, service.url, args.repeat)
        if args.only in (None, "overhead"):
            rows.append(per_check_overhead(work, root, empty, service.url, args.repeat, args.baseline))
        if args.only is None:
            rows.append(failing_against_passing(work, empty, service.url, args.repeat))
        if args.only in (None, "two-worker"):
            rows.append(two_worker_service(work, root, empty, args.repeat))
        if args.only in (None, "hung"):
            rows += hung_checks_and_start_up(work, empty, service, args.repeat)

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"median of {args.repeat}\n"
    )
    print("| Scenario | Measured | Comparison |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def sixty_checks(work: Path, root: Path, empty, base: str, repeat: int) -> list[tuple[str, str, str]]:
    """Row 1: 60 checks at 200 ms, concurrent vs one at a time (vs Tavern, if installed)."""
    checks = [health(f"h{i}", f"/slow?ms=200&i={i}") for i in range(60)]
    cfg = write(work, "sixty.json", {"base_url": base, "health_checks": checks})
    fixed = write(work, "sixty-fixed.json", {"base_url": base, "max_concurrency_per_host": 2, "health_checks": checks})
    concurrent = lambda: pytest_wall(work, "--smoke-config", cfg)  # noqa: E731
    sequential = lambda: pytest_wall(work, "--smoke-config", cfg, "--smoke-concurrency", "1")  # noqa: E731
    two_per_host = lambda: pytest_wall(work, "--smoke-config", fixed)  # noqa: E731
    variants = [empty, concurrent, sequential, two_per_host]
    tavern_dir = None
    tavern_note = "not installed (pip install tavern)"
    if shutil.which("tavern-ci") or _importable("tavern"):
        tavern_root = root / "tavern-root"
        tavern_root.mkdir()
        (tavern_root / "pytest.ini").write_text("[pytest]\n")
        tavern_dir = tavern_files(tavern_root, base, 60, 200)
        probe = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "."],
            cwd=tavern_dir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode == 0:
            # Tavern is a plugin itself, so it runs with every installed plugin: in a development
            # checkout that costs it about 0.8 s per run more than the plain environment.
            variants.append(lambda: pytest_wall(tavern_dir, ".", autoload=True))
        else:  # e.g. Tavern 3.7 imports pytest internals that pytest 9.2 removed
            tavern_note = "installed but does not load with this pytest"
            tavern_dir = None
    results = median_of(repeat, *variants)
    empty_s, conc_s, seq_s, fixed_s = results[:4]
    speedup = (seq_s - empty_s) / (conc_s - empty_s)
    rows = [
        (
            "60 checks at 200 ms, defaults (adaptive per-host limit)",
            f"{conc_s:.2f} s wall, {conc_s - empty_s:.2f} s over empty pytest",
            f"{speedup:.1f}x faster than sequential over empty pytest ({seq_s / conc_s:.1f}x wall)",
        ),
        (
            "60 checks at 200 ms, max_concurrency_per_host 2 (the previous default)",
            f"{fixed_s:.2f} s wall, {fixed_s - empty_s:.2f} s over empty pytest",
            f"{(fixed_s - empty_s) / (conc_s - empty_s):.1f}x the defaults' time over empty pytest",
        ),
        (
            "60 checks at 200 ms, --smoke-concurrency 1",
            f"{seq_s:.2f} s wall, {seq_s - empty_s:.2f} s over empty pytest",
            "baseline",
        ),
    ]
    if tavern_dir is not None:
        rows.append(
            (
                "60 Tavern YAML tests, same requests",
                f"{results[4]:.2f} s wall",
                f"{results[4] / conc_s:.1f}x slower than concurrent smoke",
            )
        )
    else:
        rows.append(("Tavern", tavern_note, ""))
    return rows


def per_check_overhead(
    work: Path, root: Path, empty, base: str, repeat: int, baseline: str | None = None
) -> tuple[str, str, str]:
    """Row 2: 1000 checks at 0 ms, against a hand-written pytest + requests suite (one parametrized
    test, one Session), a bare requests loop and, with ``baseline``, another checkout, side by side."""
    cfg = write(
        work,
        "thousand.json",
        {"base_url": base, "health_checks": [health(f"z{i}", f"/health?i={i}") for i in range(1000)]},
    )
    hand_dir = root / "hand"
    hand_dir.mkdir()
    (hand_dir / "pytest.ini").write_text("[pytest]\n")
    (hand_dir / "test_hand.py").write_text(
        "import pytest\nimport requests\n\nSESSION = requests.Session()\n\n\n"
        "@pytest.mark.parametrize('i', range(1000))\ndef test_health(i):\n"
        f"    assert SESSION.get('{base}/health?i=%d' % i, timeout=5).status_code == 200\n"
    )
    variants = [lambda: pytest_wall(work, "--smoke-config", cfg), lambda: pytest_wall(hand_dir), empty]
    if baseline:
        variants.append(lambda: pytest_wall(work, "--smoke-config", cfg, tree=baseline))
    smoke_1000, hand_1000, empty_s, *old = median_of(repeat, *variants)
    bare = statistics.median(bare_requests_per_call(base + "/health", 1000) for _ in range(repeat))
    per_check = (smoke_1000 - empty_s) / 1000
    per_hand = (hand_1000 - empty_s) / 1000
    against_old = f"; the baseline checkout {(old[0] - empty_s):.2f} ms per check" if old else ""
    return (
        "1000 checks at 0 ms",
        f"{per_check * 1000:.2f} ms per check over empty pytest",
        f"hand-written pytest + requests {per_hand * 1000:.2f} ms per test ({(per_check - per_hand) * 1000:+.2f} ms); "
        f"bare requests loop {bare * 1000:.2f} ms per call{against_old}",
    )


def failing_against_passing(work: Path, empty, base: str, repeat: int) -> tuple[str, str, str]:
    """Row 3: 1000 checks failing at once (nothing listens on the port) against 1000 passing."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    passing = write(
        work,
        "pass1000.json",
        {"base_url": base, "health_checks": [health(f"p{i}", f"/health?i={i}") for i in range(1000)]},
    )
    failing = write(
        work,
        "fail1000.json",
        {"base_url": dead, "health_checks": [health(f"f{i}", f"/health?i={i}") for i in range(1000)]},
    )
    empty_s, pass_s, fail_s = median_of(
        repeat,
        empty,
        lambda: pytest_wall(work, "--smoke-config", passing),
        lambda: pytest_wall(work, "--smoke-config", failing),
    )
    return (
        "1000 checks failing at once (connection refused)",
        f"{fail_s:.2f} s wall, {fail_s - empty_s:.2f} s over empty pytest",
        f"1000 passing: {pass_s:.2f} s wall; "
        f"failing costs {(fail_s - empty_s) / (pass_s - empty_s):.1f}x passing over empty pytest",
    )


TWO_WORKER_APP = """
import time

def app(environ, start_response):
    time.sleep(0.3)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"status": "ok"}']
"""


def two_worker_service(work: Path, root: Path, empty, repeat: int) -> tuple[str, str, str]:
    """Row 4: 30 checks at 300 ms against gunicorn with two sync workers (its own minimum: 4.5 s)."""
    import socket

    app_dir = root / "two-worker"
    app_dir.mkdir()
    (app_dir / "slow_app.py").write_text(TWO_WORKER_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(app_dir),
            "slow_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        cfg = write(
            work,
            "two-worker.json",
            {
                "base_url": f"http://127.0.0.1:{port}",
                "health_checks": [health(f"w{i}", f"/w{i}", timeout=2) for i in range(30)],
            },
        )
        report = work / "two-worker-report.json"
        empty_s, run_s = median_of(
            repeat, empty, lambda: pytest_wall(work, "--smoke-config", cfg, "--smoke-report", str(report))
        )
        verdict = json.loads(report.read_text())["verdict"]
    finally:
        proc.terminate()
        proc.wait(10)
    return (
        "30 checks at 300 ms, gunicorn with 2 sync workers, 2 s timeouts",
        f"{run_s:.2f} s wall, {run_s - empty_s:.2f} s over empty pytest",
        f"{verdict['passed']} of 30 passed, {verdict['warnings']} warnings; "
        f"{(run_s - empty_s) / 4.5:.2f}x the service's own minimum (4.5 s)",
    )


def hung_checks_and_start_up(work: Path, empty, service: DemoService, repeat: int) -> list[tuple[str, str, str]]:
    """Rows 3 and 4: ten hung checks with 2 s timeouts; start-up with one check."""
    base = service.url
    empty_s = median_of(repeat, empty)[0]
    service.faults.add("live-hang")
    cfg = write(
        work,
        "hang.json",
        {"base_url": base, "health_checks": [health(f"hang{i}", f"/health/live?i={i}", timeout=2) for i in range(10)]},
    )
    (hang_s,) = median_of(max(1, repeat - 1), lambda: pytest_wall(work, "--smoke-config", cfg))
    service.faults.discard("live-hang")
    cfg = write(work, "one.json", {"base_url": base, "health_checks": [health("one", "/health")]})
    smoke_one, bare_one = median_of(repeat, lambda: pytest_wall(work, "--smoke-config", cfg), empty)
    return [
        (
            "10 hung checks, 2 s timeouts",
            f"{hang_s:.2f} s wall ({hang_s - empty_s:.2f} s over empty pytest)",
            "sequential would be 20 s",
        ),
        (
            "start-up: one check vs bare pytest",
            f"{smoke_one:.2f} s vs {bare_one:.2f} s",
            f"+{(smoke_one - bare_one) * 1000:.0f} ms",
        ),
    ]


def _package_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("pytest_smoke")
    assert spec is not None and spec.submodule_search_locations, "pytest_smoke is not importable"
    return str(list(spec.submodule_search_locations)[0])


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
