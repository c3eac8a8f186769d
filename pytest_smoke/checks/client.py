"""What a developer's own smoke test uses to reach what the config already names.

:class:`BoundSession` is a ``requests.Session`` bound to the run's resolved base URL, with the
config's default headers, TLS settings and a default timeout. A request that cannot reach the
service raises :class:`CheckFailed` (a verdict on the service, with a redacted curl line), and
:meth:`BoundSession.expect` judges a response the way a generated check does. Plain Python: the
pytest fixtures only build one.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import requests

from ..redact import Redactor
from .base import CheckContext, CheckFailed, CheckNotEvaluated, Deadline, run_with_deadline
from .http import (
    MAX_BODY_BYTES,
    MAX_REDIRECTS,
    NOT_SENDABLE,
    USER_AGENT,
    Reply,
    SmokeSession,
    curl_command,
    describe_error,
    join_url,
    printable,
    read_body,
    verify_reply,
)

DEFAULT_TIMEOUT_SECONDS = 5.0


class SmokeResponse(requests.Response):
    """A response whose repr says what happened, so ``assert response.status_code == 200`` reads
    like a generated check's failure: the status, the request, a redacted excerpt, a curl line."""

    describe: Any = None  # set by the session: the request, an excerpt and a curl line, on demand

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}] {self.describe()}>" if self.describe else super().__repr__()


class BoundSession(SmokeSession):
    """A ``requests.Session`` for custom smoke tests, bound to the run's base URL.

    Relative paths are joined to the base URL, as generated checks join their endpoints; the
    config's ``headers`` are sent; ``verify_tls``/``ca_bundle`` apply; every request gets
    ``timeout`` unless it passes its own, and that timeout bounds the whole exchange, body
    included. A body is read up to ``max_body_bytes`` after decompression (1 MiB; more is not
    evaluated, never memory growth and never a verdict on the service), unless the request asks for
    ``stream=True`` and reads it itself. Proxies from the environment are ignored, as for checks.
    """

    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, ctx: CheckContext, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__()
        self.context = ctx
        self.base_url = ctx.base_url
        self.timeout = timeout
        self.redactor: Redactor = ctx.redactor
        self.headers["User-Agent"] = USER_AGENT
        self.headers.update(ctx.headers)
        self.verify = ctx.verify
        self.max_redirects = MAX_REDIRECTS
        self.trust_env = False

    # pytest hides frames that set __tracebackhide__: a failing request or expect() shows the
    # test's own line and the reason, not the plugin's and requests' internals.
    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        return self.request("GET", url, **kwargs)

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        __tracebackhide__ = True
        method_name = method.decode() if isinstance(method, bytes) else str(method)
        path = url.decode() if isinstance(url, bytes) else str(url)
        if "://" not in path and not self.base_url:
            raise ValueError(f"{path!r} is relative, but the smoke config sets no base URL")
        full_url = join_url(self.base_url, path)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        timeout = kwargs["timeout"]
        # The timeout bounds the whole exchange, body included: a trickling server cannot stretch it.
        deadline = Deadline(float(max(timeout) if isinstance(timeout, tuple) else timeout))
        streamed = bool(kwargs.pop("stream", False))
        curl = self.curl(method_name, full_url, kwargs)
        label = f"{method_name} {self.redactor.text(full_url)}"
        kwargs["stream"] = True  # read below, capped and within the deadline

        def send() -> requests.Response:
            answer = super(BoundSession, self).request(method_name, full_url, *args, **kwargs)
            if not streamed:
                self._read_whole(answer, deadline, label, f"reproduce: {curl}")
            return answer

        try:
            response = run_with_deadline(send, deadline, what=label, abort=self.close)
        except NOT_SENDABLE:
            raise  # a URL no client can send: a bug in the test, not a verdict on the service
        except (CheckFailed, CheckNotEvaluated) as bounded:  # the deadline, or the body cap
            bounded.reason = self.redactor.text(bounded.reason)
            bounded.details = bounded.details or f"reproduce: {curl}"
            raise bounded.with_traceback(None) from None  # the test's line, not the plugin's threads
        except requests.RequestException as exc:
            failure = describe_error(exc, full_url, deadline, f"{method_name} {full_url}")
            failure.reason = self.redactor.text(failure.reason)
            failure.details = f"reproduce: {curl}"
            raise failure from None
        response.__class__ = SmokeResponse

        def describe() -> str:
            reply = self._reply(response)
            return printable(
                f"{method_name} {self.redactor.text(response.url)} in {reply.elapsed_ms:.0f} ms: "
                f"{reply.excerpt() or '(empty body)'} | reproduce: {curl}"
            )

        response.describe = describe  # type: ignore[attr-defined]
        return response

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """requests' own ``send``; called directly (not through :meth:`request`) it gets the same
        bounds: the session's timeout for the whole exchange and the body cap."""
        __tracebackhide__ = True
        if kwargs.get("stream"):  # from request(), which bounds it; or a test that reads the body itself
            return super().send(request, **kwargs)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        timeout = kwargs["timeout"]
        deadline = Deadline(float(max(timeout) if isinstance(timeout, tuple) else timeout))
        label = f"{request.method} {self.redactor.text(request.url or '')}"

        def send() -> requests.Response:
            answer = super(BoundSession, self).send(request, **{**kwargs, "stream": True})
            self._read_whole(answer, deadline, label, "")
            return answer

        try:
            return run_with_deadline(send, deadline, what=label, abort=self.close)
        except (CheckFailed, CheckNotEvaluated) as failure:
            failure.reason = self.redactor.text(failure.reason)
            raise failure.with_traceback(None) from None

    def _read_whole(self, answer: requests.Response, deadline: Deadline, label: str, details: str) -> None:
        """Read the body within ``deadline`` and up to ``max_body_bytes``; more is a failure."""
        try:
            body, over = read_body(answer, deadline, label, self.max_body_bytes)
        finally:
            answer.close()
        if over:
            # Our limit, not the service's fault: a large answer never counts toward a rollback.
            raise CheckNotEvaluated(
                f"not evaluated: {label}: body over {self.max_body_bytes // 1024} KiB after decompression: not read "
                "further (smoke_http.max_body_bytes raises the limit)",
                kind="body_too_large",
                details=details,
            )
        answer._content = body

    def curl(self, method: str, url: str, kwargs: Mapping[str, Any]) -> str:
        data = kwargs.get("data")
        if isinstance(data, bytes):
            data = data.decode("utf-8", errors="replace")
        return curl_command(
            self.redactor,
            method,
            url,
            session=self,
            headers=dict(kwargs.get("headers") or {}),
            params=kwargs.get("params"),
            payload=kwargs.get("json"),
            form=data if isinstance(data, dict) else None,
            body=data if isinstance(data, str) else None,
        )

    def expect(self, response: requests.Response, status: int | list[int] | None = 200, **expect: Any) -> None:
        """Judge ``response`` as a generated check would: ``status`` (one code, a list, or None for
        any 2xx/3xx) and the config's ``expect`` keys (``json``, ``headers``, ``body_contains``,
        ``max_response_time_ms``). Raises :class:`CheckFailed` with the request and an excerpt."""
        __tracebackhide__ = True
        request = response.request
        method = str(request.method or "GET") if request is not None else "GET"
        try:
            verify_reply(self._reply(response), method, self.redactor.text(response.url), status, expect or None)
        except CheckFailed as failure:
            failure.reason = self.redactor.text(failure.reason)
            raise failure from None

    def _reply(self, response: requests.Response) -> Reply:
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=response.content or b"",
            elapsed_ms=response.elapsed.total_seconds() * 1000,
            url=response.url,
            redactor=self.redactor,
        )


def read_only(value: Any) -> Any:
    """A deep read-only view: mappings become ``MappingProxyType``, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(read_only(item) for item in value)
    return value


__all__ = ["BoundSession", "DEFAULT_TIMEOUT_SECONDS", "SmokeResponse", "read_only"]
