"""Reading the evaluation inputs: two videos frame by frame in lockstep, and the B face set.

Frames come from the library's one video reader (``faceswap.media.frames.read_frames``: one ffmpeg
pipe per video, rotation applied), photos from its one image decoder (``faceswap.face.images``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceswap.errors import InvalidArgument, NotFound
from faceswap.face.images import decode_image
from faceswap.media.frames import read_frames
from faceswap.media.kinds import is_image, is_video
from faceswap.media.probe import VideoInfo, probe


@dataclass(frozen=True)
class VideoMeta:
    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    info: VideoInfo


def open_video(path: str | Path, field: str) -> VideoMeta:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{field}: video {path} does not exist")
    try:
        info = probe(path, label=field)
    except InvalidArgument:
        raise InvalidArgument(f"{path} is not a readable video", field=field) from None
    fps = float(info.fps or 0)
    return VideoMeta(
        path=str(path),
        fps=fps if fps > 0 and math.isfinite(fps) else 25.0,
        frame_count=int(info.frame_count or 0),
        width=info.width,
        height=info.height,
        info=info,
    )


def paired_frames(
    source: VideoMeta, swapped: VideoMeta, stride: int, size: tuple[int, int]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, source frame, swapped frame) for every ``stride``-th frame until either video ends
    (the frames in between are dropped by the decoder before colour conversion). A swapped frame of
    another size is resized to the source's so face boxes line up. Closing it stops both decoders."""
    frames_a = read_frames(source.path, step=stride, info=source.info, label="source")
    frames_b = read_frames(swapped.path, step=stride, info=swapped.info, label="output")
    try:
        for (index, frame_a), (_, frame_b) in zip(frames_a, frames_b, strict=False):
            if (frame_b.shape[1], frame_b.shape[0]) != size:
                frame_b = cv2.resize(frame_b, size, interpolation=cv2.INTER_AREA)
            yield index, frame_a, frame_b
    finally:
        frames_a.close()
        frames_b.close()


def read_image(path: Path) -> np.ndarray | None:
    return decode_image(path.read_bytes())


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
                if is_image(child):
                    images.append(child)
                elif is_video(child):
                    videos.append(child)
        elif path.is_file():
            (videos if is_video(path) else images).append(path)
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
    meta = open_video(path, "faces_b")
    wanted = set(evenly_spaced(max(meta.frame_count, 1), limit))
    frames = read_frames(path, info=meta.info, label="faces_b")
    try:
        for index, frame in frames:
            if index in wanted:
                wanted.discard(index)
                yield f"{path.name}#{index}", frame
                if not wanted:
                    return
    finally:
        frames.close()
