"""Real servers for the tests, started from the system binaries on free ports in temp dirs.

Each ``start_*`` returns a handle whose ``stop()`` ends every process it started. Nothing here
talks to anything but 127.0.0.1, and every wait loop is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {seconds} s")


def _binary(name: str, dirs: list[Path] = ()) -> str:  # type: ignore[assignment]
    for directory in dirs:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed (bash .ci/run installs it from Debian packages)")
    return found


@dataclass
class Server:
    port: int
    procs: list[subprocess.Popen] = field(default_factory=list)
    url: str = ""
    password: str = ""
    cleanup: list = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.procs[0].pid

    def pause(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        for action in self.cleanup:
            try:
                action()
            except Exception:
                pass


def _as_user(cmd: list[str], user: str) -> list[str]:
    """PostgreSQL refuses to run as root; CI runs as root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", user, "--"] + cmd


def start_postgres(password: str) -> Server:
    initdb, postgres = _binary("initdb", PG_BIN_DIRS), _binary("postgres", PG_BIN_DIRS)
    # Not under pytest's tmp_path: its 0700 parents would lock the postgres user out.
    base = Path(tempfile.mkdtemp(prefix="smoke-pg-"))
    os.chmod(base, 0o700)
    data = base / "pgdata"
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        _as_user(
            [initdb, "-D", str(data), "-U", "app", "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"],
            "postgres",
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    proc = subprocess.Popen(
        _as_user(
            [postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(base), "-c", "fsync=off"],
            "postgres",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(port=port, procs=[proc], password=password)
    server.cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
    try:
        wait_for_port(port, 30, proc)
        _wait_for_postgres_ready(port, password)
    except Exception:
        server.stop()
        raise
    server.url = f"postgresql://app:{password}@127.0.0.1:{port}/postgres"
    return server


def _wait_for_postgres_ready(port: int, password: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(
                host="127.0.0.1", port=port, user="app", password=password, dbname="postgres", connect_timeout=2
            ).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_redis(base: Path, password: str | None = None) -> Server:
    binary = _binary("redis-server")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(base)]
    if password:
        cmd += ["--requirepass", password]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = Server(port=port, procs=[proc], password=password or "")
    try:
        wait_for_port(port, 15, proc)
    except Exception:
        server.stop()
        raise
    auth = f":{password}@" if password else ""
    server.url = f"redis://{auth}127.0.0.1:{port}/0"
    return server


def start_rabbitmq(base: Path, user: str, password: str) -> Server:
    if not Path(RABBITMQ_SERVER).exists():
        raise RuntimeError("rabbitmq-server is not installed (bash .ci/run installs it from Debian packages)")
    base.mkdir(parents=True, exist_ok=True)
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    plugins = base / "enabled_plugins"
    plugins.write_text("[].\n")
    node = f"smoke{port}@localhost"
    env = {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_DEFAULT_USER": user,
        "RABBITMQ_DEFAULT_PASS": password,
    }
    (base / "rabbitmq.conf").write_text("listeners.tcp.default = 127.0.0.1:%d\n" % port)
    proc = subprocess.Popen(
        [RABBITMQ_SERVER], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    server = Server(port=port, procs=[proc], password=password)
    server.cleanup.append(
        lambda: subprocess.run(["epmd", "-port", str(epmd_port), "-kill"], capture_output=True, timeout=10, env=env)
    )
    try:
        wait_for_port(port, 90, proc)
    except Exception:
        server.stop()
        raise
    server.url = f"amqp://{user}:{password}@127.0.0.1:{port}/%2F"
    return server


def start_pushgateway(base: Path) -> Server:
    """Debian's prometheus-pushgateway on a free port, its persistence file in ``base`` (Debian's
    build defaults to one shared file under /var/lib/prometheus)."""
    port = free_port()
    cmd = [
        _binary("prometheus-pushgateway"),
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={base / 'pushgateway.data'}",
        "--log.level=warn",
    ]
    return _start_logged(cmd, base, port, "pushgateway", 15)


def start_prometheus(base: Path, scrape_targets: list[str], honor_labels: bool = True) -> Server:
    """Debian's prometheus, scraping ``scrape_targets`` (host:port) every second, its data in ``base``."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    targets = ", ".join(f"'{target}'" for target in scrape_targets)
    (base / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: targets\n    honor_labels: {str(honor_labels).lower()}\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )
    cmd = [
        _binary("prometheus"),
        f"--config.file={base / 'prometheus.yml'}",
        f"--storage.tsdb.path={base / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return _start_logged(cmd, base, port, "prometheus", 30)


def _start_logged(cmd: list[str], base: Path, port: int, name: str, seconds: float) -> Server:
    """Start ``cmd`` with its output in ``base/NAME.log``; return once it listens on ``port``."""
    base.mkdir(parents=True, exist_ok=True)
    log = open(base / f"{name}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    server = Server(port=port, procs=[proc], url=f"http://127.0.0.1:{port}", cleanup=[log.close])
    try:
        wait_for_port(port, seconds, proc)
    except Exception:
        server.stop()
        raise
    return server


class LocalHTTPServer:
    """A threaded HTTP server on 127.0.0.1 for a handler class; ``stop()`` ends it."""

    def __init__(self, handler: type, path: str = ""):
        import threading
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler:
    """A mixin for small test apps on http.server: no request log, and ``answer`` sends a JSON
    (or raw) body with its length and type. Use as ``class App(QuietHandler, BaseHTTPRequestHandler)``."""

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: object = None, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", content_type)  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(data)))  # type: ignore[attr-defined]
        self.end_headers()  # type: ignore[attr-defined]
        self.wfile.write(data)  # type: ignore[attr-defined]
