"""The job API behind mutual TLS and bearer tokens, through the same JobClient the CLI uses."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from reliability_support import SAMPLES, TOKENS

from faceswap.storage import LocalStore
from services.common.server import start_server
from services.orchestrator.client import JobClient
from services.orchestrator.server import build_spec
from services.orchestrator.store import open_job_store


def test_job_api_over_mutual_tls_with_tokens(monkeypatch: pytest.MonkeyPatch, tls_dir: Path) -> None:
    tmp_path = tls_dir
    monkeypatch.setenv("FACESWAP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACESWAP_TOKENS", ",".join(f"{c}:{t}" for c, t in TOKENS.items()))
    monkeypatch.setenv("FACESWAP_TLS_CA", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("FACESWAP_TLS_CERT", str(tmp_path / "server.pem"))
    monkeypatch.setenv("FACESWAP_TLS_KEY", str(tmp_path / "server.key"))
    jobs = open_job_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    objects = LocalStore(tmp_path / "objects", "faceswap")
    server = start_server(build_spec(objects, jobs, run_jobs=False), port=0, metrics_port=0)
    try:
        address = f"localhost:{server.port}"
        # The client's own certificate (mutual TLS) and alice's token.
        monkeypatch.setenv("FACESWAP_TLS_CERT", str(tmp_path / "client.pem"))
        monkeypatch.setenv("FACESWAP_TLS_KEY", str(tmp_path / "client.key"))
        with JobClient(address, timeout=10, token=TOKENS["alice"]) as client:
            ref = client.upload(SAMPLES / "liveportrait_s18.mp4")
            assert ref.key.startswith("uploads/")
            assert list(client.list().jobs) == []
        with JobClient(address, timeout=10, token="wrong") as client:
            with pytest.raises(grpc.RpcError) as info:
                client.list()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Plaintext, or TLS without a client certificate, gets nowhere.
        plain = grpc.insecure_channel(address)
        try:
            with pytest.raises(grpc.FutureTimeoutError):
                grpc.channel_ready_future(plain).result(timeout=2)
        finally:
            plain.close()
        monkeypatch.delenv("FACESWAP_TLS_CERT")
        monkeypatch.delenv("FACESWAP_TLS_KEY")
        with JobClient(address, timeout=5, token=TOKENS["alice"]) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.list()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(1)
        jobs.close()
