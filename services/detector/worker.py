"""The per-frame pipeline that runs inside worker processes: decode, detect or track, landmarks,
align, identity and sharpness checks. Pure functions of the inputs, so results are the same in one
process or many.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from services.common.errors import ServiceError
from services.detector.align import align_face
from services.detector.alignments import FaceRecord, FrameRecord
from services.detector.detect import (
    Tracked,
    box_relation,
    detect_faces,
    predict_landmarks,
    to_gray,
    track_face,
)
from services.detector.identity import face_embedding, nearest_distance
from services.detector.images import decode_image

# A frame's pixels: a local file path, encoded bytes, or an already decoded BGR array.
Source = str | bytes | np.ndarray | None


@dataclass
class FrameTask:
    index: int
    key: str
    source: Source


@dataclass
class FrameOptions:
    """What a worker needs (a picklable subset of DetectOptions)."""

    detector: str = "hog"
    upsample: int = 1
    size: int = 64
    coverage: float = 0.75
    detect_max_side: int = 0
    track_interval: int = 0
    identity_threshold: float = 0.6
    references: list[np.ndarray] = field(default_factory=list)
    min_sharpness: float = 0.0
    want_crops: bool = True


@dataclass
class FrameResult:
    record: FrameRecord
    crops: list[np.ndarray]  # aligned crops of record.faces, same order
    detect_seconds: float  # detector time (0 when the frame was tracked)
    detected: bool


def read_source(source: Source) -> np.ndarray | None:
    if isinstance(source, np.ndarray):
        return source if source.size else None
    if isinstance(source, bytes):
        return decode_image(source)
    if isinstance(source, str):
        try:
            return decode_image(Path(source).read_bytes())
        except OSError:
            return None
    return None


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurry faces."""
    return float(cv2.Laplacian(to_gray(crop), cv2.CV_64F).var())


def _round_points(points: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 3), round(float(y), 3)] for x, y in points]


def process_frame(
    task: FrameTask, opts: FrameOptions, tracked: list[Tracked] | None = None, force_detect: bool = True
) -> tuple[FrameResult, list[Tracked]]:
    """One frame -> its record, aligned crops, and the faces to track into the next frame."""
    record = FrameRecord(index=task.index, key=task.key)
    try:
        image = read_source(task.source)
    except Exception as exc:  # a decoder crash on a hostile file must not end the run
        image = None
        record.reason = f"cannot decode image: {exc}"
    if image is None:
        record.status = "unreadable"
        record.reason = record.reason or "cannot decode image (missing, empty, corrupt or not an image)"
        return FrameResult(record, [], 0.0, False), []
    record.height, record.width = image.shape[:2]
    try:
        return _analyse(image, record, opts, tracked, force_detect)
    except ServiceError:
        raise  # configuration problems (a missing model) concern every frame: stop the run
    except Exception as exc:  # one frame that breaks a model must not end the run
        record.status = "unreadable"
        record.reason = f"processing failed: {type(exc).__name__}: {exc}"
        record.faces, record.rejected = [], []
        return FrameResult(record, [], 0.0, False), []


def _analyse(
    image: np.ndarray,
    record: FrameRecord,
    opts: FrameOptions,
    tracked: list[Tracked] | None,
    force_detect: bool,
) -> tuple[FrameResult, list[Tracked]]:
    gray = to_gray(image)

    # (box, score, landmarks, box relation for tracking, identity distance known from the track)
    faces: list[tuple[tuple[int, int, int, int], float, np.ndarray, np.ndarray, float | None]] = []
    next_tracked: list[Tracked] = []
    detect_seconds = 0.0
    detected = force_detect or not tracked
    if not detected:
        for prev in tracked or []:
            hit = track_face(gray, prev)
            if hit is None:  # lost one face: fall back to the detector for the whole frame
                detected = True
                faces = []
                break
            box, landmarks, score = hit
            faces.append((box, score, landmarks, box_relation(box, landmarks), prev.identity_distance))
    if detected:
        start = time.perf_counter()
        found = detect_faces(image, opts.detector, opts.upsample, opts.detect_max_side, gray=gray)
        detect_seconds = time.perf_counter() - start
        for det in found:
            landmarks = predict_landmarks(gray, det.box)
            faces.append((det.box, det.score, landmarks, box_relation(det.box, landmarks), None))

    crops = []
    for box, score, landmarks, relation, known_distance in faces:
        crop, matrix = align_face(image, landmarks, opts.size, opts.coverage)
        face = FaceRecord(
            box=[int(v) for v in box],
            score=round(float(score), 4),
            landmarks=_round_points(landmarks),
            matrix=[[float(v) for v in row] for row in matrix],
        )
        if opts.references:
            # A tracked face is the person seen at its detection: reuse that distance (the
            # embedding costs more than the detection it saves).
            if known_distance is None:
                known_distance = nearest_distance(face_embedding(image, landmarks, box), opts.references)
            face.identity_distance = round(known_distance, 4)
            if face.identity_distance > opts.identity_threshold:
                face.reason = f"identity distance {face.identity_distance:.3f} > {opts.identity_threshold}"
        if not face.reason and opts.min_sharpness > 0:
            value = sharpness(crop)
            if value < opts.min_sharpness:
                face.reason = f"blurry: sharpness {value:.1f} < {opts.min_sharpness}"
        next_tracked.append(Tracked(landmarks, relation, score, known_distance))
        if face.reason:
            record.rejected.append(face)
        else:
            record.faces.append(face)
            crops.append(crop if opts.want_crops else np.empty(0, np.uint8))

    if record.faces:
        record.status = "ok"
    elif record.rejected:
        record.status = "filtered"
        record.reason = "; ".join(f.reason for f in record.rejected)
    else:
        record.status = "no_face"
        record.reason = f"{opts.detector} detector found no face" + ("" if detected else " (tracking)")
    return FrameResult(record, crops, detect_seconds, detected), next_tracked


def process_chunk(tasks: list[FrameTask], opts: FrameOptions) -> list[FrameResult]:
    """Consecutive frames: detect on every track_interval-th frame, track the faces in between.

    Each chunk starts with a detection, so chunks are independent and can go to any worker.
    """
    interval = max(1, opts.track_interval)
    results = []
    tracked: list[Tracked] = []
    for position, task in enumerate(tasks):
        result, tracked = process_frame(task, opts, tracked, force_detect=position % interval == 0)
        results.append(result)
    return results


def _init_worker() -> None:
    # One process per core does the parallelism; threads inside each would only fight over cores.
    cv2.setNumThreads(1)
