from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import trustme  # noqa: F401 - see below
import yaml

# cryptography (under trustme) must be imported before any test that uses pytester: pytester drops
# the modules a test imported when the test ends, and cryptography's compiled core cannot be
# imported a second time in one process ("curve must be an EllipticCurve instance").
import servers
from servers import free_port


# The modules an in-process pytester run would otherwise import afresh each run: pytester drops
# what a run imported when it ends, and classes imported twice no longer match (a second
# requests.cookies, a second cryptography core). Imported once here, they are kept.
def _preimport() -> None:
    import importlib
    import pkgutil

    import pytest_smoke

    for module in pkgutil.walk_packages(pytest_smoke.__path__, "pytest_smoke."):
        importlib.import_module(module.name)
    for name in (
        "requests",
        "urllib3",
        "yaml",
        "jsonschema",
        "psycopg",
        "redis",
        "pika",
        "kubernetes",
        "grpc",
        "grpc_health.v1.health_pb2_grpc",
        "prometheus_client",
        "junit_xml",
        "xdist",
        "xdist.plugin",
        "pytest_timeout",
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


_preimport()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "example_suites" / "demo"))
from demo_service import DemoService  # noqa: E402
from helpers import AMQP_PASSWORD, BAD_IMAGE, GOOD_IMAGE, PG_PASSWORD, REDIS_PASSWORD, SMTP_PASSWORD, Receiver  # noqa: E402,F401

# The pytest runs the tests start load this plugin and the two it builds on, nothing else installed:
# autoloading every installed plugin (hypothesis, html, benchmark, ...) cost 2.5 s per child run.
# A test that needs another plugin names it: @pytest.mark.child_plugins("rerunfailures"), or
# @pytest.mark.child_plugins(ALL_PLUGINS) for a user's environment with everything installed.
CHILD_PLUGINS = ("deploy_smoke", "timeout", "xdist")
ALL_PLUGINS = "*"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--load-runs",
        type=int,
        default=3,
        dest="load_runs",
        help="runs of each repeated-load test (mark slow), each with its own seeded faults; 20 before a release",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The tests that drive pytest itself: CI runs them once more on the oldest supported pytest.
    for item in items:
        if "pytester" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pytest_integration)


@pytest.fixture(autouse=True)
def _only_the_plugins_asked_for(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when it starts: set it after
    marker = request.node.get_closest_marker("child_plugins")
    asked = marker.args if marker else ()
    if ALL_PLUGINS in asked:
        monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
        monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        return
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(f"-p {name}" for name in (*CHILD_PLUGINS, *asked)))


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory built once per test run, shared by every xdist worker (the first to take the
    lock builds it, the others wait and reuse it). Without xdist it lives in this run's own
    basetemp, so a later run never reuses what an earlier code built."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run only
    target = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".built").exists():
            build(target)
            (target / ".built").touch()
    return target


@pytest.fixture
def demo() -> Iterator[DemoService]:
    service = DemoService(faults=set()).start()
    yield service
    service.stop()


@pytest.fixture
def write_config(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write a config document (dict or raw text) into the pytester dir; returns its path."""

    def write(doc: Any, name: str = "smoke.json") -> Path:
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(doc, str):
            path.write_text(doc)
        elif name.endswith((".yaml", ".yml")):
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        else:
            path.write_text(json.dumps(doc, indent=2))
        return path

    return write


# -- the Kubernetes API test double ----------------------------------------------------------------


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Any]:
    """deployment/django in prod: revision 1 runs GOOD_IMAGE, revision 2 (live) BAD_IMAGE."""
    from kube_double import KubeDouble

    api = KubeDouble(polls_to_complete=3).start()
    api.add_deployment("django", {"django": GOOD_IMAGE})
    api.deploy("prod", "django", {"django": BAD_IMAGE})
    api.kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    yield api
    api.stop()


# -- real servers, once per session ----------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.Server]:
    server = servers.start_postgres(PG_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """A fresh Pushgateway per test: pushed groups never leak from one test to the next."""
    server = servers.start_pushgateway(tmp_path_factory.mktemp("pushgateway"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.start_redis(tmp_path_factory.mktemp("redis-auth"), password=REDIS_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    import pika

    server = servers.start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"), "smoke", AMQP_PASSWORD)
    connection = pika.BlockingConnection(pika.URLParameters(server.url))
    connection.channel().queue_declare(queue="orders", durable=False)
    connection.close()
    yield server
    server.stop()


# -- a misbehaving HTTP server ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    import gzip
    import io

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as handle:
        block = b"\0" * (1024 * 1024)
        for _ in range(200):
            handle.write(block)
    return buffer.getvalue()


class FaultServer:
    """Raw-socket HTTP server that misbehaves on purpose, one mode per path.

    /hang: accepts, never answers. /trickle: headers, then one body byte a second.
    /trickle-headers: one header byte a second. /reset: closes mid-response with RST.
    /redirect-loop: redirects to itself. /big: a 50 MB body. /badjson: 200 with broken JSON.
    /gzip-bomb: 1 MB of gzip that inflates to 200 MB. The first path segment picks the mode
    (/big/api/v1/query is /big). Every connection thread ends within ``max_seconds``.
    """

    def __init__(self, max_seconds: float = 20.0):
        self.max_seconds = max_seconds
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        end = time.monotonic() + self.max_seconds
        conn.settimeout(2)
        try:
            request = conn.recv(65536).decode("latin-1")
            # The first path segment names the mode: /gzip-bomb/api/v1/query?query=up is /gzip-bomb.
            path = "/" + (request.split(" ", 2)[1] if " " in request else "/").split("?")[0].split("/")[1]
            modes = {
                "/hang": self._hang,
                "/trickle": self._trickle,
                "/trickle-headers": self._trickle_headers,
                "/redirect-loop": self._redirect_loop,
                "/big": self._big,
                "/badjson": self._badjson,
                "/gzip-bomb": self._gzip_bomb,
                "/reset": self._reset,
            }
            if path in modes:
                modes[path](conn, end)
        except OSError:
            pass
        finally:
            conn.close()

    def _going_on(self, end: float) -> bool:
        return time.monotonic() < end and not self._stop.is_set()

    def _hang(self, conn: socket.socket, end: float) -> None:
        while self._going_on(end):
            time.sleep(0.1)

    def _trickle(self, conn: socket.socket, end: float) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n")
        while self._going_on(end):
            conn.sendall(b"x")
            time.sleep(1)

    def _trickle_headers(self, conn: socket.socket, end: float) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100:
            if time.monotonic() > end or self._stop.is_set():
                break
            conn.sendall(bytes([byte]))
            time.sleep(0.5)

    def _redirect_loop(self, conn: socket.socket, end: float) -> None:
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: /redirect-loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    def _big(self, conn: socket.socket, end: float) -> None:
        size = 50 * 1024 * 1024
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b" " * 65536
        sent = 0
        while sent < size and self._going_on(end):
            conn.sendall(chunk)
            sent += len(chunk)

    def _badjson(self, conn: socket.socket, end: float) -> None:
        body = b'{"status": "ok",'
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    def _gzip_bomb(self, conn: socket.socket, end: float) -> None:
        body = gzip_bomb()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )

    def _reset(self, conn: socket.socket, end: float) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.stop()


# -- notification receivers ------------------------------------------------------------------------


@pytest.fixture
def receiver():
    server = Receiver(reply={"incident": "INC-2026-0542"})
    yield server
    server.stop()


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.content.decode("utf-8", "replace"))
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"smoke" and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False)
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()


# -- a real Django site under gunicorn (tests/web_app.py) ---------------------------------------------


@pytest.fixture(scope="session")
def django_site_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("django")
    pytest.importorskip("health_check")
    from web_app import DjangoSite

    site = DjangoSite(tmp_path_factory.mktemp("django-site")).start()
    yield site
    site.stop()


@pytest.fixture
def django_site(django_site_server: Any) -> Iterator[Any]:
    """The running Django site, with no fault switched on (and none left on afterwards)."""
    django_site_server.fault()
    yield django_site_server
    django_site_server.fault()
