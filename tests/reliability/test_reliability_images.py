"""Oversized images that used to slip past the header check: a JPEG whose frame
header sits behind 1.2 MiB of other segments and a TIFF named .png, both 5000x5000 (over the 4096 px
FACESWAP_MAX_RESOLUTION). The job API refuses them at submit and the detector never decodes them."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from reliability_support import TOKENS, Platform

from faceswap.face.images import decode_image
from faceswap.limits import image_size
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.client import JobClient

SIDE = 5000


def _padded_jpeg() -> bytes:
    data = cv2.imencode(".jpg", np.zeros((SIDE, SIDE), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()
    app = b"\xff\xe4" + struct.pack(">H", 65535) + b"\0" * 65533  # an APP4 segment of junk
    return data[:2] + app * 20 + data[2:]  # 1.25 MiB of segments before the frame header


def _tiff() -> bytes:
    return cv2.imencode(".tiff", np.zeros((SIDE, SIDE), np.uint8))[1].tobytes()


@pytest.fixture(scope="module")
def big_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("big_images")
    (d / "padded.jpg").write_bytes(_padded_jpeg())
    (d / "tiff.png").write_bytes(_tiff())
    return {"jpeg": d / "padded.jpg", "tiff": d / "tiff.png"}


@pytest.mark.parametrize("kind", ["jpeg", "tiff"])
def test_sizes_come_from_the_structure(big_images: dict[str, Path], kind: str) -> None:
    data = big_images[kind].read_bytes()
    assert image_size(data) == (SIDE, SIDE)
    assert decode_image(data) is None  # over the limit: never decoded
    small = cv2.imencode(".jpg" if kind == "jpeg" else ".tiff", np.full((40, 30, 3), 200, np.uint8))[
        1
    ].tobytes()
    assert image_size(small) == (30, 40)
    assert decode_image(small).shape == (40, 30, 3)


@pytest.mark.parametrize("kind", ["jpeg", "tiff"])
def test_oversized_photo_refused_at_submit(
    platform: Platform, big_images: dict[str, Path], tmp_path, kind
) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"\0" * 64)
    with JobClient(platform.jobs_address, timeout=30, token=TOKENS["alice"]) as client:
        spec = jobs_pb2.SwapJobSpec(video=client.upload(video), faces_b=[client.upload(big_images[kind])])
        with pytest.raises(grpc.RpcError) as err:
            client.submit(spec)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    assert f"{SIDE}x{SIDE}" in err.value.details() and "FACESWAP_MAX_RESOLUTION" in err.value.details()
