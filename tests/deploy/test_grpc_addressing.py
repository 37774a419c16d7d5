"""The service addresses the chart hands out (dns:///<headless service>:port) work with the shared client."""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.client import make_channel
from services.common.server import ServiceSpec, start_server


def test_dns_scheme_address_reaches_a_server() -> None:
    server = start_server(ServiceSpec(name="probe", register=lambda _s: None, service_names=[]), port=0)
    try:
        # The chart's FACESWAP_*_ADDR form; "localhost" stands in for the headless Service's name.
        with make_channel(f"dns:///localhost:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(grace=0.5)
