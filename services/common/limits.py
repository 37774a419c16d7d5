"""Input limits: how big an upload, video, image or training run the platform accepts.

Every limit is an environment variable with a documented default (``LIMIT_ENV_DOCS``, listed in
docs/reliability.md). Over a limit is RESOURCE_EXHAUSTED (the input is too large to process) or
INVALID_ARGUMENT (a request field asks for too much), and the message names the variable, so a
caller knows which knob an operator would turn.

Images are measured from their header only (PNG, JPEG, WebP, BMP, GIF): a 20000x20000 photo is refused
before anything decodes 1.2 GB of pixels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from services.common.config import env
from services.common.errors import InvalidArgument, ResourceExhausted

LIMIT_ENV_DOCS: dict[str, tuple[str, str]] = {
    "FACESWAP_MAX_UPLOAD_MB": ("2048", "largest file UploadFile accepts, MiB"),
    "FACESWAP_MAX_VIDEO_SECONDS": ("600", "longest input video, seconds"),
    "FACESWAP_MAX_RESOLUTION": ("4096", "longest side of an input video or image, pixels"),
    "FACESWAP_MAX_FRAMES": ("36000", "most frames in an input video"),
    "FACESWAP_MAX_FACE_PHOTOS": ("500", "most photos of person B (plus reference photos) in one job"),
    "FACESWAP_MAX_TRAIN_STEPS": ("1000000", "most training steps one job may ask for"),
}

# Enough of a file to find an image's size: JPEG puts its frame header after EXIF/ICC segments.
IMAGE_HEADER_BYTES = 1024 * 1024


def limit_env(name: str) -> str:
    return env(name, LIMIT_ENV_DOCS)


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    max_video_seconds: float
    max_resolution: int
    max_frames: int
    max_face_photos: int
    max_train_steps: int


def load_limits() -> Limits:
    return Limits(
        max_upload_bytes=int(float(limit_env("FACESWAP_MAX_UPLOAD_MB")) * 1024 * 1024),
        max_video_seconds=float(limit_env("FACESWAP_MAX_VIDEO_SECONDS")),
        max_resolution=int(limit_env("FACESWAP_MAX_RESOLUTION")),
        max_frames=int(limit_env("FACESWAP_MAX_FRAMES")),
        max_face_photos=int(limit_env("FACESWAP_MAX_FACE_PHOTOS")),
        max_train_steps=int(limit_env("FACESWAP_MAX_TRAIN_STEPS")),
    )


def check_upload_size(size: int, limits: Limits | None = None) -> None:
    limits = limits or load_limits()
    if size > limits.max_upload_bytes:
        raise ResourceExhausted(
            f"upload is larger than FACESWAP_MAX_UPLOAD_MB ({limits.max_upload_bytes // (1024 * 1024)} MiB)"
        )


def check_video(
    duration: float,
    width: int,
    height: int,
    frame_count: int,
    what: str = "video",
    limits: Limits | None = None,
) -> None:
    """RESOURCE_EXHAUSTED naming the limit when a probed video is too long, too large or has too many frames."""
    limits = limits or load_limits()
    if duration > limits.max_video_seconds:
        raise ResourceExhausted(
            f"{what} lasts {duration:.1f} s, over FACESWAP_MAX_VIDEO_SECONDS ({limits.max_video_seconds:g} s)"
        )
    if max(width, height) > limits.max_resolution:
        raise ResourceExhausted(
            f"{what} is {width}x{height}, over FACESWAP_MAX_RESOLUTION ({limits.max_resolution} px long side)"
        )
    if frame_count > limits.max_frames:
        raise ResourceExhausted(
            f"{what} has {frame_count} frames, over FACESWAP_MAX_FRAMES ({limits.max_frames})"
        )


def check_count(count: int, field: str, limits: Limits | None = None) -> None:
    limits = limits or load_limits()
    if count > limits.max_face_photos:
        raise InvalidArgument(
            f"{count} photos, over FACESWAP_MAX_FACE_PHOTOS ({limits.max_face_photos})", field=field
        )


def check_train_steps(steps: int, field: str, limits: Limits | None = None) -> None:
    limits = limits or load_limits()
    if steps > limits.max_train_steps:
        raise InvalidArgument(
            f"{steps} is over FACESWAP_MAX_TRAIN_STEPS ({limits.max_train_steps})", field=field
        )


def check_stage_request(request: object, limits: Limits | None = None) -> None:
    """The job API's limits on a stage service's own request (media, detector, trainer, converter),
    so a caller that reaches a stage service directly gets no more than a job could ask for."""
    name = type(request).__name__
    if name == "StartTrainingRequest":
        steps = int(request.options.steps)  # type: ignore[attr-defined]
        if steps < 0:
            raise InvalidArgument(f"{steps} is negative", field="options.steps")
        check_train_steps(steps, "options.steps", limits)
    options = getattr(request, "options", None)
    photos = getattr(options, "reference_photos", None)
    if name in ("ExtractFaceSetRequest", "DetectFacesRequest") and photos is not None:
        check_count(len(photos), "options.reference_photos", limits)


# ---- image headers ---------------------------------------------------------------------------------
def image_size(header: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, JPEG, WebP, BMP or GIF file; None if unknown."""
    if header.startswith(b"\x89PNG\r\n\x1a\n") and len(header) >= 24 and header[12:16] == b"IHDR":
        w, h = struct.unpack(">II", header[16:24])
        return int(w), int(h)
    if header[:6] in (b"GIF87a", b"GIF89a") and len(header) >= 10:
        w, h = struct.unpack("<HH", header[6:10])
        return int(w), int(h)
    if header[:2] == b"BM" and len(header) >= 26:
        w, h = struct.unpack("<ii", header[18:26])
        return abs(int(w)), abs(int(h))
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP" and len(header) >= 30:
        return _webp_size(header)
    if header[:2] == b"\xff\xd8":
        return _jpeg_size(header)
    return None


def _webp_size(h: bytes) -> tuple[int, int] | None:
    chunk = h[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(h[24:27], "little") + 1
        hh = int.from_bytes(h[27:30], "little") + 1
        return w, hh
    if chunk == b"VP8 " and h[23:26] == b"\x9d\x01\x2a":
        w, hh = struct.unpack("<HH", h[26:30])
        return w & 0x3FFF, hh & 0x3FFF
    if chunk == b"VP8L" and h[20] == 0x2F:
        bits = int.from_bytes(h[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(h: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(h):
        if h[i] != 0xFF:
            return None
        marker = h[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", h[i + 2 : i + 4])[0]
        if marker in _SOF:
            hh, w = struct.unpack(">HH", h[i + 5 : i + 9])
            return int(w), int(hh)
        i += 2 + length
    return None


def check_image(
    stream: BinaryIO, field: str, limits: Limits | None = None, strict: bool = False
) -> tuple[int, int] | None:
    """Reads an image's header: RESOURCE_EXHAUSTED if it is too large.

    An unrecognised header is INVALID_ARGUMENT when strict, else None: the job API leaves such files
    to the detector, which counts them as unreadable (and the job fails if no face of B remains).
    """
    limits = limits or load_limits()
    size = image_size(stream.read(IMAGE_HEADER_BYTES))
    if size is None or min(size) <= 0:
        if strict:
            raise InvalidArgument("is not a readable image (PNG, JPEG, WebP, BMP or GIF)", field=field)
        return None
    w, h = size
    if max(w, h) > limits.max_resolution:
        raise ResourceExhausted(
            f"{field}: image is {w}x{h}, over FACESWAP_MAX_RESOLUTION ({limits.max_resolution} px long side)"
        )
    return w, h
