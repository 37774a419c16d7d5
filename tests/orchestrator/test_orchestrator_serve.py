"""``faceswap serve`` restarts a dead service with backoff instead of stopping everything, and
``faceswap jobs download`` saves a job's output. Real subprocesses, loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from services.orchestrator.launcher import ROOT, ServiceGroup, free_port, health_ok

SAMPLES = ROOT / "samples"


def test_supervise_restarts_a_killed_service_on_its_port(tmp_path: Path) -> None:
    env = {"FACESWAP_DATA_DIR": str(tmp_path / "data"), "FACESWAP_STORAGE": "local", "FACESWAP_DB_URL": ""}
    said: list[str] = []
    stop = threading.Event()
    with ServiceGroup(env=env, services=("media",), log_dir=tmp_path / "logs") as group:
        supervisor = threading.Thread(target=group.supervise, args=(stop, said.append, 1.0, 2.0), daemon=True)
        supervisor.start()
        try:
            for _round in range(2):  # twice: the second restart waits longer (backoff)
                first = group.procs["media"].pid
                group.kill("media")
                deadline = time.monotonic() + 60
                while not (group.procs["media"].pid != first and health_ok(group.address("media"))):
                    assert time.monotonic() < deadline, said
                    time.sleep(0.2)
        finally:
            stop.set()
            supervisor.join(5)
    exits = [line for line in said if "exited" in line]
    assert len(exits) == 2, said
    assert "exited with code -9; restarting it in 1 s" in exits[0], said
    assert "restarting it in 2 s" in exits[1] and "media.log" in exits[1], said  # backoff doubles
    assert sum("restarted on" in line for line in said) == 2, said


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _cut(src: Path, dst: Path, scale: str) -> Path:
    from faceswap.media.store import find_ffmpeg

    subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-y", "-ss", "1", "-i", str(src), "-t", "1"),
            *("-vf", f"scale={scale}", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(dst)),
        ],
        check=True,
    )
    return dst


def _faceswap(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_serve_survives_a_killed_service_and_jobs_download(tmp_path: Path) -> None:
    """kill -9 the converter under `faceswap serve` while it converts: serve restarts it, the job
    finishes, and `faceswap jobs download NAME -o OUT` saves a video with the input's frame count."""
    from faceswap.media.store import probe
    from services.common.pb.faceswap.v1 import jobs_pb2
    from services.orchestrator.client import TERMINAL, JobClient

    a = _cut(SAMPLES / "liveportrait_s18.mp4", tmp_path / "a.mp4", "320:180")
    b = _cut(SAMPLES / "liveportrait_d10.mp4", tmp_path / "b.mp4", "256:256")
    ports = {name: free_port() for name in ("MEDIA", "DETECTOR", "TRAINER", "CONVERTER", "JOBS")}
    env = {
        **os.environ,
        **{f"FACESWAP_{name}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()},
        "FACESWAP_DATA_DIR": str(tmp_path / "data"),
        "FACESWAP_STORAGE": "local",
        "FACESWAP_DB_URL": "",
        "FACESWAP_THREADS": "1",
        "FACESWAP_CONVERT_CHUNK_FRAMES": "4",
        "FACESWAP_POLL_SECONDS": "0.3",
        "PYTHONUNBUFFERED": "1",
    }
    jobs_addr = env["FACESWAP_JOBS_ADDR"]
    out_log = open(tmp_path / "serve.out", "w")  # noqa: SIM115 - closed below
    serve = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdout=out_log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not health_ok(jobs_addr):
            assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.out").read_text()
            time.sleep(0.5)
        with JobClient(jobs_addr) as client:
            spec = jobs_pb2.SwapJobSpec(video=client.upload(a), faces_b=[client.upload(b)])
            spec.options.train.preset, spec.options.train.steps = "lite", 8
            spec.options.convert.method = "autoencoder"  # a job that trains
            spec.options.train.batch_size, spec.options.skip_evaluate = 4, True
            job, _ = client.submit(spec)
            while client.get(job.name).progress.stage != "convert":
                assert client.get(job.name).state not in TERMINAL, client.get(job.name)
                time.sleep(0.1)
            victim = next(p for p in _children(serve.pid) if "services.converter.server" in _cmdline(p))
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 240
            while client.get(job.name).state not in TERMINAL and time.monotonic() < deadline:
                assert serve.poll() is None, (tmp_path / "serve.out").read_text()
                time.sleep(0.5)
            final = client.get(job.name)
        assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
        assert serve.poll() is None  # still serving
        done = _faceswap(env, "jobs", "download", job.name, "-o", str(tmp_path / "out.mp4"))
        assert done.returncode == 0, done.stderr
        assert probe(tmp_path / "out.mp4").frame_count == probe(a).frame_count
        said = (tmp_path / "serve.out").read_text()
        assert "service converter exited with code -9; restarting it in" in said, said
        assert "service converter restarted on" in said, said
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
        out_log.close()


def test_jobs_download_of_an_unfinished_job_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "FACESWAP_JOBS_ADDR": f"127.0.0.1:{free_port()}"}
    done = _faceswap(env, "jobs", "download", "jobs/" + "0" * 32, "-o", str(tmp_path / "o.mp4"), timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "no job API answers" in done.stderr, done.stderr
