"""The Django smoke site (tests/django_site) served by a real gunicorn on a free port: migrated,
with one user, and faults switched on and off through a file the site reads on each request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from servers import free_port, wait_for_port

SITE = Path(__file__).parent / "django_site"
USER, PASSWORD = "smoke", "smoke-Pass-6620"


class DjangoSite:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.faults_file = workdir / "faults"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "smokesite.settings",
            "PYTHONPATH": str(SITE),
            "SMOKESITE_DB": str(workdir / "site.sqlite3"),
            "SMOKESITE_FAULTS": str(self.faults_file),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DjangoSite:
        django = [sys.executable, "-m", "django"]
        subprocess.run(
            [*django, "migrate", "--no-input", "-v", "0"], env=self.env, check=True, timeout=120, capture_output=True
        )
        create = (
            f"from django.contrib.auth.models import User; User.objects.create_user({USER!r}, password={PASSWORD!r})"
        )
        subprocess.run([*django, "shell", "-c", create], env=self.env, check=True, timeout=60, capture_output=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "1",
                "--threads",
                "4",
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "30",
                "--log-level",
                "warning",
                "smokesite.wsgi:application",
            ],
            env=self.env,
            cwd=SITE,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 30, self.proc)
        return self

    def fault(self, *names: str) -> None:
        self.faults_file.write_text(" ".join(names))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
