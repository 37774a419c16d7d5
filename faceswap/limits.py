"""Input limits: how big an upload, video, image or training run the platform accepts.

Every limit is an environment variable with a documented default (``LIMIT_ENV_DOCS``, listed in
docs/reliability.md). Over a limit is RESOURCE_EXHAUSTED (the input is too large to process) or
INVALID_ARGUMENT (a request field asks for too much), and the message names the variable, so a
caller knows which knob an operator would turn.

Images are measured by parsing their structure, never decoding pixels (PNG, JPEG with its frame header
anywhere behind other segments, WebP, BMP, GIF, TIFF): a 20000x20000 photo is refused before anything
decodes 1.2 GB of pixels.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import BinaryIO

from faceswap.config import env
from faceswap.errors import InvalidArgument, ResourceExhausted

LIMIT_ENV_DOCS: dict[str, tuple[str, str]] = {
    "FACESWAP_MAX_UPLOAD_MB": ("2048", "largest file UploadFile accepts, MiB"),
    "FACESWAP_MAX_VIDEO_SECONDS": ("600", "longest input video, seconds"),
    "FACESWAP_MAX_RESOLUTION": ("4096", "longest side of an input video or image, pixels"),
    "FACESWAP_MAX_FRAMES": ("36000", "most frames in an input video"),
    "FACESWAP_MAX_FACE_PHOTOS": ("500", "most photos of person B (plus reference photos) in one job"),
    "FACESWAP_MAX_TRAIN_STEPS": ("1000000", "most training steps one job may ask for"),
}

# What is read of a stream that cannot seek to find an image's size (a seekable one is walked).
IMAGE_PARSE_BYTES = 64 * 1024 * 1024


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


def check_fields(message: object, path: str = "") -> None:
    """Rules every request field follows, whatever the service: a float is finite (NaN compares false
    with every bound, so ``min_sharpness=NaN`` would slip past any range check) and a prefix
    (``*_prefix``) is relative (``/x/y`` is never silently read as ``x/y``). INVALID_ARGUMENT naming
    the field. Only the fields that are set are walked."""
    list_fields = getattr(message, "ListFields", None)
    if list_fields is None:
        return  # a request stream (UploadFile): its messages carry bytes and a file name
    for fd, value in list_fields():
        name = f"{path}{fd.name}"
        repeated = _is_repeated(fd) and not _is_map(fd)
        values = list(value) if repeated else [value]
        for i, item in enumerate(values):
            where = f"{name}[{i}]" if repeated else name
            if fd.type in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE) and not math.isfinite(item):
                raise InvalidArgument(f"{item} is not a finite number", field=where)
            prefix_field = fd.name == "prefix" or fd.name.endswith("_prefix")
            if fd.type == fd.TYPE_STRING and prefix_field and item.startswith("/"):
                raise InvalidArgument(
                    f"{item[:200]!r} must be a relative object prefix (no leading '/')", field=where
                )
            if fd.type == fd.TYPE_MESSAGE and not _is_map(fd):
                check_fields(item, f"{where}.")


def _is_repeated(fd: object) -> bool:
    flag = getattr(fd, "is_repeated", None)  # protobuf 6 (``label`` is gone)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED  # type: ignore[attr-defined]


def _is_map(fd: object) -> bool:
    msg = getattr(fd, "message_type", None)
    return bool(msg is not None and msg.GetOptions().map_entry)


def check_stage_request(request: object, limits: Limits | None = None) -> None:
    """The job API's limits on a stage service's own request (media, detector, trainer, converter),
    so a caller that reaches a stage service directly gets no more than a job could ask for; and the
    field rules of ``check_fields`` on every request of every service (the job API's too)."""
    check_fields(request)
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
def image_size(data: bytes | BinaryIO) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, WebP, BMP, GIF or TIFF image, parsed from its structure (a
    JPEG's frame header is found however far behind other segments it sits, a TIFF's first IFD
    wherever it points); None if it is none of those. Never decodes pixels."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        head = _read_at(stream, 0, 32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
            w, h = struct.unpack("<HH", head[6:10])
            return int(w), int(h)
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(int(w)), abs(int(h))
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
            return _webp_size(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(stream)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(stream, "<" if head[:2] == b"II" else ">")
    except (struct.error, OSError, ValueError, IndexError):
        return None
    return None


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


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
MAX_JPEG_SEGMENTS = 100_000  # a bound on the walk; each step skips a whole segment by its length


def _jpeg_size(stream: BinaryIO) -> tuple[int, int] | None:
    """Walks the segments (seeking over each by its length) to the first frame header."""
    pos = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        marker = _read_at(stream, pos, 2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind == 0xFF:  # fill byte
            pos += 1
            continue
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:  # markers without a length
            pos += 2
            continue
        if kind in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        seg = _read_at(stream, pos + 2, 7)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg[:2])[0]
        if kind in _SOF:
            if len(seg) < 7:
                return None
            hh, w = struct.unpack(">HH", seg[3:7])
            return int(w), int(hh)
        if length < 2:
            return None
        pos += 2 + length
    return None


def _tiff_size(stream: BinaryIO, order: str) -> tuple[int, int] | None:
    (ifd,) = struct.unpack(order + "I", _read_at(stream, 4, 4))
    (count,) = struct.unpack(order + "H", _read_at(stream, ifd, 2))
    entries = _read_at(stream, ifd + 2, 12 * min(count, 4096))
    size: dict[int, int] = {}
    for i in range(len(entries) // 12):
        tag, kind, _n = struct.unpack(order + "HHI", entries[i * 12 : i * 12 + 8])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            raw = entries[i * 12 + 8 : i * 12 + 12]
            size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), raw[: 2 if kind == 3 else 4])[0]
    if 256 in size and 257 in size:
        return int(size[256]), int(size[257])
    return None


def check_image(
    stream: BinaryIO, field: str, limits: Limits | None = None, strict: bool = False
) -> tuple[int, int] | None:
    """Reads an image's header: RESOURCE_EXHAUSTED if it is too large.

    An unrecognised header is INVALID_ARGUMENT when strict, else None: the job API leaves such files
    to the detector, which counts them as unreadable (and the job fails if no face of B remains).
    """
    limits = limits or load_limits()
    seekable = getattr(stream, "seekable", lambda: False)()
    size = image_size(stream if seekable else io.BytesIO(stream.read(IMAGE_PARSE_BYTES)))
    if size is None or min(size) <= 0:
        if strict:
            raise InvalidArgument("is not a readable image (PNG, JPEG, WebP, BMP, GIF or TIFF)", field=field)
        return None
    w, h = size
    if max(w, h) > limits.max_resolution:
        raise ResourceExhausted(
            f"{field}: image is {w}x{h}, over FACESWAP_MAX_RESOLUTION ({limits.max_resolution} px long side)"
        )
    return w, h
