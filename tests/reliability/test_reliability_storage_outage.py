"""Storage made read-only for a while in the middle of conversion.

Real storage: the local store's folder is bind-mounted onto itself and remounted read-only, so every
service (the converter writing frames, the orchestrator cleaning up) gets EROFS from the kernel.
The job retries the stage with backoff as UNAVAILABLE, then either succeeds once storage is back
(slow test) or, past FACESWAP_STAGE_RETRY_SECONDS, fails cleanly: no server path in the message and,
once storage answers again, nothing of the job left (its clean-up failed while read-only and is done
by the sweep). Needs CAP_SYS_ADMIN for mount(8); skipped without it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import SAMPLES, cut_clip

from faceswap.storage import LocalStore
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.client import TERMINAL, JobClient
from services.orchestrator.launcher import ServiceGroup

OUTAGE_S = 20.0


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=20)


def _read_only(path: Path, on: bool) -> None:
    """Remounts the bind mount read-only (or back); a file open for writing makes it EBUSY: retry."""
    deadline = time.monotonic() + 10
    while True:
        done = _mount("-o", f"remount,bind,{'ro' if on else 'rw'}", str(path))
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"remount failed: {done.stderr}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceGroup, Path, dict[str, Path]]]:
    tmp = tmp_path_factory.mktemp("outage")
    storage = tmp / "data" / "storage"
    storage.mkdir(parents=True)
    if os.geteuid() != 0 or _mount("--bind", str(storage), str(storage)).returncode != 0:
        pytest.skip("needs mount(8) with CAP_SYS_ADMIN to make real storage read-only")
    clips = {
        "a": cut_clip(SAMPLES / "liveportrait_s18.mp4", tmp / "a.mp4", 1.0, "320:180"),
        "b": cut_clip(SAMPLES / "liveportrait_d10.mp4", tmp / "b.mp4", 1.0, "256:256"),
    }
    env = {
        "FACESWAP_DATA_DIR": str(tmp / "data"),
        "FACESWAP_DB_URL": "",
        "FACESWAP_STORAGE": "local",
        "FACESWAP_THREADS": "1",
        "FACESWAP_STAGE_RETRY_SECONDS": "5",
        "FACESWAP_CONVERT_CHUNK_FRAMES": "4",
        "FACESWAP_CLEANUP_SWEEP_S": "1",
        "FACESWAP_POLL_SECONDS": "0.2",
        "FACESWAP_LOG_FORMAT": "text",
    }
    try:
        with ServiceGroup(env=env, log_dir=tmp / "logs") as group:
            yield group, storage, clips
    finally:
        _mount("-o", "remount,bind,rw", str(storage))
        subprocess.run(["umount", "-l", str(storage)], capture_output=True, timeout=20)


def _spec(client: JobClient, clips: dict[str, Path]) -> jobs_pb2.SwapJobSpec:
    spec = jobs_pb2.SwapJobSpec(video=client.upload(clips["a"]), faces_b=[client.upload(clips["b"])])
    spec.options.train.preset = "lite"
    spec.options.convert.method = "autoencoder"  # these jobs exercise training
    spec.options.train.steps = 8
    spec.options.train.batch_size = 4
    spec.options.skip_evaluate = True
    return spec


def _outage_during_convert(
    client: JobClient, storage: Path, job: jobs_pb2.Job, fail_ok: bool
) -> tuple[jobs_pb2.Job, list[str], bool]:
    """Makes storage read-only once conversion runs, for OUTAGE_S; returns the final job, its event
    messages and whether the job had ended (FAILED) while storage was still read-only."""
    deadline = time.monotonic() + 180
    while client.get(job.name).progress.stage != "convert":
        assert client.get(job.name).state not in TERMINAL, client.get(job.name)
        assert time.monotonic() < deadline, "conversion never started"
        time.sleep(0.05)
    _read_only(storage, True)
    ended_read_only = False
    try:
        back_at = time.monotonic() + OUTAGE_S
        while time.monotonic() < back_at:
            if client.get(job.name).state in TERMINAL:
                ended_read_only = True
                if fail_ok:
                    time.sleep(2.0)  # the clean-up and a sweep or two fail on the read-only store
                    assert any((storage / "faceswap" / job.name).rglob("*.png")), (
                        "cleaned up while read-only?"
                    )
                    break  # the rest of the outage would prove nothing more
            time.sleep(0.2)
    finally:
        _read_only(storage, False)
    deadline = time.monotonic() + 180
    while client.get(job.name).state not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.3)
    return client.get(job.name), [r.event.message for r in client.watch(job.name)], ended_read_only


def _backoff(messages: list[str]) -> list[float]:
    return [
        float(m) for m in re.findall(r"convert: UNAVAILABLE .*?retrying in ([0-9.]+) s", "\n".join(messages))
    ]


def test_storage_read_only_mid_convert_fails_cleanly_and_is_cleaned_up(outage) -> None:
    group, storage, clips = outage
    with JobClient(group.jobs_address) as client:
        job, _ = client.submit(_spec(client, clips))
        final, messages, ended_read_only = _outage_during_convert(client, storage, job, fail_ok=True)
        assert ended_read_only, "the retry window (5 s) is shorter than the outage"
        assert final.state == jobs_pb2.JOB_STATE_FAILED, final
        assert final.error.where == "convert"
        assert final.error.code == 14, final.error  # UNAVAILABLE
        assert "storage unavailable: Read-only file system" in final.error.message
        assert str(storage) not in final.error.message and "/" not in final.error.message, final.error
        assert "Traceback" not in final.error.message
        delays = _backoff(messages)
        print("retry delays", delays)
        assert len(delays) >= 3 and delays == sorted(delays) and delays[-1] > delays[0], messages
        # Storage is back: the sweep (every 1 s) removes what the failed clean-up left.
        store = LocalStore(storage, "faceswap")
        job_dir = storage / "faceswap" / job.name
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = [k for k in store.list(job.name) if "/model/" not in k] + list(store.list("uploads"))
            if not left:
                break
            time.sleep(0.3)
        assert left == [], left[:5]
        # No empty folders, no sidecars of deleted objects, no unfinished writes.
        assert [p for p in job_dir.rglob("*") if p.is_dir() and not any(p.iterdir())] == []
        assert [p for p in job_dir.rglob(".*.part")] == []
        meta = storage / "faceswap" / ".faceswap-meta"
        orphans = [
            p
            for p in meta.rglob("*.json")
            if not (storage / "faceswap" / p.relative_to(meta)).with_suffix("").is_file()
        ]
        assert orphans == [], orphans[:5]


@pytest.mark.slow
def test_storage_read_only_mid_convert_job_succeeds_once_back(outage) -> None:
    group, storage, clips = outage
    group.env["FACESWAP_STAGE_RETRY_SECONDS"] = "120"
    group.kill("orchestrator")
    group.restart("orchestrator")
    with JobClient(group.jobs_address) as client:
        job, _ = client.submit(_spec(client, clips))
        final, messages, ended_read_only = _outage_during_convert(client, storage, job, fail_ok=False)
    assert not ended_read_only
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    delays = _backoff(messages)
    assert len(delays) >= 3 and delays == sorted(delays), messages
    from faceswap.media.store import probe

    out = storage.parent / "out.mp4"
    LocalStore(storage, "faceswap").get_file(final.output.key, out)
    assert probe(out).frame_count == probe(clips["a"]).frame_count
