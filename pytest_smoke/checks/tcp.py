"""``tcp`` dependency check: a TCP connect to ``host``:``port`` within the timeout."""

from __future__ import annotations

import socket
import time

from ..specs import TcpSpec
from .base import CheckContext, CheckFailed, CheckResult


def check(spec: TcpSpec, ctx: CheckContext) -> CheckResult:
    host, port = spec["host"], int(spec["port"])
    timeout = float(spec.get("timeout_seconds", 5))
    where = f"{host}:{port}"
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise CheckFailed(f"TCP connect failed: connection refused at {where}", kind="connection_refused") from None
    except socket.gaierror:
        raise CheckFailed(f"TCP connect failed: DNS lookup failed for {host}", kind="dns_failure") from None
    except (socket.timeout, TimeoutError):
        raise CheckFailed(f"TCP connect failed: timed out after {timeout:g} s at {where}", kind="timeout") from None
    except OSError as exc:
        raise CheckFailed(f"TCP connect failed at {where}: {exc.strerror or exc}", kind="connection_error") from None
    elapsed = (time.monotonic() - started) * 1000
    return CheckResult(
        summary=f"connected to {where} in {elapsed:.0f} ms", facts={"endpoint": where, "elapsed_ms": round(elapsed, 1)}
    )
