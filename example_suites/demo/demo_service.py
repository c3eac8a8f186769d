"""A small service to smoke-test: health endpoints, cookie and token login, a profile, resources
and a rate-limited endpoint. Standard library only, so the demo runs on a fresh machine.

Faults can be switched on to see a failing run, from the environment (``DEMO_FAULTS=ready-503``)
or in-process (``service.faults.add("login-500")``):

- ``ready-503``: ``/health/ready`` answers 503 (database connection failed)
- ``live-hang``: ``/health/live`` never answers within any sane timeout
- ``login-500``: login answers 500
- ``profile-401``: the profile rejects every session
- ``no-rate-limit``: ``/api/limited`` never answers 429
- ``resources-500``: ``/api/resources`` answers 500

Run it alone with ``python demo_service.py [PORT]``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEMO_USER = "test@example.com"
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "test")
RATE_LIMIT = 5  # requests per window on /api/limited
RATE_WINDOW_SECONDS = 60.0
HANG_SECONDS = 30.0


class DemoService:
    """The demo service on 127.0.0.1; ``port=0`` picks a free port."""

    def __init__(self, port: int = 0, faults: set[str] | None = None):
        env_faults = {f.strip() for f in os.environ.get("DEMO_FAULTS", "").split(",") if f.strip()}
        self.faults: set[str] = set(faults if faults is not None else env_faults)
        self.sessions: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.resources: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.hits: list[float] = []
        self.barriers: dict[int, threading.Barrier] = {}
        self.flaky_counts: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "DemoService":
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "DemoService":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a check that timed out on a hung endpoint) is expected here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection to the demo service; :func:`_handler` binds it to a DemoService."""

    service: DemoService
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- helpers --------------------------------------------------------------------------
    def reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self) -> Any:
        raw = self.request_body
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def user(self) -> str | None:
        if "profile-401" in self.service.faults:
            return None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.service.tokens:
            return self.service.tokens[auth[7:]]
        match = re.search(r"(?:^|;\s*)session=([^;]+)", self.headers.get("Cookie", ""))
        if match and match.group(1) in self.service.sessions:
            return self.service.sessions[match.group(1)]
        return None

    def route(self, method: str) -> None:
        # The whole request is read before any answer, errors included: bytes left unread on a
        # kept-alive connection would be parsed as the next request.
        length = int(self.headers.get("Content-Length") or 0)
        self.request_body = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?", 1)[0]
        with self.service.lock:
            self.service.requests.append((method, path))
        if path == "/api/auth/login" and method == "POST":
            return self.login()
        if path == "/api/auth/logout" and method == "POST":
            return self.reply(204, None, {"Set-Cookie": "session=; Max-Age=0; Path=/"})
        if path == "/api/resources" or path.startswith("/api/resources/"):
            return self.resources(method, path)
        answer = {
            "/health": self.health,
            "/health/ready": self.ready,
            "/health/live": self.live,
            "/api/user/profile": self.profile,
            "/api/limited": self.limited,
            "/flaky": self.flaky,
            "/barrier": self.barrier,
            "/slow": self.slow,
        }.get(path)
        if answer is not None:
            return answer()
        return self.reply(404, {"error": f"no route for {method} {path}"})

    def health(self) -> None:
        self.reply(200, {"status": "ok"})

    def ready(self) -> None:
        if "ready-503" in self.service.faults:
            return self.reply(503, {"status": "unavailable", "database": "connection failed"})
        return self.reply(200, {"status": "ready", "checks": {"database": "ok", "cache": "ok"}})

    def live(self) -> None:
        if "live-hang" in self.service.faults:
            time.sleep(HANG_SECONDS)
        return self.reply(200, {"status": "alive"}, {"X-Service-Version": "demo-1.0"})

    def profile(self) -> None:
        user = self.user()
        if user is None:
            return self.reply(401, {"error": "not authenticated"})
        return self.reply(200, {"email": user, "name": "Test User"})

    def slow(self) -> None:
        delay = float(re.search(r"ms=(\d+)", self.path).group(1)) if "ms=" in self.path else 200
        time.sleep(delay / 1000)
        return self.reply(200, {"status": "ok", "delay_ms": delay})

    def login(self) -> None:
        if "login-500" in self.service.faults:
            return self.reply(500, {"error": "auth service timeout"})
        body = self.body() or {}
        if body.get("email") != DEMO_USER or body.get("password") != DEMO_PASSWORD:
            return self.reply(401, {"error": "invalid credentials"})
        session, token = secrets.token_hex(16), secrets.token_hex(24)
        with self.service.lock:
            self.service.sessions[session] = DEMO_USER
            self.service.tokens[token] = DEMO_USER
        self.reply(
            200,
            {"access_token": token, "token_type": "bearer", "user": {"email": DEMO_USER}},
            {"Set-Cookie": f"session={session}; Path=/; HttpOnly"},
        )

    def flaky(self) -> None:
        """Fails the first ``fail`` requests for each ``key`` with 503 (a service warming up)."""
        key = re.search(r"key=([^&]+)", self.path).group(1) if "key=" in self.path else ""
        fail = int(re.search(r"fail=(\d+)", self.path).group(1)) if "fail=" in self.path else 1
        with self.service.lock:
            seen = self.service.flaky_counts[key] = self.service.flaky_counts.get(key, 0) + 1
        if seen <= fail:
            return self.reply(503, {"status": "warming up", "attempt": seen})
        return self.reply(200, {"status": "ok", "attempt": seen})

    def barrier(self) -> None:
        """Answers 200 only when ``n`` requests are in flight together (proves concurrency);
        503 once ``wait`` seconds (default 5) pass without them."""
        parties = int(re.search(r"n=(\d+)", self.path).group(1)) if "n=" in self.path else 2
        found = re.search(r"wait=([\d.]+)", self.path)
        wait = float(found.group(1)) if found else 5.0
        with self.service.lock:
            barrier = self.service.barriers.setdefault((parties, wait), threading.Barrier(parties, timeout=wait))
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return self.reply(503, {"error": f"fewer than {parties} concurrent requests"})
        return self.reply(200, {"status": "ok", "concurrent": parties})

    def limited(self) -> None:
        now = time.monotonic()
        with self.service.lock:
            self.service.hits = [t for t in self.service.hits if now - t < RATE_WINDOW_SECONDS]
            self.service.hits.append(now)
            over = len(self.service.hits) > RATE_LIMIT
        if over and "no-rate-limit" not in self.service.faults:
            return self.reply(429, {"error": "rate limit exceeded"}, {"Retry-After": "60"})
        return self.reply(200, {"status": "ok"})

    def resources(self, method: str, path: str) -> None:
        if "resources-500" in self.service.faults:
            return self.reply(500, {"error": "internal error"})
        match = re.fullmatch(r"/api/resources/(\d+)", path)
        with self.service.lock:
            if method == "GET" and path == "/api/resources":
                return self.reply(200, {"items": list(self.service.resources.values())})
            if method == "POST" and path == "/api/resources":
                if self.user() is None:
                    return self.reply(401, {"error": "not authenticated"})
                body = self.body()
                if not isinstance(body, dict):
                    return self.reply(400, {"error": "expected a JSON object"})
                rid = self.service.next_id
                self.service.next_id += 1
                self.service.resources[rid] = {"id": rid, **body}
                return self.reply(201, self.service.resources[rid], {"X-Resource-Id": str(rid)})
            if match and int(match.group(1)) in self.service.resources:
                rid = int(match.group(1))
                if method == "GET":
                    return self.reply(200, self.service.resources[rid])
                if method == "DELETE":
                    del self.service.resources[rid]
                    return self.reply(204)
            return self.reply(404, {"error": "no such resource"})

    def do_GET(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def do_PUT(self) -> None:
        self.route("PUT")

    def do_HEAD(self) -> None:
        self.route("HEAD")


def _handler(service: DemoService) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"service": service})


if __name__ == "__main__":
    demo = DemoService(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000).start()
    print(f"demo service on {demo.url} (faults: {', '.join(sorted(demo.faults)) or 'none'}); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        demo.stop()
