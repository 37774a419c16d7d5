"""Local video in / out for the CLI: convert a video file straight to a video or a frames folder.

Frames stream from one ffmpeg decoder into the engine and from the engine into one ffmpeg encoder
(with the source's audio copied), so a long video never sits in memory or on disk as images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.composite.face_bank import FaceBank
from faceswap.errors import FailedPrecondition, InvalidArgument
from faceswap.face.alignments import Alignments
from faceswap.media.kinds import is_video
from faceswap.options.convert import ConvertOptions
from faceswap.storage import ObjectStore
from services.converter.pipeline import FrameTask
from services.converter.swap import ConvertSummary, StoreSink, attach_sources, build_plan, run_engine


def is_video_path(path: str | Path) -> bool:
    return is_video(path)


class VideoSink:
    """Feeds converted frames, in order, to a media-core VideoWriter."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def encode(self, task: FrameTask, image: np.ndarray | None) -> np.ndarray | None:
        return image if image is not None else task.image

    def write(self, task: FrameTask, payload: np.ndarray) -> None:
        self.writer.write(payload)


def detect_video(
    video: Path, start: int, end: int | None, on_progress: Callable[[int], None] | None = None
) -> Alignments:
    """Runs the detector over the video's frames (streamed, in worker processes)."""
    from faceswap.face.extract import DetectOptions, frame_options, run_frames
    from faceswap.face.frame_worker import FrameTask as DetectTask
    from faceswap.media.store import read_frames

    options = DetectOptions().validate()
    tasks = (DetectTask(i, f"{i:08d}.png", frame) for i, frame in read_frames(video, start, end))
    records = []
    for result in run_frames(tasks, frame_options(options, want_crops=False), options.jobs):
        records.append(result.record)
        if on_progress:
            on_progress(len(records))
    return Alignments(size=options.size, coverage=options.coverage, detector=options.detector, frames=records)


def convert_video(
    video: Path,
    output: Path,
    model: Any,
    config: dict[str, Any],
    alignments: Alignments,
    options: ConvertOptions,
    start: int = 0,
    end: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    output_store: ObjectStore | None = None,
    crf: int = 18,
    preset: str = "medium",
    bank: FaceBank | None = None,
) -> ConvertSummary:
    """Video -> video (with the source's audio) when output is a video path, else -> frames in
    output_store named {index:08d}.png."""
    from faceswap.media.store import VideoWriter, probe, read_frames

    info = probe(video)
    last = info.frame_count if end is None else min(end, info.frame_count)
    records = alignments.by_index()
    missing = [i for i in range(start, last) if i not in records]
    if missing:
        raise FailedPrecondition(
            f"alignments do not match {video.name}: {len(missing)} of {last - start} frames have no "
            f"record (first: frame {missing[0]})"
        )
    sized = [r for r in alignments.frames if start <= r.index < last and r.width and r.status == "ok"]
    if sized and (sized[0].width, sized[0].height) != (info.width, info.height):
        raise FailedPrecondition(
            f"alignments were made on {sized[0].width}x{sized[0].height} frames, {video.name} is "
            f"{info.width}x{info.height}"
        )
    fps = float(info.fps) if info.fps else 30.0
    config = config or {"size": alignments.size, "coverage": alignments.coverage}
    plan = build_plan(alignments, options, int(config["size"]), float(config["coverage"]), fps=fps)
    if options.needs_faces_b:
        if bank is None:
            raise InvalidArgument(f"method {options.method!r} needs B's faces", field="faces_b")
        attach_sources(plan, bank)

    def tasks() -> Iterator[FrameTask]:
        for i, frame in read_frames(video, start, last, info=info):
            rec = records[i]
            yield FrameTask(i, f"{i:08d}.png", plan.get(i, []), rec.width, rec.height, image=frame)

    total = last - start
    if is_video_path(output):
        writer = VideoWriter(
            output, info.fps, info.width, info.height, crf=crf, preset=preset,
            audio_from=video if info.has_audio else None,
        )  # fmt: skip
        with writer:
            return run_engine(
                model, config, options, tasks(), _no_load, VideoSink(writer), total, on_progress,
                bank=bank,
            )  # fmt: skip
    if output_store is None:
        raise InvalidArgument("an output folder or video path is required", field="output")
    sink = StoreSink(output_store, "", "")
    return run_engine(model, config, options, tasks(), _no_load, sink, total, on_progress, bank=bank)


def _no_load(task: FrameTask) -> None:
    """Video frames arrive decoded."""
