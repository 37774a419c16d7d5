"""Fault injection (loopback only, real subprocesses): a service killed mid-job and restarted, and
storage that fails under the job. The job still completes with the undisturbed run's frame count,
or fails cleanly with a reason, and nothing is left behind that should not be."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from reliability_support import SAMPLES, TOKENS, cut_clip

from faceswap.storage import LocalStore, ObjectInfo, ObjectStore
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.client import TERMINAL, JobClient
from services.orchestrator.launcher import ServiceGroup

# Where each victim is killed: in the middle of its own stage where that stage lasts long enough to
# be caught; media is killed while the detector works (its encode stage is still ahead).
KILL_AT = {
    "media": "detect_a",
    "detector": "detect_a",
    "trainer": "train",
    "converter": "convert",
    "orchestrator": "train",
}


@pytest.fixture(scope="module")
def fault_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fault_clips")
    return {
        "a": cut_clip(SAMPLES / "liveportrait_s18.mp4", d / "a.mp4", 1.0, "320:180"),
        "b": cut_clip(SAMPLES / "liveportrait_d10.mp4", d / "b.mp4", 1.0, "256:256"),
    }


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    """Every service as a subprocess, all behind bearer tokens (the orchestrator presents its own)."""
    tmp = tmp_path_factory.mktemp("faults")
    env = {
        "FACESWAP_DATA_DIR": str(tmp / "data"),
        "FACESWAP_DB_URL": "",
        "FACESWAP_STORAGE": "local",
        "FACESWAP_THREADS": "1",
        "FACESWAP_JOB_LEASE_SECONDS": "3",
        "FACESWAP_STAGE_RETRY_SECONDS": "120",
        "FACESWAP_CONVERT_CHUNK_FRAMES": "8",
        "FACESWAP_POLL_SECONDS": "0.3",
        "FACESWAP_LOG_FORMAT": "text",
        "FACESWAP_TOKENS": ",".join(f"{c}:{t}" for c, t in TOKENS.items()),
        "FACESWAP_TOKEN": TOKENS["svc"],
        "FACESWAP_WORKER_ID": "faults-orchestrator",  # a restarted orchestrator reclaims its job at once
    }
    with ServiceGroup(env=env, log_dir=tmp / "logs") as g:
        yield g


def _spec(client: JobClient, clips: dict[str, Path]) -> jobs_pb2.SwapJobSpec:
    spec = jobs_pb2.SwapJobSpec(video=client.upload(clips["a"]), faces_b=[client.upload(clips["b"])])
    spec.options.train.preset = "lite"
    spec.options.convert.method = "autoencoder"  # these jobs exercise training
    spec.options.train.steps = 16
    spec.options.train.batch_size = 4
    spec.options.train.save_every = 4
    spec.options.skip_evaluate = True
    return spec


def _wait(client: JobClient, name: str, cond, timeout: float) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = client.get(name)
        except Exception:  # the orchestrator itself may be the one restarting
            time.sleep(0.3)
            continue
        if cond(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"condition not met in {timeout}s: {client.get(name)}")


def _frames(group: ServiceGroup, job: jobs_pb2.Job, tmp: Path) -> int:
    from faceswap.media.store import probe

    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.error
    store = LocalStore(Path(group.env["FACESWAP_DATA_DIR"]) / "storage", "faceswap")
    out = tmp / f"{job.name.split('/')[1]}.mp4"
    store.get_file(job.output.key, out)  # checksum verified on read
    return probe(out).frame_count


def _run(
    group: ServiceGroup,
    clips: dict[str, Path],
    tmp: Path,
    victim: str | None = None,
    sig: int = signal.SIGKILL,
) -> tuple[int, str]:
    with JobClient(group.jobs_address, token=TOKENS["alice"]) as client:
        job, _ = client.submit(_spec(client, clips))
        if victim is not None:
            stage = KILL_AT[victim]
            order = ["media_extract", "detect_a", "detect_b", "train", "convert", "encode", "evaluate"]
            at_kill = _wait(
                client,
                job.name,
                lambda j: (
                    j.state in TERMINAL
                    or order.index(j.progress.stage or "media_extract") >= order.index(stage)
                ),
                120,
            )
            assert at_kill.state not in TERMINAL, f"{victim}: the job ended before the kill"
            # SIGKILL: no drain, no checkpoint on the way out; SIGTERM: drain (the trainer checkpoints).
            group.kill(victim, sig)
            group.restart(victim)
        final = _wait(client, job.name, lambda j: j.state in TERMINAL, 240)
        messages = " | ".join(r.event.message for r in client.watch(job.name))
        return _frames(group, final, tmp), messages


@pytest.mark.parametrize(("victim", "sig"), [("converter", signal.SIGKILL), ("trainer", signal.SIGTERM)])
def test_service_stopped_mid_job_restarts_and_job_completes(
    group: ServiceGroup, fault_clips, tmp_path: Path, victim: str, sig: int
) -> None:
    from faceswap.media.store import probe

    undisturbed = probe(fault_clips["a"]).frame_count  # what an undisturbed run outputs (e2e tests)
    frames, messages = _run(group, fault_clips, tmp_path, victim, sig)
    assert frames == undisturbed
    if victim == "trainer":
        assert "resum" in messages.lower(), messages  # drained with a checkpoint, resumed from it


@pytest.mark.slow
def test_each_service_killed_in_turn(group: ServiceGroup, fault_clips, tmp_path: Path) -> None:
    undisturbed, _ = _run(group, fault_clips, tmp_path)
    for victim in KILL_AT:
        assert _run(group, fault_clips, tmp_path, victim)[0] == undisturbed, victim


# ---- storage faults --------------------------------------------------------------------------
class FlakyStore(ObjectStore):
    """A LocalStore whose put/open of matching keys raise OSError for the first ``failures`` calls."""

    def __init__(self, inner: LocalStore, match: str, failures: int, on: str) -> None:
        self.inner, self.match, self.failures, self.on = inner, match, failures, on
        self.bucket = inner.bucket
        self.injected = 0

    def _maybe_fail(self, op: str, key: str) -> None:
        if op == self.on and self.match in key and self.injected < self.failures:
            self.injected += 1
            raise OSError(f"injected {op} failure on {key}")

    def put_stream(self, key: str, stream: BinaryIO, size: int = -1) -> ObjectInfo:
        self._maybe_fail("put", key)
        return self.inner.put_stream(key, stream, size)

    def open(self, key: str) -> BinaryIO:
        self._maybe_fail("get", key)
        return self.inner.open(key)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)


@pytest.mark.parametrize(("op", "match"), [("put", "/input/video"), ("get", "uploads/")])
def test_storage_failure_fails_the_job_cleanly(tmp_path: Path, monkeypatch, op: str, match: str) -> None:
    """The job API's own store fails copying the inputs: the job FAILS with the reason, at its stage,
    and its objects (and uploads) are removed; later jobs on the healthy store still run."""
    from services.common.server import start_server
    from services.media.server import build_spec as media_spec
    from services.orchestrator.server import build_spec as jobs_spec
    from services.orchestrator.store import open_job_store

    for key, value in {"FACESWAP_DATA_DIR": str(tmp_path), "FACESWAP_POLL_SECONDS": "0.2"}.items():
        monkeypatch.setenv(key, value)
    inner = LocalStore(tmp_path / "storage", "faceswap")
    flaky = FlakyStore(inner, match, failures=1, on=op)
    jobs = open_job_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    media = start_server(media_spec(inner), port=0, metrics_port=0)
    monkeypatch.setenv("FACESWAP_MEDIA_ADDR", f"127.0.0.1:{media.port}")
    monkeypatch.setenv("FACESWAP_DETECTOR_ADDR", "127.0.0.1:9")
    monkeypatch.setenv("FACESWAP_STAGE_RETRY_SECONDS", "1")
    api = start_server(jobs_spec(flaky, jobs), port=0, metrics_port=0)
    try:
        with JobClient(f"127.0.0.1:{api.port}") as client:
            spec = jobs_pb2.SwapJobSpec(
                video=client.upload(SAMPLES / "liveportrait_s18.mp4"),
                faces_b=[client.upload(SAMPLES / "liveportrait_d10.mp4")],
            )
            job, _ = client.submit(spec)
            final = _wait(client, job.name, lambda j: j.state in TERMINAL, 60)
    finally:
        api.stop(1)
        media.stop(1)
        jobs.close()
    assert flaky.injected == 1
    assert final.state == jobs_pb2.JOB_STATE_FAILED
    assert final.error.where == "media_extract"
    assert "injected" in final.error.message and "Traceback" not in final.error.message
    assert list(inner.list(job.name)) == [] and list(inner.list("uploads")) == []


def test_corrupted_upload_is_never_processed(platform, tmp_path: Path) -> None:
    """Bytes changed at rest after upload: the sha256 recorded on write catches them at the copy."""
    import cv2
    import numpy as np

    photo = tmp_path / "b.jpg"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    with JobClient(platform.jobs_address, token=TOKENS["alice"]) as client:
        video = client.upload(SAMPLES / "liveportrait_s18.mp4")
        path = platform.objects.local_path(video.key)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
        path.write_bytes(bytes(data))
        job, _ = client.submit(jobs_pb2.SwapJobSpec(video=video, faces_b=[client.upload(photo)]))
        final = _wait(client, job.name, lambda j: j.state in TERMINAL, 60)
    assert final.state == jobs_pb2.JOB_STATE_FAILED
    assert final.error.where == "media_extract" and "sha256 mismatch" in final.error.message
    assert list(platform.objects.list(job.name)) == []
