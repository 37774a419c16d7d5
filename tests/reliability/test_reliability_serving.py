"""How servers listen and hold up: loopback by default, every
interface (IPv6 and IPv4) only when configured; 100 open WatchJob streams while health and GetJob
answer within 1 s; streams beyond the limit refused with RESOURCE_EXHAUSTED; a plaintext health
port; a draining server ends watch streams with UNAVAILABLE so clients reconnect."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from netutil import free_port

from faceswap.storage import LocalStore
from services.common.pb.faceswap.v1 import jobs_pb2, jobs_pb2_grpc
from services.common.server import RunningServer, start_server
from services.orchestrator.client import JobClient
from services.orchestrator.launcher import ROOT, health_ok

STREAMS = 100
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on port, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                found.add(addr)
    return found


def _start_media(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen, int, int]:
    port, metrics = free_port(), free_port()
    full = {**env, "FACESWAP_DATA_DIR": str(tmp), "FACESWAP_METRICS_PORT": str(metrics)}
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "services.media.server", "--port", str(port)],
        env={**os.environ, **full},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not health_ok(f"127.0.0.1:{port}") and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc, port, metrics


def test_services_listen_on_loopback_by_default(tmp_path: Path) -> None:
    proc, port, metrics = _start_media({}, tmp_path)
    try:
        for p in (port, metrics):
            # 127.0.0.1 only (gRPC's socket may be IPv6 with the IPv4-mapped address ::ffff:127.0.0.1)
            assert _listening(p) and _listening(p) <= LOOPBACK, (p, _listening(p))
    finally:
        proc.terminate()
        proc.wait(30)


def test_bind_all_interfaces_serves_ipv6_and_ipv4(tmp_path: Path) -> None:
    proc, port, metrics = _start_media({"FACESWAP_BIND_HOST": "[::]"}, tmp_path)
    try:
        for p in (port, metrics):
            assert _listening(p) == {"00000000000000000000000000000000"}, _listening(p)  # [::]
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                with socket.socket(family) as s:
                    assert s.connect_ex((host, p)) == 0, (host, p)
        assert health_ok(f"[::1]:{port}") and health_ok(f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture()
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningServer, str]]:
    """An API-only job server (no scheduler: submitted jobs stay QUEUED, their watches stay open)."""
    from services.orchestrator.server import build_spec
    from services.orchestrator.store import open_job_store

    monkeypatch.setenv("FACESWAP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACESWAP_POLL_SECONDS", "0.5")
    health_port = free_port()
    monkeypatch.setenv("FACESWAP_HEALTH_PORT", str(health_port))
    jobs = open_job_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    server = start_server(
        build_spec(LocalStore(tmp_path / "storage", "faceswap"), jobs, run_jobs=False), port=0, metrics_port=0
    )
    address = f"127.0.0.1:{server.port}"
    with JobClient(address) as client:
        video = tmp_path / "a.mp4"
        video.write_bytes(b"\0" * 64)
        spec = jobs_pb2.SwapJobSpec(video=client.upload(video), faces_b=[client.upload(video)])
        job, _ = client.submit(spec)
    server.job_name = job.name  # type: ignore[attr-defined]
    server.health_port = health_port  # type: ignore[attr-defined]
    try:
        yield server, address
    finally:
        server.stop(1)
        jobs.close()


def _open_watches(address: str, name: str, n: int) -> tuple[list, grpc.Channel]:
    channel = grpc.insecure_channel(address)
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    calls = [stub.WatchJob(jobs_pb2.WatchJobRequest(name=name), timeout=120) for _ in range(n)]
    return calls, channel


def test_health_answers_with_100_open_watch_streams(api) -> None:
    server, address = api
    calls, channel = _open_watches(address, server.job_name, STREAMS)
    try:
        for call in calls:
            assert next(call).event.sequence == 0  # the snapshot: every stream is open and served
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
        stub = jobs_pb2_grpc.JobServiceStub(grpc.insecure_channel(address))
        plain = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{server.health_port}"))
        worst = 0.0
        for _ in range(10):
            for check in (
                lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=1.0),
                lambda: plain.Check(health_pb2.HealthCheckRequest(), timeout=1.0),
                lambda: stub.GetJob(jobs_pb2.GetJobRequest(name=server.job_name), timeout=1.0),
            ):
                started = time.perf_counter()
                check()
                worst = max(worst, time.perf_counter() - started)
        print(f"worst health/GetJob latency with {STREAMS} open streams: {worst * 1000:.1f} ms")
        assert worst < 1.0
    finally:
        for call in calls:
            call.cancel()
        channel.close()


def test_streams_beyond_the_limit_are_resource_exhausted(tmp_path: Path, monkeypatch) -> None:
    from services.orchestrator.server import build_spec
    from services.orchestrator.store import open_job_store

    monkeypatch.setenv("FACESWAP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACESWAP_MAX_STREAMS", "4")
    monkeypatch.setenv("FACESWAP_MAX_STREAMS_PER_CLIENT", "2")
    jobs = open_job_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    server = start_server(
        build_spec(LocalStore(tmp_path / "storage", "faceswap"), jobs, run_jobs=False), port=0, metrics_port=0
    )
    try:
        address = f"127.0.0.1:{server.port}"
        with JobClient(address) as client:
            video = tmp_path / "a.mp4"
            video.write_bytes(b"\0" * 64)
            job, _ = client.submit(
                jobs_pb2.SwapJobSpec(video=client.upload(video), faces_b=[client.upload(video)])
            )
        calls, channel = _open_watches(address, job.name, 2)
        for call in calls:
            next(call)
        extra = jobs_pb2_grpc.JobServiceStub(channel).WatchJob(
            jobs_pb2.WatchJobRequest(name=job.name), timeout=10
        )
        with pytest.raises(grpc.RpcError) as err:
            next(extra)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "FACESWAP_MAX_STREAMS_PER_CLIENT" in err.value.details()
        for call in calls:
            call.cancel()
        deadline = time.monotonic() + 10
        while True:  # released once the server notices the cancelled streams (its next poll)
            again = jobs_pb2_grpc.JobServiceStub(channel).WatchJob(
                jobs_pb2.WatchJobRequest(name=job.name), timeout=10
            )
            try:
                assert next(again).event.sequence == 0
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.3)
        again.cancel()
    finally:
        server.stop(1)
        jobs.close()


def test_drain_ends_watch_streams_with_unavailable(api) -> None:
    server, address = api
    calls, channel = _open_watches(address, server.job_name, 1)
    assert next(calls[0]).event.sequence == 0
    stopper = threading.Thread(target=server.stop, args=(5,))
    stopper.start()
    with pytest.raises(grpc.RpcError) as err:
        for _ in calls[0]:
            pass
    stopper.join()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    channel.close()
