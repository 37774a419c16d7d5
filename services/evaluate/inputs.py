"""Reading the evaluation inputs: two videos frame by frame in lockstep, and the B face set.

Frames come from OpenCV's bundled FFmpeg (``cv2.VideoCapture``): the evaluator only reads, needs no
exact timestamps, and stays usable when the media service is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceswap.errors import InvalidArgument, NotFound

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


@dataclass(frozen=True)
class VideoMeta:
    path: str
    fps: float
    frame_count: int
    width: int
    height: int


def open_video(path: str | Path, field: str) -> tuple[cv2.VideoCapture, VideoMeta]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{field}: video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok or first is None:
        cap.release()
        raise InvalidArgument(f"{path} is not a readable video", field=field)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    meta = VideoMeta(
        path=str(path),
        fps=float(fps) if fps > 0 and math.isfinite(fps) else 25.0,
        frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
        width=first.shape[1],
        height=first.shape[0],
    )
    return cap, meta


def paired_frames(
    source: cv2.VideoCapture, swapped: cv2.VideoCapture, stride: int, size: tuple[int, int]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, source frame, swapped frame) for every ``stride``-th frame until either video ends.
    Skipped frames are only grabbed (demuxed and decoded, not converted). A swapped frame of another
    size is resized to the source's so face boxes line up."""
    index = 0
    while True:
        if index % stride:
            if not (source.grab() and swapped.grab()):
                return
        else:
            ok_a, frame_a = source.read()
            ok_b, frame_b = swapped.read()
            if not (ok_a and ok_b):
                return
            if (frame_b.shape[1], frame_b.shape[0]) != size:
                frame_b = cv2.resize(frame_b, size, interpolation=cv2.INTER_AREA)
            yield index, frame_a, frame_b
        index += 1


def read_image(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def expand_face_set(faces_b: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Splits the B input into (images, videos): a folder (searched recursively), one video, one
    image, or a list of any of those."""
    items = [faces_b] if isinstance(faces_b, (str, Path)) else list(faces_b)
    if not items:
        raise InvalidArgument("no B faces given", field="faces_b")
    images: list[Path] = []
    videos: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(child)
                elif child.suffix.lower() in VIDEO_SUFFIXES:
                    videos.append(child)
        elif path.is_file():
            (videos if path.suffix.lower() in VIDEO_SUFFIXES else images).append(path)
        else:
            raise NotFound(f"faces_b: {path} does not exist")
    if not images and not videos:
        raise InvalidArgument(f"no images or videos found in {items}", field="faces_b")
    return images, videos


def evenly_spaced(count: int, limit: int) -> list[int]:
    """At most ``limit`` indices spread evenly over range(count)."""
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [0]


def sample_video_frames(path: Path, limit: int) -> Iterator[tuple[str, np.ndarray]]:
    """Up to ``limit`` frames spread over a video, read sequentially (seeking is unreliable)."""
    cap, meta = open_video(path, "faces_b")
    try:
        wanted = set(evenly_spaced(max(meta.frame_count, 1), limit))
        index = 0
        while wanted:
            if index in wanted:
                ok, frame = cap.read()
                wanted.discard(index)
                if not ok:
                    return
                yield f"{path.name}#{index}", frame
            elif not cap.grab():
                return
            index += 1
    finally:
        cap.release()
