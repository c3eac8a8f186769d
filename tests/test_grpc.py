"""``type: grpc`` dependency checks against a real gRPC server (grpcio) with the standard health
servicer, plain text and TLS (trustme), switching statuses; and a port that never answers."""

from __future__ import annotations

import json
import socket
from concurrent import futures

import grpc
import pytest
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from helpers import assert_cut_short, session_seconds

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class HealthServer:
    def __init__(self, tls=None):
        self.servicer = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        address = "127.0.0.1:0" if tls is None else "localhost:0"
        self.port = self.server.add_insecure_port(address) if tls is None else self.server.add_secure_port(address, tls)
        self.server.start()

    def set(self, service, status):
        self.servicer.set(service, status)

    def stop(self):
        self.server.stop(grace=None).wait(5)


@pytest.fixture
def grpc_server():
    server = HealthServer()
    server.set("", SERVING)
    server.set("shop.Cart", SERVING)
    yield server
    server.stop()


def dependency(name, port, host="127.0.0.1", **extra):
    return {"name": name, "type": "grpc", "host": host, "port": port, "timeout_seconds": 2, **extra}


def test_serving_passes_and_each_other_status_is_named(pytester, write_config, grpc_server):
    grpc_server.set("shop.Payments", NOT_SERVING)
    write_config(
        {
            "dependency_checks": [
                dependency("server", grpc_server.port),
                dependency("cart", grpc_server.port, service="shop.Cart"),
                dependency("payments", grpc_server.port, service="shop.Payments"),
                dependency("ghost", grpc_server.port, service="shop.Ghost", required=False),
            ]
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report", "report.json")
    assert result.ret == 1
    report = {c["name"]: c for c in json.loads((pytester.path / "report.json").read_text())["checks"]}
    where = f"127.0.0.1:{grpc_server.port}"
    assert report["server"]["status"] == report["cart"]["status"] == "passed"
    assert report["cart"]["facts"]["summary"].startswith(f"gRPC health of {where} (service 'shop.Cart'): SERVING in ")
    assert report["payments"]["reason"] == f"gRPC health of {where} (service 'shop.Payments'): NOT_SERVING"
    assert report["payments"]["severity"] == "critical" and report["payments"]["failure_kind"] == "grpc_not_serving"
    assert (
        report["ghost"]["reason"]
        == f"gRPC health of {where} (service 'shop.Ghost'): SERVICE_UNKNOWN (the server does not know this service)"
    )
    assert report["ghost"]["severity"] == "warning"


def test_a_server_that_never_answers_times_out_within_its_deadline(pytester, write_config):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepted by the kernel, never a gRPC answer
        port = silent.getsockname()[1]
        write_config({"dependency_checks": [dependency("stuck", port, timeout_seconds=1)]})
        result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    assert_cut_short(session_seconds(result), 1)
    result.stdout.fnmatch_lines([f"*stuck: gRPC health of 127.0.0.1:{port}: no answer within 1 s (DEADLINE_EXCEEDED)*"])


def test_a_closed_port_is_unavailable(pytester, write_config):
    from servers import free_port

    port = free_port()
    write_config({"dependency_checks": [dependency("gone", port)]})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"*gone: gRPC health of 127.0.0.1:{port}: server unavailable (*"])


def test_tls_is_verified_against_the_ca_bundle(pytester, write_config, tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    credentials = grpc.ssl_server_credentials([(leaf.private_key_pem.bytes(), leaf.cert_chain_pems[0].bytes())])
    server = HealthServer(tls=credentials)
    server.set("", SERVING)
    try:
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        write_config(
            {
                "ca_bundle": str(bundle),
                "dependency_checks": [dependency("secure", server.port, host="localhost", tls=True)],
            }
        )
        assert pytester.runpytest("--smoke-config", "smoke.json").ret == 0
        # Without the bundle, the system CAs do not trust it: a failure naming the server, no pass.
        write_config({"dependency_checks": [dependency("secure", server.port, host="localhost", tls=True)]})
        result = pytester.runpytest("--smoke-config", "smoke.json")
        assert result.ret == 1
        result.stdout.fnmatch_lines([f"*secure: gRPC health of localhost:{server.port}: server unavailable (*"])
    finally:
        server.stop()
