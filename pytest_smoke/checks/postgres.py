"""``postgres`` dependency check: connect with psycopg 3 and run ``query`` (default ``SELECT 1``)."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from ..redact import shorten
from ..specs import PostgresSpec
from .base import (
    CheckContext,
    CheckFailed,
    CheckNotEvaluated,
    CheckResult,
    Deadline,
    run_with_deadline,
    same_value,
    shown_value,
)


def check(spec: PostgresSpec, ctx: CheckContext) -> CheckResult:
    # Lazy (~100 ms): the type is resolved before preflight checks the library, which names a
    # missing or broken one (no libpq) in a usage error.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    timeout = float(spec.get("timeout_seconds", 5))
    deadline = Deadline(timeout)
    query = spec.get("query", "SELECT 1")
    # No dsn and no DATABASE_URL: an empty conninfo makes libpq read PGHOST, PGUSER, PGPASSWORD...
    dsn = spec.get("dsn") or ctx.environ.get("DATABASE_URL") or ""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise CheckNotEvaluated("Database check not evaluated: the DSN is not valid", kind="config") from None
    ctx.redactor.add(params.get("password"), ctx.environ.get("PGPASSWORD"))
    where = _where(params, ctx.environ)

    def probe() -> CheckResult:
        with psycopg.connect(
            dsn,
            # libpq takes whole seconds; the thread deadline below enforces the fraction.
            connect_timeout=max(2, math.ceil(deadline.remaining())),
            options=f"-c statement_timeout={max(1, int(timeout * 1000))}",
            application_name="pytest-smoke",
            autocommit=True,
        ) as conn:
            version = conn.info.parameter_status("server_version") or "unknown"
            try:
                row = conn.execute(query).fetchone()
            except psycopg.Error as exc:
                raise CheckFailed(f"Database query failed: {_first_line(exc)}", kind="db_query") from None
            if "expect" in spec:
                wanted = spec["expect"]["equals"]
                got = row[0] if row else None
                if not row or not same_value(got, wanted):
                    shown, expected = shown_value(ctx.redactor, got, wanted)
                    shown = "no rows" if not row else shown
                    raise CheckFailed(
                        f"Database query {shorten(query, 80)!r} returned {shown} (expected {expected})", kind="db_query"
                    )
            return CheckResult(
                summary=f"{query!r} returned {row[0] if row else 'no rows'!r} on PostgreSQL {version.split()[0]}",
                facts={"server_version": version.split()[0], "endpoint": where},
            )

    try:
        return run_with_deadline(probe, deadline, what=f"Database {where}")
    except psycopg.OperationalError as exc:
        message = _first_line(exc)
        if "Connection refused" in message:
            raise CheckFailed(
                f"Database connection failed: connection refused at {where}", kind="db_unreachable"
            ) from None
        if "timeout expired" in message:
            raise CheckFailed(
                f"Database connection failed: timed out after {timeout:g} s at {where}", kind="timeout"
            ) from None
        kind = "db_auth" if "authentication" in message or "password" in message else "db_unreachable"
        raise CheckFailed(f"Database connection failed: {message}", kind=kind) from None
    except psycopg.Error as exc:
        raise CheckFailed(f"Database check failed: {_first_line(exc)}", kind="db_query") from None


def _where(params: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    host = params.get("host") or environ.get("PGHOST") or "localhost"
    port = params.get("port") or environ.get("PGPORT") or "5432"
    return f"{host}:{port}"


def _first_line(exc: BaseException) -> str:
    """libpq's message without the 'connection to server at ... failed:' preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else exc.__class__.__name__
    text = re.sub(r"^connection failed: ", "", text)
    text = re.sub(r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: ', "", text)
    text = re.sub(r"^FATAL:\s+", "", text)
    return text
