"""A table of bad inputs through the real job API over gRPC: each gets its documented status
(docs/reliability.md) and leaves no stray objects in storage."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from reliability_support import SAMPLES, TOKENS, Platform, huge_png

from services.common.pb.faceswap.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from services.orchestrator.client import TERMINAL, JobClient

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def alice(platform: Platform):
    with JobClient(platform.jobs_address, timeout=30, token=TOKENS["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def bob(platform: Platform):
    with JobClient(platform.jobs_address, timeout=30, token=TOKENS["bob"]) as client:
        yield client


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return huge_png(tmp_path_factory.mktemp("huge") / "b.png")


def _status(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code(), info.value.details() or ""


def _keys(platform: Platform, prefix: str = "") -> set[str]:
    return set(platform.objects.list(prefix))


def _wait_end(client: JobClient, name: str, timeout: float = 60) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(name)
        if job.state in TERMINAL:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job still {client.get(name).state} after {timeout}s")


def _photo(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / "b.jpg"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    return path


# ---- authentication and ownership ---------------------------------------------------------------
def test_wrong_or_missing_token_is_unauthenticated(platform: Platform) -> None:
    for token in ("not-a-token", ""):
        with JobClient(platform.jobs_address, token=token) as client:
            code, details = _status(lambda c=client: c.list())
            assert code == Code.UNAUTHENTICATED, details
    with JobClient(platform.jobs_address, token="wrong") as client:
        before = _keys(platform, "uploads")
        code, _ = _status(lambda: client.upload(SAMPLES / "liveportrait_s18.mp4"))
        assert code == Code.UNAUTHENTICATED
        assert _keys(platform, "uploads") <= before  # nothing new (cleanup may remove)


def test_other_clients_job_is_not_found(
    platform: Platform, alice: JobClient, bob: JobClient, tmp_path
) -> None:
    spec = jobs_pb2.SwapJobSpec(
        video=alice.upload(SAMPLES / "liveportrait_s18.mp4"), faces_b=[alice.upload(_photo(tmp_path))]
    )
    job, _ = alice.submit(spec, request_id="same-id")
    assert job.owner == "alice"
    for call in (
        lambda: bob.get(job.name),
        lambda: bob.cancel(job.name),
        lambda: list(bob.watch(job.name)),
        lambda: bob.download(common_pb2.ObjectRef(key=f"{job.name}/input/video.mp4"), tmp_path / "x.mp4"),
    ):
        code, details = _status(call)
        assert code == Code.NOT_FOUND, details
    assert job.name not in [j.name for j in bob.list().jobs]
    assert job.name in [j.name for j in alice.list().jobs]
    # Idempotency keys are per client: bob's "same-id" is a different job.
    bob_spec = jobs_pb2.SwapJobSpec(
        video=bob.upload(SAMPLES / "liveportrait_s18.mp4"), faces_b=[bob.upload(_photo(tmp_path))]
    )
    bob_job, created = bob.submit(bob_spec, request_id="same-id")
    assert created and bob_job.name != job.name and bob_job.request_id == "same-id"
    # Bob cannot point his job at alice's objects, even knowing the key.
    stolen = jobs_pb2.SwapJobSpec(
        video=common_pb2.ObjectRef(key=f"{job.name}/input/video.mp4"), faces_b=bob_spec.faces_b
    )
    code, details = _status(lambda: bob.submit(stolen))
    assert code == Code.PERMISSION_DENIED and "spec.video.key" in details
    for j in (job, bob_job):
        (alice if j is job else bob).cancel(j.name)


# ---- uploads ---------------------------------------------------------------------------------
def test_zero_length_upload_is_invalid(platform: Platform, alice: JobClient, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    before = _keys(platform, "uploads")
    code, details = _status(lambda: alice.upload(empty))
    assert code == Code.INVALID_ARGUMENT and "empty" in details
    assert _keys(platform, "uploads") <= before  # nothing new (cleanup may remove)


def test_upload_over_limit_is_resource_exhausted(
    platform: Platform, alice: JobClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (4 * 1024 * 1024))  # FACESWAP_MAX_UPLOAD_MB=3 here
    before = _keys(platform, "uploads")
    code, details = _status(lambda: alice.upload(big))
    assert code == Code.RESOURCE_EXHAUSTED and "FACESWAP_MAX_UPLOAD_MB" in details
    assert _keys(platform, "uploads") <= before  # nothing new (cleanup may remove)
    assert not list((platform.data_dir / "tmp").glob("upload-*"))  # the partial upload is gone


def test_message_over_max_message_mb_is_refused(platform: Platform) -> None:
    # A client that ignores FACESWAP_MAX_MESSAGE_MB (1 MiB here) and sends one 2 MiB message.
    channel = grpc.insecure_channel(
        platform.jobs_address, options=[("grpc.max_send_message_length", 64 << 20)]
    )
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    before = _keys(platform, "uploads")
    try:
        code, _ = _status(
            lambda: stub.UploadFile(
                iter([jobs_pb2.UploadFileRequest(filename="x.mp4", chunk=b"\0" * (2 << 20))]),
                timeout=10,
                metadata=[("authorization", f"Bearer {TOKENS['alice']}")],
            )
        )
    finally:
        channel.close()
    assert code == Code.RESOURCE_EXHAUSTED
    assert _keys(platform, "uploads") <= before  # nothing new (cleanup may remove)


# ---- submit-time checks ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "code", "text"),
    [
        ("../x.mp4", Code.INVALID_ARGUMENT, "spec.video.key"),
        ("/etc/passwd", Code.INVALID_ARGUMENT, "spec.video.key"),
        ("uploads/../../etc/passwd.mp4", Code.INVALID_ARGUMENT, "spec.video.key"),
        ("somewhere/else.mp4", Code.PERMISSION_DENIED, "spec.video.key"),
        ("jobs/0123456789abcdef0123456789abcdef/output.mp4", Code.PERMISSION_DENIED, "spec.video.key"),
    ],
)
def test_path_like_keys_are_refused(platform: Platform, alice: JobClient, tmp_path, key, code, text) -> None:
    spec = jobs_pb2.SwapJobSpec(video=common_pb2.ObjectRef(key=key), faces_b=[alice.upload(_photo(tmp_path))])
    before = {j.id for j in platform.jobs.list_jobs(owner="alice", page_size=500)[0]}
    got, details = _status(lambda: alice.submit(spec))
    assert got == code and text in details, details
    assert {j.id for j in platform.jobs.list_jobs(owner="alice", page_size=500)[0]} == before


def test_training_steps_over_limit(alice: JobClient, tmp_path: Path) -> None:
    spec = jobs_pb2.SwapJobSpec(
        video=alice.upload(SAMPLES / "liveportrait_s18.mp4"), faces_b=[alice.upload(_photo(tmp_path))]
    )
    spec.options.train.steps = 2_000_000
    code, details = _status(lambda: alice.submit(spec))
    assert code == Code.INVALID_ARGUMENT
    assert "spec.options.train.steps" in details and "FACESWAP_MAX_TRAIN_STEPS" in details


def test_huge_image_is_refused_before_decoding(alice: JobClient, big_photo: Path, tmp_path: Path) -> None:
    video = alice.upload(SAMPLES / "liveportrait_s18.mp4")
    huge = alice.upload(big_photo)
    for spec, field in (
        (jobs_pb2.SwapJobSpec(video=video, faces_b=[huge]), "spec.faces_b[0]"),
        (
            jobs_pb2.SwapJobSpec(
                video=video, faces_b=[alice.upload(_photo(tmp_path))], reference_photos=[huge]
            ),
            "spec.reference_photos[0]",
        ),
    ):
        code, details = _status(lambda s=spec: alice.submit(s))
        assert code == Code.RESOURCE_EXHAUSTED, details
        assert field in details and "20000x20000" in details and "FACESWAP_MAX_RESOLUTION" in details


# ---- inputs only the media stage can judge ---------------------------------------------------
def _failed_job(platform: Platform, client: JobClient, video: Path, photo: Path) -> jobs_pb2.Job:
    spec = jobs_pb2.SwapJobSpec(video=client.upload(video), faces_b=[client.upload(photo)])
    uploads = {spec.video.key, spec.faces_b[0].key}
    job, _ = client.submit(spec)
    final = _wait_end(client, job.name)
    assert final.state == jobs_pb2.JOB_STATE_FAILED
    assert final.error.message and "Traceback" not in final.error.message
    # Nothing of the job is left but its record: no frames, no input copies, no uploads.
    assert _keys(platform, job.name) == set()
    assert not uploads & _keys(platform, "uploads")
    return final


def test_truncated_video_fails_the_job_cleanly(
    platform: Platform, alice: JobClient, tmp_path: Path, short_clip
) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(short_clip.read_bytes()[: short_clip.stat().st_size // 3])
    final = _failed_job(platform, alice, truncated, _photo(tmp_path))
    assert final.error.where == "media_extract"
    assert final.error.code in (Code.INVALID_ARGUMENT.value[0], Code.FAILED_PRECONDITION.value[0]), (
        final.error
    )


def test_image_renamed_to_mp4_fails_the_job_cleanly(
    platform: Platform, alice: JobClient, tmp_path: Path
) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(_photo(tmp_path).read_bytes())
    final = _failed_job(platform, alice, fake, _photo(tmp_path))
    assert final.error.where == "media_extract"
    assert final.error.code in (Code.INVALID_ARGUMENT.value[0], Code.FAILED_PRECONDITION.value[0]), (
        final.error
    )


@pytest.mark.parametrize(
    ("env", "value", "text"),
    [
        ("FACESWAP_MAX_FRAMES", "5", "FACESWAP_MAX_FRAMES"),
        ("FACESWAP_MAX_VIDEO_SECONDS", "0.5", "FACESWAP_MAX_VIDEO_SECONDS"),
        ("FACESWAP_MAX_RESOLUTION", "256", "FACESWAP_MAX_RESOLUTION"),
    ],
)
def test_video_over_limits_fails_at_media_extract(
    platform: Platform, alice: JobClient, tmp_path: Path, short_clip, monkeypatch, env, value, text
) -> None:
    monkeypatch.setenv(env, value)  # read per job: the in-process orchestrator sees it
    final = _failed_job(platform, alice, short_clip, _photo(tmp_path))
    assert final.error.where == "media_extract"
    assert final.error.code == Code.RESOURCE_EXHAUSTED.value[0]
    assert text in final.error.message
