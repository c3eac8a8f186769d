"""How soon the rollback starts after a critical failure. A script, not a test: run it by hand.

    python benchmarks/bench_fail_fast.py [--repeat 3]

Ten checks take 3 s each; a readiness check answers 503 at once. Auto-rollback is on without
confirmation, against the apps/v1 test double (tests/kube_double.py). The figure is the time from
the moment the service sent the 503 to the moment the rollback's PATCH of the pod template reached
the API, measured in this process (both servers run here). Every other knob at its default (the
adaptive per-host limit included). Variants, interleaved in one run:

- ``fail_fast``: once a rollback is certain, the checks in flight are abandoned;
- ``no fail_fast``: the verdict waits for the checks in flight (about 3 s);
- each with the readiness check listed last (its 503 comes once the slow checks got their slots)
  and first (its 503 comes at once, and the verdict waits for all ten slow checks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from kube_double import KubeDouble  # noqa: E402

GOOD, BAD = "django:v1.21.8-stable", "django:v1.22.0-context-api"
SLOW_SECONDS = 3.0


class Service:
    """/ready answers 503 at once (its time is recorded); /slow answers after SLOW_SECONDS."""

    def __init__(self) -> None:
        self.failed_at: float | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/slow"):
                    time.sleep(SLOW_SECONDS)
                    status = 200
                else:
                    status = 503
                body = b'{"status": "down"}' if status == 503 else b'{"status": "ok"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if status == 503 and outer.failed_at is None:
                    outer.failed_at = time.monotonic()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def one_run(workdir: Path, fail_fast: bool, readiness_first: bool = False) -> float:
    api = KubeDouble(polls_to_complete=1).start()
    service = Service()
    try:
        api.add_deployment("django", {"django": GOOD})
        api.deploy("prod", "django", {"django": BAD})
        kubeconfig = api.write_kubeconfig(workdir / "kubeconfig")
        checks = [{"name": f"slow{i}", "endpoint": f"/slow{i}", "timeout_seconds": 5} for i in range(10)]
        checks.insert(
            0 if readiness_first else len(checks), {"name": "readiness", "endpoint": "/ready", "timeout_seconds": 5}
        )
        config = {
            "base_url": service.url,
            "fail_fast": fail_fast,
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": False},
            "health_checks": checks,
            "rollback_strategy": {"deployment": "django", "namespace": "prod", "kubeconfig": str(kubeconfig)},
        }
        (workdir / "smoke.json").write_text(json.dumps(config))
        patched_at: list[float] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if any(p[0] == "deployments" and "/spec/template" in json.dumps(p[2]) for p in list(api.patches)):
                    patched_at.append(time.monotonic())
                    return
                time.sleep(0.002)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--smoke-config",
                "smoke.json",
                "-p",
                "no:cacheprovider",
                "-q",
                "-p",
                "no:randomly",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        done.set()
        watcher.join(timeout=5)
        if proc.returncode != 1 or not patched_at or service.failed_at is None:
            raise SystemExit(f"unexpected run (exit {proc.returncode}):\n{proc.stdout[-2000:]}")
        return patched_at[0] - service.failed_at
    finally:
        service.stop()
        api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    variants = {
        "fail_fast": (True, False),
        "no fail_fast": (False, False),
        "fail_fast, readiness first": (True, True),
        "no fail_fast, readiness first": (False, True),
    }
    results: dict[str, list[float]] = {label: [] for label in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # interleaved, so every variant sees the same machine
            for label, (fail_fast, first) in variants.items():
                run_dir = Path(tmp) / f"{label.replace(' ', '_').replace(',', '')}-{len(results[label])}"
                run_dir.mkdir()
                results[label].append(one_run(run_dir, fail_fast, first))
    print("| Variant | 503 answer -> rollback PATCH (median) | runs |")
    print("| --- | --- | --- |")
    for label, values in results.items():
        print(f"| {label} | {statistics.median(values):.2f} s | {', '.join(f'{v:.2f}' for v in values)} |")
    for order in ("", ", readiness first"):
        ratio = statistics.median(results[f"no fail_fast{order}"]) / statistics.median(results[f"fail_fast{order}"])
        print(f"\nfail_fast{order}: the rollback starts {ratio:.1f}x sooner on this machine.")


if __name__ == "__main__":
    main()
