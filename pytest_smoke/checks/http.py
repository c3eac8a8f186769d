"""HTTP exchanges with a total deadline and the ``expect`` conditions.

Shared by health checks, ``http`` dependency checks and critical-path steps. ``exchange`` never
lets a requests exception escape: every failure becomes a :class:`CheckFailed` in operator words.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import shlex
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.structures import CaseInsensitiveDict

from .. import __version__
from ..redact import MASK, Redactor, is_secret_name, shorten
from ..specs import HttpDependencySpec
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
MAX_CHAIN_SHOWN = 8  # redirects shown in a message about a long chain
USER_AGENT = f"pytest-deploy-smoke/{__version__}"


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
    requested_url: str = ""  # before any redirect
    redirects: list[tuple[int, str]] = field(default_factory=list)  # each redirect: its status, where it pointed

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", "")).split(";")[0].strip().lower()

    @property
    def is_html(self) -> bool:
        return self.content_type in ("text/html", "application/xhtml+xml")

    def redirect_chain(self) -> str:
        """``/admin/ → 302 → /admin/login/?next=/admin/ → 200``: paths while the origin stays."""
        return describe_chain(self.requested_url or self.url, self.redirects, self.status)

    def moved_elsewhere(self) -> bool:
        """Whether redirects ended on another path (a login page), not the same path again
        (http to https, a trailing slash added)."""
        if not self.redirects:
            return False
        return urlsplit(self.requested_url).path.rstrip("/") != urlsplit(self.url).path.rstrip("/")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        if self.truncated:
            raise ValueError(f"body larger than {MAX_BODY_BYTES // 1024} KiB was not read in full")
        try:
            return json.loads(self.body)
        except RecursionError:  # what the service sent, not a fault of ours
            raise ValueError("nested too deeply to read") from None

    def excerpt(self) -> str:
        """A short, printable, redacted excerpt: redacted before it is cut (a cut secret no longer
        matches), control bytes escaped (a body cannot rewrite a CI log), binary bodies summarised."""
        if is_binary(self.body):
            kind = self.headers.get("Content-Type", "unknown type")
            return f"(binary, {len(self.body)} bytes, {kind})"
        text = printable(" ".join((html_gist(self.text) if self.is_html else self.text).split()))
        redactor = self.redactor or Redactor()
        return redactor.excerpt(text, EXCERPT_CHARS)


def html_gist(page: str) -> str:
    """What a person reads on an HTML page: its title and its text, without markup, styles and
    scripts (a Django CSRF or DEBUG page starts with kilobytes of <head>)."""

    title = re.search(r"<title[^>]*>(.*?)</title>", page, re.IGNORECASE | re.DOTALL)
    body = re.sub(r"<(script|style|head)\b.*?</\1\s*>", " ", page, flags=re.IGNORECASE | re.DOTALL)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    heading = html.unescape(title.group(1)).strip() if title else ""
    text = " ".join(text.split())
    if heading and text.startswith(heading):
        text = text[len(heading) :].lstrip()
    return f"[{heading}] {text}" if heading else text


def describe_chain(start: str, redirects: list[tuple[int, str]], final_status: int | None) -> str:
    """``/admin/ → 302 → /admin/login/?next=/admin/ → 200``; full URLs once the origin changes."""
    origin = _origin(start)

    def shown(url: str) -> str:
        if _origin(url) != origin:
            return url
        parts = urlsplit(url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    chain = [shown(start)]
    for status, target in redirects:
        chain += [str(status), shown(target)]
    if final_status is not None:
        chain.append(str(final_status))
    return " → ".join(chain)


def join_url(base_url: str | None, endpoint: str) -> str:
    if "://" in endpoint or not base_url:
        return endpoint
    return urljoin(base_url.rstrip("/") + "/", endpoint.lstrip("/"))


# Headers that carry no credential: kept when a redirect leaves the origin, all others are dropped.
SAFE_ON_REDIRECT = frozenset(
    {"user-agent", "accept", "accept-encoding", "accept-language", "connection", "content-type", "content-length"}
)


class SmokeSession(requests.Session):
    """A session that drops every configured header and cookie on a redirect to another origin
    (or from https to http), as browsers do with credentials; requests alone drops Authorization only."""

    redactor: Redactor | None = None
    shared: requests.adapters.HTTPAdapter | None = None  # the run's connection pool: never closed here

    def __init__(self) -> None:
        super().__init__()
        self.mount("https://", ExchangeAdapter())
        self.mount("http://", ExchangeAdapter())

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


MAX_INTERIM_ANSWERS = 10


class _SkipsInterimAnswers(http.client.HTTPResponse):
    """http.client skips only ``100 Continue``; a ``103 Early Hints`` (Node's writeEarlyHints, h2o,
    CDNs) would be read as the final answer. Every informational answer but ``101`` is skipped."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MAX_INTERIM_ANSWERS + 1):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not (101 < status < 200):
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers: read and dropped
        raise http.client.HTTPException(
            f"more than {MAX_INTERIM_ANSWERS} informational (1xx) answers before the answer"
        )


class _Connection(urllib3.connection.HTTPConnection):
    response_class = _SkipsInterimAnswers


class _TLSConnection(urllib3.connection.HTTPSConnection):
    response_class = _SkipsInterimAnswers


class _Pool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class ExchangeAdapter(requests.adapters.HTTPAdapter):
    """Keeps a connection alive only after an exchange known to be complete. A server may answer an
    error before it reads the request body (Python's http.server, several small frameworks): the
    unread bytes stay on the connection and become "the next request", and whichever check takes
    that connection from the pool reads the server's answer to them (a spurious 400). So after any
    answer to a request with a body, the connection is closed once its answer is read, and the pool
    opens a fresh one. Informational answers (``103 Early Hints``) are skipped, as ``100`` is."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        if request.body is not None:
            # Whatever the answer (a 202, a 303 to follow, an error), nothing says the server read
            # the whole body first: that connection is not reused.
            _close_on_release(response.raw)
        if response.is_redirect and kwargs.get("stream"):
            # requests reads a redirect's body whole before it follows it: a bomb there would fill
            # the memory. Read it here, capped, and never reuse the connection it may not have drained.
            _close_on_release(response.raw)
            response._content = response.raw.read(MAX_BODY_BYTES, decode_content=True) or b""
            response.close()
        return response


def _close_on_release(raw: Any) -> None:
    release = raw.release_conn

    def close_then_release() -> None:
        connection = getattr(raw, "connection", None)
        if connection is not None:
            connection.close()  # urllib3 replaces a closed connection on its next use
        release()

    raw.release_conn = close_then_release


def connection_pool(size: int) -> requests.adapters.HTTPAdapter:
    """One keep-alive connection pool for a run's checks, as a hand-written requests suite keeps
    one Session: no TCP (and TLS) handshake per check. Thread-safe (urllib3's PoolManager); cookies
    and headers stay per check, in each check's own session."""
    return ExchangeAdapter(pool_connections=16, pool_maxsize=max(1, size))


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
    session.max_redirects = ctx.max_redirects
    # Proxies from the environment would send smoke traffic somewhere else than the target.
    session.trust_env = False
    return session


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    deadline: Deadline,
    *,
    headers: Mapping[str, str | None] | None = None,  # None removes a session header
    params: Mapping[str, Any] | None = None,
    payload: Any = None,
    label: str = "",
    form: Mapping[str, Any] | None = None,
    body: str | None = None,
    content_type: str | None = None,
    follow_redirects: bool = True,
    max_redirects: int = MAX_REDIRECTS,
) -> Reply:
    """Send one request and read its body, all within ``deadline``. The body is ``payload``
    (JSON), ``form`` (urlencoded) or ``body`` (raw, with ``content_type``)."""
    label = label or f"{method} {url}"

    redirects: list[tuple[int, str]] = []  # each redirect followed: its status and where it pointed (absolute)

    def note_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.is_redirect and follow_redirects:
            redirects.append((response.status_code, urljoin(response.url, response.headers.get("Location", ""))))

    sent_headers = dict(headers or {})
    data: Any = None
    if form is not None:
        data = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in form.items()}
    elif body is not None:
        data = body.encode("utf-8")
        sent_headers.setdefault("Content-Type", content_type or "text/plain; charset=utf-8")
    session.max_redirects = max_redirects
    received: list[int] = []  # the status, once the headers arrived: a timeout says which side was slow

    def stage() -> str:
        return f"{received[-1]} received, body still arriving" if received else "no response"

    def send() -> Reply:
        started = time.monotonic()
        remaining = max(deadline.remaining(), 0.001)
        response = session.request(
            method,
            url,
            headers=sent_headers,
            params=params,
            json=payload,
            data=data,
            timeout=(remaining, remaining),
            stream=True,
            allow_redirects=follow_redirects,
            hooks={"response": note_redirect},
        )
        try:
            received.append(response.status_code)
            read, truncated = read_body(response, deadline, label)
        finally:
            response.close()
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=read,
            elapsed_ms=(time.monotonic() - started) * 1000,
            url=response.url,
            truncated=truncated,
            cookies=session.cookies.get_dict(),
            redactor=getattr(session, "redactor", None),
            requested_url=url,
            redirects=list(redirects),
        )

    try:
        return run_with_deadline(send, deadline, what=label, abort=session.close)
    except CheckTimeout as timeout:
        timeout.reason += f" ({stage()})"
        raise timeout from None
    except CheckFailed:
        raise
    except requests.TooManyRedirects:
        seen = {url}
        for index, (_, target) in enumerate(redirects):
            if target in seen:  # back to an address already visited: the chain up to there
                chain = describe_chain(url, redirects[: index + 1], None)
                raise CheckFailed(f"{label}: redirect loop: {chain} (again)", kind="redirect_loop") from None
            seen.add(target)
        shown = redirects[:MAX_CHAIN_SHOWN]
        more = f" → … ({len(redirects) - len(shown)} more)" if len(redirects) > len(shown) else ""
        chain = describe_chain(url, shown, None) + more
        raise CheckFailed(
            f"{label}: redirect limit of {max_redirects} reached: {chain}", kind="redirect_limit"
        ) from None
    except NOT_SENDABLE as exc:
        if redirects:  # the service sent us somewhere no client can go: its fault, not ours
            raise CheckFailed(
                f"{label}: redirected to a URL that cannot be followed ({_short(str(exc))})", kind="bad_redirect"
            ) from None
        raise CheckNotEvaluated(
            f"{label}: not evaluated: the request could not be sent ({exc.__class__.__name__}: {_short(str(exc))})",
            kind="request_error",
        ) from None
    except requests.RequestException as exc:
        # After a redirect the error is about the address it pointed to, not the one configured.
        failure = describe_error(exc, redirects[-1][1] if redirects else url, deadline, label)
        if failure.kind == "timeout":
            failure.reason += f" ({stage()})"
        raise failure from None
    except ConnectionError as exc:  # a socket error outside requests' wrapping: still the network
        raise CheckFailed(f"{label}: {exc.__class__.__name__}: {exc}", kind="connection_error") from None


def read_body(
    response: requests.Response, deadline: Deadline, label: str, limit: int = MAX_BODY_BYTES
) -> tuple[bytes, bool]:
    """The body of a streamed response, decompressed, up to ``limit`` bytes and within ``deadline``;
    and whether there was more (a gzip bomb stops here, at the limit, whatever it inflates to)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=16384):
        if deadline.expired:
            raise CheckTimeout(deadline.seconds, label)  # exchange() adds what had arrived
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
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
        return CheckFailed(f"TLS error at {where}: {_short(_tls_detail(exc, chain))}", kind="tls_error")
    return _connection_failure(exc, chain, text, url, where)


def _tls_detail(exc: BaseException, chain: list[BaseException]) -> str:
    """Why the handshake failed: the verification message when there is one (expired, wrong host)."""
    verify = next((getattr(e, "verify_message", None) for e in chain if getattr(e, "verify_message", None)), None)
    if verify:
        return f"certificate verify failed: {verify}"
    return next((str(e) for e in chain if isinstance(e, ssl.SSLError)), str(exc))


def _connection_failure(exc: BaseException, chain: list[BaseException], text: str, url: str, where: str) -> CheckFailed:
    """What went wrong below HTTP: refused, unresolved, reset, cut short, or not HTTP at all."""
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return CheckFailed(f"connection refused at {where}", kind="connection_refused")
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        marker in text for marker in ("NameResolutionError", "Name or service not known")
    ):
        return CheckFailed(f"DNS lookup failed for {urlsplit(url).hostname}", kind="dns_failure")
    if any(isinstance(e, ConnectionResetError) for e in chain) or "reset" in text.lower():
        return CheckFailed(f"connection reset by {where}", kind="connection_reset")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return CheckFailed(f"response from {where} could not be decoded: {_short(text)}", kind="bad_response")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text:
        return CheckFailed(f"connection to {where} closed mid-response", kind="connection_reset")
    bad = next((e for e in chain if isinstance(e, http.client.HTTPException)), None)
    if bad is not None:  # it answered, with something that is not HTTP (a garbage status line)
        answered = _short(str(bad.args[0]) if bad.args else bad.__class__.__name__)
        return CheckFailed(f"{where} answered something that is not HTTP: {printable(answered)!r}", kind="bad_response")
    return CheckFailed(f"cannot reach {where}: {_short(str(chain[-1]))}", kind="connection_error")


def _short(text: str, limit: int = 160) -> str:
    return shorten(text, limit)


# -- expectations ----------------------------------------------------------------------------------


def _statuses(expected: int | list[int]) -> list[int]:
    # JSON Schema counts 200.0 as an integer, so the config may hold one.
    return [int(status) for status in (expected if isinstance(expected, list) else [expected])]


def status_matches(status: int, expected: int | list[int] | None) -> bool:
    if expected is None:
        return 200 <= status < 300
    return status in _statuses(expected)


def describe_expected(expected: int | list[int] | None) -> str:
    if expected is None:
        return "any 2xx"
    return " or ".join(str(s) for s in _statuses(expected))


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
    if (
        expected != actual
        or type(expected) is not type(actual)
        and not (
            isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and not isinstance(actual, bool)
        )
    ):
        return f"{path} is {shorten(json.dumps(actual), 80)}, expected {shorten(json.dumps(expected), 80)}"
    return None


def unmet_expectations(reply: Reply, expect: Mapping[str, Any] | None) -> list[str]:
    """Every ``expect`` condition the reply does not meet, in operator words."""
    if not expect:
        return []
    problems: list[str] = []
    if "max_response_time_ms" in expect and reply.elapsed_ms > expect["max_response_time_ms"]:
        problems.append(f"responded in {reply.elapsed_ms:.0f} ms (limit {expect['max_response_time_ms']:g} ms)")
    if "body_contains" in expect and expect["body_contains"] not in reply.text:
        problems.append(f"body does not contain {expect['body_contains']!r}")
    if "body_not_contains" in expect and expect["body_not_contains"] in reply.text:
        problems.append(f"body contains {expect['body_not_contains']!r}")
    if "body_matches" in expect and not re.search(expect["body_matches"], reply.text):
        problems.append(f"body does not match {expect['body_matches']!r}")
    problems += [
        problem
        for name, wanted in (expect.get("headers") or {}).items()
        if (problem := _header_problem(name, wanted, reply.headers.get(name)))
    ]
    return problems + _json_problems(reply, expect)


def _header_problem(name: str, wanted: Any, got: str | None) -> str:
    """How header ``name`` misses ``wanted`` (a value, true, false, or {"matches": regex}), or ""."""
    if got is None and wanted is not False:
        return f"header {name} is missing"
    if wanted is False and got is not None:
        return f"header {name} is present (expected absent)"
    if isinstance(wanted, str) and got != wanted:
        return f"header {name} is {got!r}, expected {wanted!r}"
    if isinstance(wanted, dict) and got is not None and not re.search(wanted["matches"], got):
        return f"header {name} is {got!r}, which does not match {wanted['matches']!r}"
    return ""


def _json_problems(reply: Reply, expect: Mapping[str, Any] | None) -> list[str]:
    if not expect or "json" not in expect:
        return []
    try:
        body = reply.json()
    except ValueError as exc:
        return [f"body is not valid JSON ({_short(str(exc), 80)})"]
    mismatch = json_subset_mismatch(expect["json"], body)
    return [mismatch] if mismatch else []


# What a health endpoint says about a component that works; anything else names a failing one.
_HEALTHY = frozenset({"ok", "up", "pass", "passed", "healthy", "working", "true", "green", "available"})
_STATUS_KEYS = ("status", "state", "health")
# Top-level keys that carry a message or metadata, never a component's name.
_NOT_COMPONENTS = frozenset(
    {
        *_STATUS_KEYS,
        "error",
        "errors",
        "message",
        "msg",
        "detail",
        "reason",
        "description",
        "title",
        "code",
        "version",
        "time",
        "timestamp",
        "uptime",
        "service",
        "name",
    }
)
MAX_COMPONENTS = 5
# An error envelope ({"error_code": ..., "message": ...}, RFC 9457's problem details) describes one
# error; its keys are not components of a health body.
_ERROR_ENVELOPE_KEYS = frozenset(
    {"error", "errors", "error_code", "errorcode", "message", "exception", "sqlstate", "trace", "traceback", "type"}
)
# What a database error looks like in an answer: SQLSTATE codes, driver and ORM exception names,
# PostgreSQL's, MySQL's and SQLite's usual messages.
_DATABASE_ERROR = re.compile(
    r"sqlstate|psycopg|sqlalchemy|operationalerror|programmingerror|integrityerror|databaseerror"
    r"|relation \S+ does not exist|no such table|column \S+ does not exist|deadlock detected"
    r"|could not connect to server|connection to server at|database is locked|too many connections",
    re.IGNORECASE,
)
_SCANNED_CHARS = 16384


def failing_components(reply: Reply) -> list[str]:
    """The components a health body names as failing, in the usual shapes: django-health-check
    (``{"Cache(alias='default')": "unavailable: ..."}``), Spring Boot Actuator
    (``{"components": {"db": {"status": "DOWN"}}}``) and ``checks`` lists or maps."""
    try:
        body = reply.json()
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    found = [
        f"{name}: {_short(status, 80)}" if status else str(name)
        for name, value in _component_entries(body)
        if (status := _component_status(value)) is not None
    ]
    return found[:MAX_COMPONENTS] + ([f"{len(found) - MAX_COMPONENTS} more"] if len(found) > MAX_COMPONENTS else [])


def _component_entries(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, value) for each component a health body lists, nested or at the top level."""
    nested = next(
        (body[key] for key in ("components", "checks", "details") if isinstance(body.get(key), (dict, list))), None
    )
    if isinstance(nested, dict):
        return list(nested.items())
    if isinstance(nested, list):
        return [
            (str(item.get("name") or item.get("component") or index), item)
            for index, item in enumerate(nested)
            if isinstance(item, dict)
        ]
    if any(str(key).lower() in _ERROR_ENVELOPE_KEYS for key in body):
        return []  # an error's description, not a list of components
    return [(key, value) for key, value in body.items() if key.lower() not in _NOT_COMPONENTS]


def _component_status(value: Any) -> str | None:
    """A component's status when it is not healthy ("" for a false flag's empty text), else None."""
    status = next((value[key] for key in _STATUS_KEYS if isinstance(value, dict) and key in value), value)
    if isinstance(status, bool):
        status = "true" if status else "false"
    if isinstance(status, str) and status.strip().lower() not in _HEALTHY:
        return status
    return None


def failure_kind(status: int, endpoint: str, reply: Reply | None = None) -> str:
    if reply is not None and status == 403 and "csrf" in reply.text.lower():
        return "csrf_rejected"
    if status == 503 and "ready" in endpoint:
        return "readiness_503"
    if status == 401:
        return "http_auth"
    if status == 403:
        return "http_forbidden"
    if status in (400, 409, 422) or status >= 500:
        # A 400 that carries a database error is the database's problem, not the request's.
        if reply is not None and _DATABASE_ERROR.search(reply.text[:_SCANNED_CHARS]):
            return "database_error"
    if status >= 500:
        return "http_5xx"
    if status == 400:
        return "bad_request"
    if status == 405:
        return "http_method"
    return "http_status"


def verify_reply(
    reply: Reply,
    method: str,
    shown_endpoint: str,
    expected_status: int | list[int] | None,
    expect: Mapping[str, Any] | None,
) -> CheckResult:
    """Raise CheckFailed unless the status and every expectation hold. A wrong status still
    reports what the body shows (every JSON mismatch, each component a health body names as
    failing); a redirect is named wherever it mattered."""
    __tracebackhide__ = True  # a custom test's failure points at its own expect() line

    def details() -> str:  # only for a failure: a passing check reads no excerpt
        lines = [f"request: {method} {reply.requested_url or reply.url}"]
        if reply.redirects:
            lines.append(f"redirects: {reply.redirect_chain()}")
        lines.append(f"response: {reply.status}, {reply.elapsed_ms:.0f} ms: {reply.excerpt() or '(empty body)'}")
        return "\n".join(lines)

    after = f" after redirects ({reply.redirect_chain()})" if reply.redirects else ""
    facts: dict[str, Any] = {
        "status": reply.status,
        "elapsed_ms": round(reply.elapsed_ms, 1),
        "endpoint": shown_endpoint,
    }
    if reply.redirects:
        facts["redirects"] = reply.redirect_chain()
    if reply.status in (429, 503) and reply.headers.get("Retry-After"):
        facts["retry_after"] = printable(str(reply.headers["Retry-After"]))[
            :40
        ]  # a sign of overload, for the per-host limit
    if not status_matches(reply.status, expected_status):
        reason = f"{shown_endpoint} returned {reply.status} (expected {describe_expected(expected_status)}){after}"
        components = failing_components(reply) if reply.status >= 500 else []
        if components:
            reason += "; failing: " + "; ".join(components)
        else:
            # What a JSON body shows still helps; that an error page is not JSON does not.
            shown = [p for p in _json_problems(reply, expect) if not p.startswith("body is not valid JSON")]
            reason += "".join(f"; {problem}" for problem in shown)
        kind = failure_kind(reply.status, shown_endpoint, reply)
        if components and kind == "http_5xx":
            kind = "component_down"
        raise CheckFailed(reason, details(), kind=kind, **facts)
    problems = unmet_expectations(reply, expect)
    if problems:
        raise CheckFailed(f"{shown_endpoint}: " + "; ".join(problems) + after, details(), kind="expectation", **facts)
    warnings = []
    if reply.moved_elsewhere():
        # "200" from a login page is not the page that was asked for.
        via = reply.redirect_chain().split(" → ", 1)[1].rsplit(" → ", 1)[0]
        warnings.append(f"{shown_endpoint} passed via {via} (set follow_redirects: false to check the redirect itself)")
    return CheckResult(
        summary=f"{shown_endpoint} returned {reply.status} in {reply.elapsed_ms:.0f} ms"
        + (f" via {facts['redirects']}" if reply.redirects else ""),
        facts=facts,
        warnings=warnings,
    )


def check(spec: HttpDependencySpec, ctx: CheckContext) -> CheckResult:
    """The ``http`` dependency check: a full URL, e.g. the auth service's token endpoint."""
    deadline = Deadline(spec.get("timeout_seconds", 5))
    method = spec.get("method", "GET")
    url = spec["url"]
    with new_session(ctx) as session:
        reply = exchange(
            session,
            method,
            url,
            deadline,
            headers=spec.get("headers"),
            payload=spec.get("payload"),
            follow_redirects=spec.get("follow_redirects", ctx.follow_redirects),
            max_redirects=ctx.max_redirects,
        )
    return with_certificate(
        verify_reply(reply, method, url, spec.get("expected_status", 200), spec.get("expect")), url, ctx, spec, deadline
    )


def with_certificate(
    result: CheckResult, url: str, ctx: CheckContext, spec: Mapping[str, Any], deadline: Deadline
) -> CheckResult:
    """The certificate expectation, after everything else held: the summary says how long it lasts."""
    days = (spec.get("expect") or {}).get("certificate_expires_in_days")
    if days is not None:
        result.summary += "; " + check_certificate(url, ctx, int(days), deadline)
    return result


def curl_command(
    redactor: Redactor,
    method: str,
    url: str,
    *,
    session: requests.Session,
    headers: Mapping[str, str | None] | None = None,
    params: Any = None,
    payload: Any = None,
    form: Mapping[str, Any] | None = None,
    body: str | None = None,
    content_type: str | None = None,
) -> str:
    """A ready-to-paste, redacted curl line that sends what the check sent: every header the
    session and the step set (one Content-Type), the query, and the body as JSON, form or raw."""
    prepared = requests.Request(method, url, params=params).prepare()
    parts = ["curl", "-sS", "-X", method, prepared.url or url]
    sent = {str(k): v.decode("latin-1") if isinstance(v, bytes) else str(v) for k, v in session.headers.items()}
    # requests' own transport headers are curl's too; a configured Accept is part of the request.
    merged: CaseInsensitiveDict[str | None] = CaseInsensitiveDict(
        {
            k: v
            for k, v in sent.items()
            if k.lower() not in ("accept-encoding", "connection") and (k.lower(), v) != ("accept", "*/*")
        }
    )
    merged.update(headers or {})
    for name in [name for name, value in merged.items() if value is None]:  # removed: as requests sends it
        del merged[name]
    body_args, content = _curl_body(redactor, payload, form, body, content_type)
    if content:
        merged.setdefault("Content-Type", content)
    for key, value in merged.items():
        parts += ["-H", f"{key}: {MASK if is_secret_name(key) else value}"]
    cookies = session.cookies.get_dict()
    if cookies:
        parts += ["-b", "; ".join(f"{k}={MASK}" for k in cookies)]
    parts += body_args
    return redactor.text(" ".join(shlex.quote(str(p)) for p in parts))


def _curl_body(
    redactor: Redactor, payload: Any, form: Mapping[str, Any] | None, body: str | None, content_type: str | None
) -> tuple[list[str], str]:
    """curl's arguments for the request body (masked) and the Content-Type it implies."""
    if payload is not None:
        return ["--data-raw", json.dumps(redactor.value(payload))], "application/json"
    if form is not None:
        masked = [
            ("--data-urlencode", f"{key}={MASK if is_secret_name(str(key)) else value}") for key, value in form.items()
        ]
        return [arg for pair in masked for arg in pair], "application/x-www-form-urlencoded"
    if body is not None:
        return ["--data-raw", _masked_body(redactor, body)], content_type or "text/plain; charset=utf-8"
    return [], ""


def _masked_body(redactor: Redactor, body: str) -> str:
    """A raw body that is JSON is masked by key, as a ``payload`` is (``{"refresh_token": ...}``)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps(redactor.value(parsed)) if isinstance(parsed, (dict, list)) else body


def check_certificate(url: str, ctx: CheckContext, min_days: int, deadline: Deadline) -> str:
    """``expect.certificate_expires_in_days``: the served leaf certificate must stay valid for
    ``min_days`` more days. Raises CheckFailed naming the subject, the issuer and the date;
    returns a summary otherwise. A TLS handshake of its own, verified as the check's request was."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise CheckNotEvaluated(
            f"not evaluated: certificate_expires_in_days needs an https:// URL, got {_origin(url)}", kind="config"
        )
    host, port = parts.hostname, parts.port or 443
    context = ssl.create_default_context(cafile=ctx.verify if isinstance(ctx.verify, str) else None)

    def handshake() -> Any:
        with socket.create_connection((host, port), timeout=max(deadline.remaining(), 0.1)) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return tls.getpeercert()

    try:
        certificate = run_with_deadline(handshake, deadline, what=f"TLS handshake with {host}:{port}")
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed(f"certificate of {host}:{port} could not be read: {exc}", kind="tls_error") from None
    expires = ssl.cert_time_to_seconds(certificate["notAfter"])
    days = (expires - time.time()) / 86400
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))
    who = f"subject {_dn(certificate.get('subject'))}, issuer {_dn(certificate.get('issuer'))}"
    if days < min_days:
        raise CheckFailed(
            f"certificate of {host} expires in {max(days, 0):.1f} days, on {when} ({who}): "
            f"fewer than the {min_days} days required",
            kind="certificate_expiring",
            endpoint=f"{host}:{port}",
        )
    return f"certificate of {host} valid for {days:.0f} more days (until {when})"


def _dn(name: Any) -> str:
    """``((('commonName', 'web.example'),),)`` -> ``CN=web.example``."""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    pairs = [f"{short.get(key, key)}={value}" for rdn in name or () for key, value in rdn]
    return ", ".join(pairs) or "(none)"
