"""Bad input and dead services fail a job clearly, at the right stage, without hanging."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.client import TERMINAL, JobClient
from services.orchestrator.launcher import ServiceGroup

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def media_only(tmp_path_factory: pytest.TempPathFactory):
    """Media and orchestrator only: the detector is 'dead' (nothing listens at its address)."""
    tmp = tmp_path_factory.mktemp("failures")
    env = {
        "FACESWAP_DATA_DIR": str(tmp / "data"),
        "FACESWAP_DB_URL": "",
        "FACESWAP_STORAGE": "local",
        "FACESWAP_STAGE_RETRY_SECONDS": "4",
        "FACESWAP_THREADS": "1",
        "FACESWAP_POLL_SECONDS": "0.3",
    }
    with ServiceGroup(env=env, services=("media", "orchestrator"), log_dir=tmp / "logs") as group:
        yield group


def _wait_end(client: JobClient, name: str, timeout: float = 60) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(name)
        if job.state in TERMINAL:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job still {client.get(name).state} after {timeout}s")


def test_not_a_video_fails_at_media_stage(media_only: ServiceGroup, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"this is a text file, not a video\n" * 100)
    photo = tmp_path / "b.jpg"
    photo.write_bytes(b"not really a photo")
    with JobClient(media_only.jobs_address) as client:
        spec = jobs_pb2.SwapJobSpec(video=client.upload(fake), faces_b=[client.upload(photo)])
        job, _ = client.submit(spec)
        final = _wait_end(client, job.name)
    assert final.state == jobs_pb2.JOB_STATE_FAILED
    assert final.error.where == "media_extract"
    assert final.error.message and "Traceback" not in final.error.message


def test_dead_service_is_retried_then_fails_clearly(media_only: ServiceGroup, clips) -> None:
    with JobClient(media_only.jobs_address) as client:
        spec = jobs_pb2.SwapJobSpec(video=client.upload(clips["a"]), faces_b=[client.upload(clips["b"])])
        spec.options.skip_evaluate = True
        job, _ = client.submit(spec)
        final = _wait_end(client, job.name, timeout=120)
        messages = [r.event.message for r in client.watch(job.name)]
    assert final.state == jobs_pb2.JOB_STATE_FAILED
    assert final.error.where == "detect_a"
    assert final.error.code == 14  # UNAVAILABLE
    assert "gave up" in final.error.message
    assert any("retrying" in m for m in messages)


def _faceswap(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The CLI in process (the same main() as the console script, without a Python start-up)."""
    from services.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_jobs_commands(media_only: ServiceGroup, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    server = ["--server", media_only.jobs_address]
    with JobClient(media_only.jobs_address) as client:
        photo = tmp_path / "b.jpg"
        photo.write_bytes(b"x")
        video = tmp_path / "a.mp4"
        video.write_bytes(b"not a video")
        job, _ = client.submit(
            jobs_pb2.SwapJobSpec(video=client.upload(video), faces_b=[client.upload(photo)])
        )
        _wait_end(client, job.name)
    code, out, _ = _faceswap(capsys, "jobs", *server, "list")
    assert code == 0 and job.name in out
    code, out, _ = _faceswap(capsys, "jobs", *server, "get", job.name, "--json")
    assert code == 0 and json.loads(out)["state"] == "JOB_STATE_FAILED"
    code, out, err = _faceswap(capsys, "jobs", *server, "watch", job.name)
    assert code == 1 and "media_extract" in out + err
    code, _, err = _faceswap(capsys, "jobs", *server, "get", "jobs/" + "0" * 32)
    assert code == 2 and "not found" in err
    code, _, err = _faceswap(capsys, "jobs", *server, "list", "--state", "sleeping")
    assert code == 2 and "--state" in err


def test_cli_swap_remote_without_server_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from services.orchestrator.launcher import free_port

    code, _, err = _faceswap(
        capsys,
        *("swap", str(SAMPLES / "liveportrait_s18.mp4"), "--faces-b", str(tmp_path)),
        *("-o", str(tmp_path / "o.mp4"), "--remote", "--server", f"127.0.0.1:{free_port()}"),
    )
    assert code == 2 and "no job API answers" in err
