"""``amqp`` dependency check: connect to RabbitMQ with pika, open a channel, optionally
passively declare ``queue`` to prove it exists."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from ..specs import AmqpSpec
from .base import CheckContext, CheckFailed, CheckResult, Deadline, run_with_deadline

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def check(spec: AmqpSpec, ctx: CheckContext) -> CheckResult:
    # Lazy: an optional extra (~35 ms). The type is resolved before preflight checks the library,
    # which names a missing one in a usage error.
    import pika
    import pika.exceptions as errors

    # pika logs every failed handshake at ERROR with a traceback; the check's own message says it
    # better. Leave a level the user set alone.
    pika_logger = logging.getLogger("pika")
    if pika_logger.level == logging.NOTSET:
        pika_logger.setLevel(logging.CRITICAL)

    timeout = float(spec.get("timeout_seconds", 5))
    deadline = Deadline(timeout)
    url = spec.get("url") or ctx.environ.get("AMQP_URL") or DEFAULT_URL
    parts = urlsplit(url)
    if parts.password:
        ctx.redactor.add(unquote(parts.password), parts.password)
    where = f"{parts.hostname or 'localhost'}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    queue = spec.get("queue")
    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.connection_attempts = 1
    params.retry_delay = 0
    holder: dict[str, Any] = {}

    def probe() -> CheckResult:
        connection = pika.BlockingConnection(params)
        holder["connection"] = connection
        try:
            channel = connection.channel()
            facts: dict[str, Any] = {"endpoint": where}
            summary = f"connected to {where}, channel open"
            if queue:
                declared = channel.queue_declare(queue=queue, passive=True)
                facts["messages"] = declared.method.message_count
                summary += f", queue {queue!r} exists ({declared.method.message_count} messages)"
            version = connection._impl.server_properties.get("version") if hasattr(connection, "_impl") else None
            if isinstance(version, bytes):
                facts["server_version"] = version.decode()
            return CheckResult(summary=summary, facts=facts)
        finally:
            if connection.is_open:
                connection.close()

    def abort() -> None:
        connection = holder.get("connection")
        if connection is not None and connection.is_open:
            connection.close()

    try:
        return run_with_deadline(probe, deadline, what=f"Message queue {where}")
    except errors.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            raise CheckFailed(
                f"Message queue: queue {queue!r} does not exist at {where}", kind="queue_missing"
            ) from None
        raise CheckFailed(
            f"Message queue: channel closed by broker ({exc.reply_code} {exc.reply_text})", kind="queue_down"
        ) from None
    except (errors.ProbableAuthenticationError, errors.AuthenticationError, errors.ProbableAccessDeniedError) as exc:
        raise CheckFailed(
            f"Message queue connection failed: authentication refused at {where} ({exc.__class__.__name__})",
            kind="queue_auth",
        ) from None
    except errors.AMQPConnectionError as exc:
        text = repr(exc)
        if "refused" in text.lower() or "ConnectionRefusedError" in text:
            reason = f"connection refused at {where}"
        elif "timeout" in text.lower() or "timed out" in text.lower():
            reason = f"timed out after {timeout:g} s at {where}"
        else:
            reason = f"cannot connect to {where} ({exc.__class__.__name__})"
        raise CheckFailed(f"Message queue connection failed: {reason}", kind="queue_down") from None
    except errors.AMQPError as exc:
        raise CheckFailed(
            f"Message queue connection failed: {exc.__class__.__name__} at {where}", kind="queue_down"
        ) from None
    except Exception as exc:
        # pika's connection-workflow errors (AMQPConnectorStackTimeout...) are not AMQPErrors.
        if "Timeout" in exc.__class__.__name__:
            raise CheckFailed(
                f"Message queue connection failed: timed out after {timeout:g} s at {where}", kind="timeout"
            ) from None
        if exc.__class__.__module__.startswith("pika"):
            raise CheckFailed(
                f"Message queue connection failed: {exc.__class__.__name__} at {where}", kind="queue_down"
            ) from None
        raise
