"""MediaService over a real gRPC socket: round trip, status codes for bad inputs, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from faceswap.storage import LocalStore
from services.common.client import make_channel
from services.common.pb.faceswap.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.common.server import start_server
from services.media.server import SERVICE_NAME, build_spec


@pytest.fixture
def media(local_store: LocalStore) -> Iterator[media_pb2_grpc.MediaServiceStub]:
    running = start_server(build_spec(local_store), port=0, metrics_port=0)
    channel = make_channel(f"127.0.0.1:{running.port}", [SERVICE_NAME])
    try:
        yield media_pb2_grpc.MediaServiceStub(channel)
    finally:
        channel.close()
        running.stop(grace=1)


def ref(key: str) -> common_pb2.ObjectRef:
    return common_pb2.ObjectRef(key=key)


def test_probe_extract_encode(
    media: media_pb2_grpc.MediaServiceStub, local_store: LocalStore, hamilton: Path
) -> None:
    local_store.put_file("in/h.mp4", hamilton)
    info = media.Probe(media_pb2.ProbeRequest(video=ref("in/h.mp4")), timeout=30).info
    assert (info.fps.num, info.fps.den, info.frame_count) == (2997, 100, 275)
    assert info.has_audio and info.audio_codec == "aac" and (info.width, info.height) == (640, 360)

    before = REGISTRY.get_sample_value("faceswap_media_frames_decoded_total") or 0.0
    extracted = media.ExtractFrames(
        media_pb2.ExtractFramesRequest(
            video=ref("in/h.mp4"),
            output_prefix="job/frames",
            image_format="jpg",
            range=common_pb2.FrameRange(start=10, end=0, step=5),
        ),
        timeout=60,
    )
    assert extracted.frame_count == len(range(10, 275, 5))
    assert extracted.index.key == "job/frames/index.json" and len(extracted.index.sha256) == 64
    assert (REGISTRY.get_sample_value("faceswap_media_frames_decoded_total") or 0) - before >= 53

    encoded = media.EncodeVideo(
        media_pb2.EncodeVideoRequest(
            frames_prefix="job/frames",
            output=ref("job/out.mp4"),
            audio_from=ref("in/h.mp4"),
            preset="ultrafast",
        ),
        timeout=60,
    )
    assert encoded.frame_count == 53 and encoded.output.size_bytes > 0
    assert Fraction(encoded.info.fps.num, encoded.info.fps.den) == Fraction(2997, 100)
    assert encoded.info.has_audio


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("truncated", grpc.StatusCode.INVALID_ARGUMENT),
        ("zero_bytes", grpc.StatusCode.INVALID_ARGUMENT),
        ("image", grpc.StatusCode.INVALID_ARGUMENT),
        ("audio_only", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_videos_get_clear_status(
    media: media_pb2_grpc.MediaServiceStub,
    local_store: LocalStore,
    bad_inputs: dict[str, Path],
    case: str,
    code: grpc.StatusCode,
) -> None:
    local_store.put_file(f"bad/{case}.mp4", bad_inputs[case])
    for call in (
        lambda: media.Probe(media_pb2.ProbeRequest(video=ref(f"bad/{case}.mp4")), timeout=30),
        lambda: media.ExtractFrames(
            media_pb2.ExtractFramesRequest(video=ref(f"bad/{case}.mp4"), output_prefix="out"), timeout=30
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code
        assert f"bad/{case}.mp4" in err.value.details() and "Traceback" not in err.value.details()
    assert list(local_store.list("out")) == []


def test_request_errors(
    media: media_pb2_grpc.MediaServiceStub, local_store: LocalStore, short_clip: Path
) -> None:
    local_store.put_file("c.mp4", short_clip)
    cases = [
        (lambda: media.Probe(media_pb2.ProbeRequest(video=ref("missing.mp4"))), grpc.StatusCode.NOT_FOUND),
        (
            lambda: media.Probe(media_pb2.ProbeRequest(video=ref("../etc/passwd"))),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (lambda: media.Probe(media_pb2.ProbeRequest()), grpc.StatusCode.INVALID_ARGUMENT),
        (
            lambda: media.Probe(
                media_pb2.ProbeRequest(video=common_pb2.ObjectRef(bucket="other", key="c.mp4"))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: media.ExtractFrames(
                media_pb2.ExtractFramesRequest(video=ref("c.mp4"), output_prefix="o", image_format="bmp")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: media.EncodeVideo(
                media_pb2.EncodeVideoRequest(frames_prefix="nothing", output=ref("o.mp4"))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for call, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code, err.value.details()

    media.ExtractFrames(
        media_pb2.ExtractFramesRequest(video=ref("c.mp4"), output_prefix="f", range={"end": 2})
    )
    with pytest.raises(grpc.RpcError) as err:
        media.EncodeVideo(
            media_pb2.EncodeVideoRequest(frames_prefix="f", output=ref("o.mp4"), codec="nosuchcodec")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "codec" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        media.EncodeVideo(
            media_pb2.EncodeVideoRequest(frames_prefix="f", output=ref("o.mp4"), audio_from=ref("gone.mp4"))
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "gone.mp4" in err.value.details()
    assert not local_store.exists("o.mp4")
