"""A service started on a free port answers health, lists itself via reflection, exports metrics."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from faceswap.errors import InvalidArgument
from services.common.pb.faceswap.v1 import media_pb2, media_pb2_grpc
from services.common.server import ServiceSpec, start_server


class _Probe(media_pb2_grpc.MediaServiceServicer):
    def Probe(self, request, context):  # noqa: N802 - gRPC method name
        if not request.video.key:
            raise InvalidArgument("is required", field="video.key")
        if request.video.key == "boom":
            raise RuntimeError("unexpected")
        return media_pb2.ProbeResponse()


@pytest.fixture
def server():
    spec = ServiceSpec(
        name="probe-test",
        register=lambda s: media_pb2_grpc.add_MediaServiceServicer_to_server(_Probe(), s),
        service_names=[media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name],
    )
    running = start_server(spec, port=0, metrics_port=0)
    yield running
    running.stop(grace=1)


def _metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _sample(text: str, line_prefix: str) -> float:
    """Value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_reflection_metrics_and_errors(server) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="faceswap.v1.MediaService"), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )

    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"faceswap.v1.MediaService", "grpc.health.v1.Health"} <= names

    before = _metrics(server.metrics_port)
    stub = media_pb2_grpc.MediaServiceStub(channel)
    stub.Probe(media_pb2.ProbeRequest(video={"key": "x"}), timeout=5)
    with pytest.raises(grpc.RpcError) as err:
        stub.Probe(media_pb2.ProbeRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "video.key" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Probe(media_pb2.ProbeRequest(video={"key": "boom"}), timeout=5)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "Traceback" not in err.value.details()
    after = _metrics(server.metrics_port)
    ok_line = 'faceswap_rpc_requests_total{code="OK",method="Probe",service="faceswap.v1.MediaService"}'
    # Counters are process-wide, so compare values rather than presence.
    assert _sample(after, ok_line) == _sample(before, ok_line) + 1
    assert 'code="INVALID_ARGUMENT"' in after
    assert "faceswap_rpc_latency_seconds_bucket" in after


def test_stop_turns_health_not_serving(server) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    server.health.enter_graceful_shutdown()
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
