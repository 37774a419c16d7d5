"""Bearer tokens and TLS on the shared server bootstrap, over real sockets."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.auth import current_client
from services.common.client import make_channel
from services.common.pb.faceswap.v1 import media_pb2, media_pb2_grpc
from services.common.server import ServiceSpec, start_server


class _WhoAmI(media_pb2_grpc.MediaServiceServicer):
    def Probe(self, request, context):
        return media_pb2.ProbeResponse(info=media_pb2.VideoInfo(container=current_client()))


def _spec(public: bool = True) -> ServiceSpec:
    return ServiceSpec(
        name="auth-test",
        register=lambda s: media_pb2_grpc.add_MediaServiceServicer_to_server(_WhoAmI(), s),
        service_names=["faceswap.v1.MediaService"],
        public=public,
    )


def test_bearer_tokens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# client token\nalice s3cret-a\nbob s3cret-b\n")
    monkeypatch.setenv("FACESWAP_TOKENS_FILE", str(tokens))
    server = start_server(_spec(), port=0, metrics_port=0)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = media_pb2_grpc.MediaServiceStub(channel)
        for metadata in ([], [("authorization", "Bearer wrong")], [("authorization", "s3cret-a")]):
            with pytest.raises(grpc.RpcError) as err:
                stub.Probe(media_pb2.ProbeRequest(), metadata=metadata, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.Probe(
            media_pb2.ProbeRequest(), metadata=[("authorization", "Bearer s3cret-b")], timeout=5
        )
        assert reply.info.container == "bob"
        # Health checks stay open for kubelet probes.
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    finally:
        server.stop(grace=1)


def test_internal_service_admits_only_internal_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESWAP_TOKENS", "alice:tok-a,orchestrator:tok-o,svc:tok-s")
    monkeypatch.setenv("FACESWAP_TOKEN", "tok-s")  # this process's own identity is admitted too
    monkeypatch.setenv("FACESWAP_INTERNAL_CLIENTS", "orchestrator,worker")
    server = start_server(_spec(public=False), port=0, metrics_port=0)
    try:
        stub = media_pb2_grpc.MediaServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        with pytest.raises(grpc.RpcError) as err:
            stub.Probe(media_pb2.ProbeRequest(), metadata=[("authorization", "Bearer tok-a")], timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for token, who in (("tok-o", "orchestrator"), ("tok-s", "svc")):
            reply = stub.Probe(
                media_pb2.ProbeRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=5
            )
            assert reply.info.container == who
    finally:
        server.stop(grace=1)


def test_mutual_tls(monkeypatch: pytest.MonkeyPatch, tls_dir: Path) -> None:
    tmp_path = tls_dir
    monkeypatch.setenv("FACESWAP_TLS_CA", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("FACESWAP_TLS_CERT", str(tmp_path / "server.pem"))
    monkeypatch.setenv("FACESWAP_TLS_KEY", str(tmp_path / "server.key"))
    server = start_server(_spec(), port=0, metrics_port=0)
    try:
        address = f"localhost:{server.port}"
        # A client with no certificate is refused by the mTLS server.
        anonymous = grpc.secure_channel(
            address, grpc.ssl_channel_credentials(root_certificates=(tmp_path / "ca.pem").read_bytes())
        )
        with pytest.raises(grpc.RpcError):
            media_pb2_grpc.MediaServiceStub(anonymous).Probe(media_pb2.ProbeRequest(), timeout=5)
        monkeypatch.setenv("FACESWAP_TLS_CERT", str(tmp_path / "client.pem"))
        monkeypatch.setenv("FACESWAP_TLS_KEY", str(tmp_path / "client.key"))
        stub = media_pb2_grpc.MediaServiceStub(make_channel(address))
        assert stub.Probe(media_pb2.ProbeRequest(), timeout=5).info.container == "local"
    finally:
        server.stop(grace=1)
