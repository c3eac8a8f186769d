"""``redis`` dependency check: connect with redis-py and run ``command`` (default ``PING``)."""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlsplit

from ..specs import RedisSpec
from .base import (
    CheckContext,
    CheckFailed,
    CheckNotEvaluated,
    CheckResult,
    Deadline,
    raised_while_reading,
    run_with_deadline,
    same_value,
    shown_value,
)

DEFAULT_URL = "redis://localhost:6379/0"
# Where redis-py reads and parses a server's answer: an error raised there is about the answer.
READING_FRAMES = (
    "/redis/_parsers/resp2.py",
    "/redis/_parsers/resp3.py",
    "/redis/_parsers/base.py",
    "read_response",
    "_read_response",
    "on_connect",
    "on_connect_check_health",
)


# What one check reads from a server in all: a 200 MB value is not read into memory.
MAX_REPLY_BYTES = 1024 * 1024


class ReplyTooLarge(Exception):
    pass


class _CappedSocket:
    """A socket that refuses to receive more than ``limit`` bytes in all; the rest is delegated."""

    def __init__(self, sock: Any, limit: int):
        self._sock = sock
        self._left = limit

    def recv(self, size: int, *flags: Any) -> bytes:
        data: bytes = self._sock.recv(size, *flags)
        self._left -= len(data)
        if self._left < 0:
            raise ReplyTooLarge()
        return data

    def recv_into(self, buffer: Any, size: int = 0, *flags: Any) -> int:
        count: int = self._sock.recv_into(buffer, size, *flags)
        self._left -= count
        if self._left < 0:
            raise ReplyTooLarge()
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _capped(connection_class: Any) -> Any:
    """redis-py's connection class for the URL's scheme (TCP, TLS, Unix socket), reading at most MAX_REPLY_BYTES."""

    class CappedConnection(connection_class):  # type: ignore[misc]
        def _connect(self) -> Any:
            return _CappedSocket(super()._connect(), MAX_REPLY_BYTES)

    return CappedConnection


def check(spec: RedisSpec, ctx: CheckContext) -> CheckResult:
    # Lazy (~80 ms): the type is resolved before preflight checks the library, which names a
    # missing or broken one in a usage error.
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = float(spec.get("timeout_seconds", 3))
    deadline = Deadline(timeout)
    url = spec.get("url") or ctx.environ.get("REDIS_URL") or DEFAULT_URL
    parts = urlsplit(url)
    ctx.redactor.add(parts.password)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    command = shlex.split(spec.get("command", "PING"))
    # No retries: a smoke check reports what one attempt saw, within its own deadline.
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    pool = client.connection_pool
    pool.connection_class = _capped(pool.connection_class)

    def probe() -> CheckResult:
        reply = client.execute_command(*command)  # type: ignore[no-untyped-call]
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        if "expect" in spec and not same_value(reply, spec["expect"]["equals"]):
            shown, expected = shown_value(ctx.redactor, reply, spec["expect"]["equals"])
            raise CheckFailed(
                f"Redis {' '.join(command[:2])} returned {shown} (expected {expected})", kind="redis_command"
            )
        return CheckResult(
            summary=f"{' '.join(command)} -> {reply!r}", facts={"endpoint": where, "reply": str(reply)[:100]}
        )

    try:
        return run_with_deadline(probe, deadline, what=f"Redis {where}", abort=client.close)
    except ReplyTooLarge:  # our limit, not the service's fault: never counts toward a rollback
        raise CheckNotEvaluated(
            f"not evaluated: Redis at {where} answered {' '.join(command[:1])} "
            f"with more than {MAX_REPLY_BYTES // 1024} KiB: "
            "not read further (a smoke check reads a small reply: PING, or GET of a small key)",
            kind="redis_command",
        ) from None
    except redis.AuthenticationError as exc:
        raise CheckFailed(f"Redis unavailable: authentication failed at {where} ({exc})", kind="redis_auth") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise CheckFailed(
                f"Redis unavailable: authentication failed at {where} ({exc})", kind="redis_auth"
            ) from None
        raise CheckFailed(f"Redis command {' '.join(command[:1])} failed: {exc}", kind="redis_command") from None
    except redis.TimeoutError:
        raise CheckFailed(f"Redis unavailable: timed out after {timeout:g} s at {where}", kind="timeout") from None
    except redis.ConnectionError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else str(exc).splitlines()[0]
        raise CheckFailed(f"Redis unavailable: {reason} at {where}", kind="redis_down") from None
    except redis.RedisError as exc:
        raise CheckFailed(f"Redis unavailable: {exc}", kind="redis_down") from None
    except (AttributeError, TypeError, ValueError, IndexError, UnicodeError) as exc:
        if not raised_while_reading(exc, READING_FRAMES):
            raise  # ours: not evaluated
        # redis-py choked on what the server sent (a plain string to HELLO): the server's answer.
        raise CheckFailed(
            f"Redis at {where} answered something that is not the Redis protocol "
            f"({exc.__class__.__name__}: {str(exc)[:120]})",
            kind="redis_down",
        ) from None
    finally:
        client.close()
