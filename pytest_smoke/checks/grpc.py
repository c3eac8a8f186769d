"""``grpc`` dependency check: the standard ``grpc.health.v1.Health/Check`` (what Kubernetes' gRPC
probes call), plain text or TLS, with an optional service name. The timeout is one gRPC deadline
for the connection and the call. grpcio and grpcio-health-checking are imported only here."""

from __future__ import annotations

import time
from typing import Any

from ..specs import GrpcSpec
from .base import CheckContext, CheckFailed, CheckNotEvaluated, CheckResult


def check(spec: GrpcSpec, ctx: CheckContext) -> CheckResult:
    # Lazy: an optional extra (~40 ms). The type is resolved before preflight checks the library,
    # which names a missing one in a usage error.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"{spec['host']}:{int(spec['port'])}"
    timeout = float(spec.get("timeout_seconds", 5))
    service = spec.get("service", "")
    shown = f"{target}" + (f" (service {service!r})" if service else "")
    channel = _channel(grpc, target, bool(spec.get("tls")), ctx)
    started = time.monotonic()
    try:
        with channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
    except grpc.RpcError as exc:
        raise _failure(exc, shown, timeout) from None
    elapsed = (time.monotonic() - started) * 1000
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    facts: dict[str, Any] = {"endpoint": target, "elapsed_ms": round(elapsed, 1)}
    if status != "SERVING":
        raise CheckFailed(f"gRPC health of {shown}: {status}", kind="grpc_not_serving", **facts)
    return CheckResult(summary=f"gRPC health of {shown}: SERVING in {elapsed:.0f} ms", facts=facts)


def _channel(grpc: Any, target: str, tls: bool, ctx: CheckContext) -> Any:
    if not tls:
        return grpc.insecure_channel(target)
    if ctx.verify is False:
        raise CheckNotEvaluated(
            "not evaluated: a gRPC check with tls cannot skip verification (verify_tls is false)", kind="config"
        )
    roots = None
    if isinstance(ctx.verify, str):
        with open(ctx.verify, "rb") as bundle:
            roots = bundle.read()
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))


def _failure(exc: Any, shown: str, timeout: float) -> CheckFailed:
    code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    if code == "DEADLINE_EXCEEDED":
        return CheckFailed(
            f"gRPC health of {shown}: no answer within {timeout:g} s (DEADLINE_EXCEEDED)", kind="timeout"
        )
    if code == "UNAVAILABLE":
        return CheckFailed(
            f"gRPC health of {shown}: server unavailable ({_first_line(details)})", kind="connection_refused"
        )
    if code == "NOT_FOUND":
        return CheckFailed(
            f"gRPC health of {shown}: SERVICE_UNKNOWN (the server does not know this service)",
            kind="grpc_service_unknown",
        )
    if code == "UNIMPLEMENTED":
        return CheckFailed(
            f"gRPC health of {shown}: the server does not implement grpc.health.v1.Health", kind="grpc_no_health"
        )
    return CheckFailed(f"gRPC health of {shown}: {code} ({_first_line(details)})", kind="grpc_error")


def _first_line(text: str) -> str:
    return (text.splitlines() or [""])[0][:200]
