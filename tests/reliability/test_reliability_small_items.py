"""Small reliability items through real gRPC (token-protected job API + media).

- a 100 KB name, key or option value is not echoed back whole;
- an upload the client cancels is CANCELLED (counted so), with no traceback logged;
- a symbolic link placed inside the local store is refused, never followed;
- an absolute prefix (``/x/y``) is INVALID_ARGUMENT naming the field, not silently ``x/y``;
- a non-finite float (``min_sharpness=NaN``) is INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from reliability_support import SAMPLES, TOKENS, Platform

from faceswap.config import data_dir
from services.common.pb.faceswap.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc, media_pb2, media_pb2_grpc
from services.orchestrator.client import JobClient
from services.orchestrator.jobs import upload_tag

HUGE = 100_000


def _md(who: str = "alice") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKENS[who]}")]


def _jobs(platform: Platform) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(grpc.insecure_channel(platform.jobs_address))


def _error(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(*args)
    return err.value


def test_unbounded_input_is_not_echoed(platform: Platform) -> None:
    stub = _jobs(platform)
    err = _error(lambda: stub.GetJob(jobs_pb2.GetJobRequest(name="jobs/" + "x" * HUGE), metadata=_md()))
    assert err.code() == grpc.StatusCode.NOT_FOUND and len(err.details()) < 400, len(err.details())
    with JobClient(platform.jobs_address, token=TOKENS["alice"]) as client:
        video = client.upload(SAMPLES / "liveportrait_s18.mp4")
        spec = jobs_pb2.SwapJobSpec(video=video, faces_b=[video])
        spec.options.train.preset = "p" * HUGE
        for bad, field in (
            (spec, "spec.options.train.preset"),
            (jobs_pb2.SwapJobSpec(video=common_pb2.ObjectRef(key="uploads/" + "a" * HUGE)), "spec.video.key"),
        ):
            err = _error(
                lambda b=bad: client.stub.SubmitSwapJob(jobs_pb2.SubmitSwapJobRequest(spec=b), metadata=_md())
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()[:300]
            assert err.details().startswith(field) and len(err.details()) < 700, len(err.details())
            assert f"({HUGE + len('uploads/') if 'key' in field else HUGE} chars)" in err.details()


def test_cancelled_upload_is_cancelled_without_traceback(platform: Platform, caplog) -> None:
    from prometheus_client import REGISTRY

    def count(code: str) -> float:
        labels = {"service": "faceswap.v1.JobService", "method": "UploadFile", "code": code}
        return REGISTRY.get_sample_value("faceswap_rpc_requests_total", labels) or 0.0

    before = {code: count(code) for code in ("CANCELLED", "INTERNAL", "UNKNOWN")}
    sent, hold = threading.Event(), threading.Event()

    def chunks():
        yield jobs_pb2.UploadFileRequest(filename="a.mp4", chunk=b"x" * 65536)
        sent.set()
        hold.wait(10)  # the client never finishes: it cancels

    caplog.set_level(logging.INFO)
    stub = _jobs(platform)
    future = stub.UploadFile.future(chunks(), timeout=30, metadata=_md())
    assert sent.wait(10)
    # Cancel only once the server's handler runs (its partial file exists): a call cancelled
    # before a busy server has taken it never reaches a handler, so nothing would count it.
    # The server reads FACESWAP_DATA_DIR per call: this test's own directory, not the platform's.
    partial = data_dir() / "tmp"
    deadline = time.monotonic() + 20
    while not list(partial.glob("upload-*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(partial.glob("upload-*")), "the server never started the upload"
    time.sleep(0.2)  # and waits for the next chunk
    future.cancel()
    hold.set()
    deadline = time.monotonic() + 20
    while count("CANCELLED") == before["CANCELLED"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count("CANCELLED") == before["CANCELLED"] + 1
    assert count("INTERNAL") == before["INTERNAL"] and count("UNKNOWN") == before["UNKNOWN"]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Traceback" not in logged and not [r for r in caplog.records if r.levelno >= logging.ERROR], logged
    assert not list(partial.glob("upload-*"))  # the partial file is gone


def test_upload_without_its_last_message_is_not_stored(platform: Platform, tmp_path: Path) -> None:
    """A stream that ends without `last` (or goes on after it) is refused naming the field, and
    nothing reaches the store; the client marks its last block, whatever the file's size."""
    stub = _jobs(platform)
    before = set(platform.objects.list("uploads/"))
    for messages in (
        [jobs_pb2.UploadFileRequest(filename="a.mp4", chunk=b"x" * 1000)],
        [
            jobs_pb2.UploadFileRequest(filename="a.mp4", chunk=b"x", last=True),
            jobs_pb2.UploadFileRequest(chunk=b"y"),
        ],
    ):
        err = _error(lambda m=messages: stub.UploadFile(iter(m), timeout=10, metadata=_md()))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("last"), (
            err.details()
        )
    assert set(platform.objects.list("uploads/")) == before
    with JobClient(platform.jobs_address, token=TOKENS["alice"]) as client:
        chunk = 64 * 1024  # the client's smallest block: sizes around it cover the read-ahead
        for size in (1, chunk, chunk + 1, 2 * chunk):
            data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
            (tmp_path / "f.bin").write_bytes(data)
            ref = client.upload(tmp_path / "f.bin")
            assert ref.size_bytes == size
            with platform.objects.open(ref.key) as fh:
                assert fh.read() == data


def test_symlink_inside_the_store_is_refused(platform: Platform, tmp_path: Path) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"the server's own file")
    root = platform.objects.root  # type: ignore[attr-defined]
    key = f"uploads/{upload_tag('alice')}{uuid.uuid4().hex}.mp4"
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).symlink_to(secret)
    try:
        with JobClient(platform.jobs_address, token=TOKENS["alice"]) as client:
            err = _error(client.download, common_pb2.ObjectRef(key=key), tmp_path / "out.mp4")
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            assert "symbolic link" in err.details() and str(tmp_path) not in err.details()
            assert not (tmp_path / "out.mp4").exists()
            err = _error(client.submit, jobs_pb2.SwapJobSpec(video=common_pb2.ObjectRef(key=key)))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    finally:
        (root / key).unlink()


def test_absolute_prefix_is_refused_naming_the_field(platform: Platform) -> None:
    with JobClient(platform.jobs_address, token=TOKENS["alice"]) as client:
        video = client.upload(SAMPLES / "liveportrait_s18.mp4")
    # The stage service itself (as the orchestrator would call it).
    media_addr = __import__("os").environ["FACESWAP_MEDIA_ADDR"]
    media = media_pb2_grpc.MediaServiceStub(grpc.insecure_channel(media_addr))
    err = _error(
        lambda: media.ExtractFrames(
            media_pb2.ExtractFramesRequest(
                video=video, output_prefix="/x/y", range=common_pb2.FrameRange(end=2)
            ),
            timeout=60,
            metadata=_md("svc"),
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith("output_prefix:") and "/x/y" in err.details()
    assert list(platform.objects.list("x")) == []


def test_non_finite_floats_are_refused(platform: Platform) -> None:
    with JobClient(platform.jobs_address, token=TOKENS["alice"]) as client:
        video = client.upload(SAMPLES / "liveportrait_s18.mp4")
        for value in (math.nan, math.inf):
            spec = jobs_pb2.SwapJobSpec(video=video, faces_b=[video])
            spec.options.detect.min_sharpness = value
            err = _error(client.submit, spec)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            assert err.details().startswith("spec.options.detect.min_sharpness:"), err.details()
        spec = jobs_pb2.SwapJobSpec(video=video, faces_b=[video])
        spec.options.train.learning_rate = math.nan
        err = _error(client.submit, spec)
        assert err.details().startswith("spec.options.train.learning_rate:"), err.details()
