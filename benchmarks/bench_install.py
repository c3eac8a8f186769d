"""The README's first command, timed: a fresh venv, ``pip install .`` and the bundled demo.
A script, not a test: run it by hand.

    python benchmarks/bench_install.py [--extras all]

Each phase is timed on its own (venv, install, demo) in a new temporary folder, so the figure is
what a new user waits for on this machine. pip uses whatever index and cache the machine is set up
with (PIP_INDEX_URL, PIP_FIND_LINKS); a warm cache is noted in the output, since it is most of the
install time. ``--extras all`` times the previous README command (gRPC, pika, prometheus-client).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(label: str, command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{label} failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"{label:<8} {seconds:6.1f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="install .[EXTRAS] instead of the plain package")
    args = parser.parse_args()
    target = f".[{args.extras}]" if args.extras else "."
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        python = str(venv / "bin" / "python")
        print(f"pip install {target} (PIP_FIND_LINKS={os.environ.get('PIP_FIND_LINKS', '')!r})")
        total = timed("venv", [sys.executable, "-m", "venv", str(venv)], ROOT)
        total += timed("install", [python, "-m", "pip", "install", "--quiet", target], ROOT)
        demo = [
            "--smoke-config",
            "example_suites/demo/smoke-test-hook.json",
            "example_suites/demo",
            "-p",
            "no:cacheprovider",
        ]
        total += timed("demo", [python, "-m", "pytest", *demo], ROOT)
        print(f"{'total':<8} {total:6.1f} s")


if __name__ == "__main__":
    main()
