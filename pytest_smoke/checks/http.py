"""HTTP exchanges with a total deadline and the ``expect`` conditions.

Shared by health checks, ``http`` dependency checks and critical-path steps. ``exchange`` never
lets a requests exception escape: every failure becomes a :class:`CheckFailed` in operator words.
"""

from __future__ import annotations

import json
import shlex
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urljoin, urlsplit

import requests

from .. import __version__
from ..redact import MASK, Redactor, is_secret_name, shorten
from .base import CheckContext, CheckFailed, CheckNotEvaluated, CheckResult, CheckTimeout, Deadline, run_with_deadline

# Requests the runner could not even build: its problem, never the service's.
NOT_SENDABLE: tuple[type[Exception], ...] = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidJSONError,
    requests.exceptions.URLRequired,
)
try:  # urllib3 raises it for a host it cannot parse ("a..b")
    from urllib3.exceptions import LocationParseError

    NOT_SENDABLE = (*NOT_SENDABLE, LocationParseError)
except ImportError:  # pragma: no cover
    pass

# Reading is capped so a runaway (or decompression-bomb) body cannot exhaust memory.
MAX_BODY_BYTES = 1024 * 1024
EXCERPT_CHARS = 300
MAX_REDIRECTS = 10
USER_AGENT = f"pytest-smoke/{__version__}"


@dataclass
class Reply:
    """A response read within the deadline."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    url: str
    truncated: bool = False
    cookies: dict[str, str] = field(default_factory=dict)
    redactor: Redactor | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        if self.truncated:
            raise ValueError(f"body larger than {MAX_BODY_BYTES // 1024} KiB was not read in full")
        return json.loads(self.body)

    def excerpt(self) -> str:
        """A short, printable, redacted excerpt: redacted before it is cut (a cut secret no longer
        matches), control bytes escaped (a body cannot rewrite a CI log), binary bodies summarised."""
        if is_binary(self.body):
            kind = self.headers.get("Content-Type", "unknown type")
            return f"(binary, {len(self.body)} bytes, {kind})"
        text = printable(" ".join(self.text.split()))
        redactor = self.redactor or Redactor()
        return redactor.excerpt(text, EXCERPT_CHARS)


def join_url(base_url: str | None, endpoint: str) -> str:
    if "://" in endpoint or not base_url:
        return endpoint
    return urljoin(base_url.rstrip("/") + "/", endpoint.lstrip("/"))


# Headers that carry no credential: kept when a redirect leaves the origin, all others are dropped.
SAFE_ON_REDIRECT = frozenset({"user-agent", "accept", "accept-encoding", "accept-language", "connection", "content-type", "content-length"})


class SmokeSession(requests.Session):
    """A session that drops every configured header and cookie on a redirect to another origin
    (or from https to http), as browsers do with credentials; requests alone drops Authorization only."""

    redactor: Redactor | None = None
    shared: requests.adapters.HTTPAdapter | None = None  # the run's connection pool: never closed here

    def close(self) -> None:
        for adapter in self.adapters.values():
            if adapter is not self.shared:
                adapter.close()

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        if self.should_strip_auth(response.request.url, prepared_request.url):  # type: ignore[no-untyped-call]
            if prepared_request.body is not None:  # a 307/308 would re-send the body (a login) there
                raise CheckNotEvaluated(
                    f"{response.request.method} {_origin(response.request.url)} answered {response.status_code} "
                    f"to another origin ({_origin(prepared_request.url)}): not followed, because the request "
                    "body (credentials, a payload) would be sent there too",
                    kind="cross_origin_redirect",
                )
            for name in list(prepared_request.headers):
                if name.lower() not in SAFE_ON_REDIRECT:
                    del prepared_request.headers[name]


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def is_binary(body: bytes) -> bool:
    """NUL bytes, or text that is mostly not UTF-8: a body to summarise, not to print."""
    sample = body[:4096]
    if b"\0" in sample:
        return True
    return sample.decode("utf-8", errors="replace").count("\ufffd") > len(sample) // 10 + 1


def printable(text: str) -> str:
    """Escape control characters (ESC, BEL, NUL...) so they print as text, never act on a terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def connection_pool(size: int) -> requests.adapters.HTTPAdapter:
    """One keep-alive connection pool for a run's checks, as a hand-written requests suite keeps
    one Session: no TCP (and TLS) handshake per check. Thread-safe (urllib3's PoolManager); cookies
    and headers stay per check, in each check's own session."""
    return requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=max(1, size))


def new_session(ctx: CheckContext) -> requests.Session:
    session = SmokeSession()
    if ctx.connections is not None:
        session.shared = ctx.connections
        session.mount("http://", ctx.connections)
        session.mount("https://", ctx.connections)
    session.redactor = ctx.redactor
    session.headers["User-Agent"] = USER_AGENT
    session.headers.update(ctx.headers)
    session.verify = ctx.verify
    session.max_redirects = MAX_REDIRECTS
    # Proxies from the environment would send smoke traffic somewhere else than the target.
    session.trust_env = False
    return session


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    deadline: Deadline,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    payload: Any = None,
    label: str = "",
) -> Reply:
    """Send one request and read its body, all within ``deadline``."""
    label = label or f"{method} {url}"

    redirected: list[str] = []  # where each redirect pointed, absolute

    def note_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.is_redirect:
            redirected.append(urljoin(response.url, response.headers.get("Location", "")))

    def send() -> Reply:
        started = time.monotonic()
        remaining = max(deadline.remaining(), 0.001)
        response = session.request(
            method,
            url,
            headers=dict(headers or {}),
            params=params,
            json=payload,
            timeout=(remaining, remaining),
            stream=True,
            hooks={"response": note_redirect},
        )
        try:
            body, truncated = _read_body(response, deadline, label)
        finally:
            response.close()
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=body,
            elapsed_ms=(time.monotonic() - started) * 1000,
            url=response.url,
            truncated=truncated,
            cookies=session.cookies.get_dict(),
            redactor=getattr(session, "redactor", None),
        )

    try:
        return run_with_deadline(send, deadline, what=label, abort=session.close)
    except CheckFailed:
        raise
    except NOT_SENDABLE as exc:
        if redirected:  # the service sent us somewhere no client can go: its fault, not ours
            raise CheckFailed(
                f"{label}: redirected to a URL that cannot be followed ({_short(str(exc))})", kind="bad_redirect"
            ) from None
        raise CheckNotEvaluated(
            f"{label}: not evaluated: the request could not be sent ({exc.__class__.__name__}: {_short(str(exc))})",
            kind="request_error",
        ) from None
    except requests.RequestException as exc:
        # After a redirect the error is about the address it pointed to, not the one configured.
        raise describe_error(exc, redirected[-1] if redirected else url, deadline, label) from None
    except ConnectionError as exc:  # a socket error outside requests' wrapping: still the network
        raise CheckFailed(f"{label}: {exc.__class__.__name__}: {exc}", kind="connection_error") from None


def _read_body(response: requests.Response, deadline: Deadline, label: str) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=16384):
        if deadline.expired:
            raise CheckTimeout(deadline.seconds, f"{label} (reading the body)")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], True
    return b"".join(chunks), False


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out and len(out) < 20:
        out.append(current)
        args_exc = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        current = (
            reason
            if isinstance(reason, BaseException)
            else (args_exc[0] if args_exc else current.__cause__ or current.__context__)
        )
    return out


def describe_error(exc: requests.RequestException, url: str, deadline: Deadline, label: str = "") -> CheckFailed:
    """Translate a requests exception into one operator-level line."""
    where = _host_port(url)
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    if isinstance(exc, requests.Timeout) or any(isinstance(e, (socket.timeout, TimeoutError)) for e in chain):
        return CheckTimeout(deadline.seconds, label)
    if isinstance(exc, requests.TooManyRedirects):
        return CheckFailed(f"redirect loop: more than {MAX_REDIRECTS} redirects from {url}", kind="redirect_loop")
    if isinstance(exc, requests.exceptions.SSLError) or any(isinstance(e, ssl.SSLError) for e in chain):
        detail = next((getattr(e, "verify_message", None) for e in chain if getattr(e, "verify_message", None)), None)
        if detail:
            detail = f"certificate verify failed: {detail}"
        else:
            detail = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), str(exc))
        return CheckFailed(f"TLS error at {where}: {_short(detail)}", kind="tls_error")
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return CheckFailed(f"connection refused at {where}", kind="connection_refused")
    if any(isinstance(e, socket.gaierror) for e in chain) or "NameResolutionError" in text or "Name or service not known" in text:
        return CheckFailed(f"DNS lookup failed for {urlsplit(url).hostname}", kind="dns_failure")
    if any(isinstance(e, ConnectionResetError) for e in chain) or "reset" in text.lower():
        return CheckFailed(f"connection reset by {where}", kind="connection_reset")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return CheckFailed(f"response from {where} could not be decoded: {_short(text)}", kind="bad_response")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,)) or "IncompleteRead" in text:
        return CheckFailed(f"connection to {where} closed mid-response", kind="connection_reset")
    return CheckFailed(f"cannot reach {where}: {_short(str(chain[-1]))}", kind="connection_error")


def _short(text: str, limit: int = 160) -> str:
    return shorten(text, limit)


# -- expectations ----------------------------------------------------------------------------------


def status_matches(status: int, expected: int | list[int] | None) -> bool:
    if expected is None:
        return 200 <= status < 300
    if isinstance(expected, int):
        return status == expected
    return status in expected


def describe_expected(expected: int | list[int] | None) -> str:
    if expected is None:
        return "any 2xx"
    if isinstance(expected, int):
        return str(expected)
    return " or ".join(str(s) for s in expected)


def json_subset_mismatch(expected: Any, actual: Any, path: str = "body") -> str | None:
    """Where ``expected`` is not contained in ``actual``, or None."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path} is {type(actual).__name__}, expected an object"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key} is missing (keys: {', '.join(map(str, actual)) or 'none'})"
            mismatch = json_subset_mismatch(value, actual[key], f"{path}.{key}")
            if mismatch:
                return mismatch
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path} is {type(actual).__name__}, expected a list"
        for index, item in enumerate(expected):
            if not any(json_subset_mismatch(item, candidate) is None for candidate in actual):
                return f"{path} has no item matching {shorten(json.dumps(item), 80)} (expected item {index})"
        return None
    if expected != actual or type(expected) is not type(actual) and not (
        isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and not isinstance(actual, bool)
    ):
        return f"{path} is {shorten(json.dumps(actual), 80)}, expected {shorten(json.dumps(expected), 80)}"
    return None


def unmet_expectations(reply: Reply, expect: Mapping[str, Any] | None) -> list[str]:
    """Every ``expect`` condition the reply does not meet, in operator words."""
    problems: list[str] = []
    if not expect:
        return problems
    if "max_response_time_ms" in expect and reply.elapsed_ms > expect["max_response_time_ms"]:
        problems.append(f"responded in {reply.elapsed_ms:.0f} ms (limit {expect['max_response_time_ms']:g} ms)")
    if "body_contains" in expect and expect["body_contains"] not in reply.text:
        problems.append(f"body does not contain {expect['body_contains']!r}")
    for name, wanted in (expect.get("headers") or {}).items():
        got = reply.headers.get(name)
        if got is None and wanted is not False:
            problems.append(f"header {name} is missing")
        elif wanted is False and got is not None:
            problems.append(f"header {name} is present (expected absent)")
        elif isinstance(wanted, str) and got != wanted:
            problems.append(f"header {name} is {got!r}, expected {wanted!r}")
    if "json" in expect:
        try:
            body = reply.json()
        except ValueError as exc:
            problems.append(f"body is not valid JSON ({_short(str(exc), 80)})")
        else:
            mismatch = json_subset_mismatch(expect["json"], body)
            if mismatch:
                problems.append(mismatch)
    return problems


def failure_kind(status: int, endpoint: str) -> str:
    if status == 503 and "ready" in endpoint:
        return "readiness_503"
    if status in (401, 403):
        return "http_auth"
    if status >= 500:
        return "http_5xx"
    return "http_status"


def verify_reply(
    reply: Reply, method: str, shown_endpoint: str, expected_status: int | list[int] | None, expect: Mapping[str, Any] | None
) -> CheckResult:
    """Raise CheckFailed unless the status and every expectation hold."""
    request_line = f"request: {method} {reply.url}"
    excerpt = f"response: {reply.status}, {reply.elapsed_ms:.0f} ms: {reply.excerpt() or '(empty body)'}"
    if not status_matches(reply.status, expected_status):
        raise CheckFailed(
            f"{shown_endpoint} returned {reply.status} (expected {describe_expected(expected_status)})",
            f"{request_line}\n{excerpt}",
            kind=failure_kind(reply.status, shown_endpoint),
            status=reply.status,
            endpoint=shown_endpoint,
        )
    problems = unmet_expectations(reply, expect)
    if problems:
        raise CheckFailed(
            f"{shown_endpoint}: " + "; ".join(problems),
            f"{request_line}\n{excerpt}",
            kind="expectation",
            status=reply.status,
            endpoint=shown_endpoint,
        )
    return CheckResult(
        summary=f"{shown_endpoint} returned {reply.status} in {reply.elapsed_ms:.0f} ms",
        facts={"status": reply.status, "elapsed_ms": round(reply.elapsed_ms, 1), "endpoint": shown_endpoint},
    )


def check(spec: Mapping[str, Any], ctx: CheckContext) -> CheckResult:
    """The ``http`` dependency check: a full URL, e.g. the auth service's token endpoint."""
    deadline = Deadline(spec.get("timeout_seconds", 5))
    method = spec.get("method", "GET")
    url = spec["url"]
    with new_session(ctx) as session:
        reply = exchange(session, method, url, deadline, headers=spec.get("headers"), payload=spec.get("payload"))
    return verify_reply(reply, method, url, spec.get("expected_status", 200), spec.get("expect"))


def curl_command(
    redactor: Redactor, method: str, url: str, headers: Mapping[str, str], params: Any, payload: Any, session: requests.Session
) -> str:
    """A ready-to-paste, redacted curl line for one request."""
    prepared = requests.Request(method, url, params=params).prepare()
    parts = ["curl", "-sS", "-X", method, prepared.url or url]
    sent = {str(k): v.decode("latin-1") if isinstance(v, bytes) else str(v) for k, v in session.headers.items()}
    merged = {**{k: v for k, v in sent.items() if k.lower() not in ("accept-encoding", "connection", "accept")}, **headers}
    for key, value in merged.items():
        parts += ["-H", f"{key}: {MASK if is_secret_name(key) else value}"]
    cookies = session.cookies.get_dict()
    if cookies:
        parts += ["-b", "; ".join(f"{k}={MASK}" for k in cookies)]
    if payload is not None:
        parts += ["-H", "Content-Type: application/json", "--data-raw", json.dumps(redactor.value(payload))]
    return redactor.text(" ".join(shlex.quote(str(p)) for p in parts))
