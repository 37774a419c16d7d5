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

from faceswap.errors import ServiceError
from faceswap.face.alignments import FaceRecord, FrameRecord
from faceswap.face.detect import (
    MAX_UPSCALE,
    Detection,
    Tracked,
    box_relation,
    detect_faces,
    predict_landmarks,
    rotate_image,
    scale_for_face,
    to_gray,
    track_face,
    unrotate_box,
    unrotate_points,
)
from faceswap.face.geometry import align_face
from faceswap.face.identity import face_embedding, nearest_distance
from faceswap.face.images import decode_image

# A frame's pixels: a local file path, encoded bytes, or an already decoded BGR array.
Source = str | bytes | np.ndarray | None

# Photos larger than this are detected on a copy of this long side unless min_face says otherwise
# (a 4000 px photo at full size costs seconds; HOG upsample 1 there still finds faces of ~80 px).
PHOTO_MAX_SIDE = 2048
# Retry when nothing was found: the frame turned by these angles (clockwise), then the CNN detector.
RETRY_ROTATIONS = (90, 270, 180)
# A face found only on a turned frame must score at least this (HOG): on the shared hard cases the
# turned retries' false positives scored 0.03-0.59, the 90-degree face 2.18.
RETRY_MIN_SCORE = 1.0
CNN_RETRY_MAX_SIDE = 640  # the CNN retry works on a copy of at most this long side (CPU cost)


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
    # Scale by need (see detection_scale): smallest face to find in frame px, 0 = auto.
    min_face: int = 0
    # "auto": rotated / CNN retries for photos only; "on": for every frame; "off": never.
    fallback: str = "auto"
    # Frames of one video (scale from faces seen, temporal recovery) rather than unrelated photos.
    sequence: bool = True
    # Longest run of missed video frames filled from their neighbours (0 = off); run by the parent.
    recover_frames: int = 5
    # Smallest face width seen so far in this video (0 = none yet: detect at full resolution).
    seen_face_px: float = 0.0


def detection_scale(opts: FrameOptions, shape: tuple[int, ...], seen_face_px: float) -> float:
    """Detection copy px per frame px, chosen by the faces that must be found.

    Photos: full resolution (at most PHOTO_MAX_SIDE), or what ``min_face`` needs. Video: the fast
    path (``detect_max_side``) only where the faces to find are large enough at that scale: the
    smallest face seen so far (none yet: full resolution) or ``min_face``.
    """
    long_side = max(shape[:2])
    if opts.min_face > 0:
        need = scale_for_face(opts.min_face, opts.upsample)  # may enlarge: asked for
    elif not opts.sequence:
        need = min(1.0, PHOTO_MAX_SIDE / long_side)
    elif seen_face_px > 0:
        need = min(1.0, scale_for_face(seen_face_px, opts.upsample))
    else:
        need = 1.0
    if opts.sequence:
        fast = min(1.0, opts.detect_max_side / long_side) if opts.detect_max_side > 0 else 1.0
        need = max(fast, need)
    return min(MAX_UPSCALE, need)


def retries_enabled(opts: FrameOptions) -> bool:
    return opts.fallback == "on" or (opts.fallback == "auto" and not opts.sequence)


@dataclass
class FrameResult:
    record: FrameRecord
    crops: list[np.ndarray]  # aligned crops of record.faces, same order
    detect_seconds: float  # detector time (0 when the frame was tracked)
    detected: bool
    scale: float = 0.0  # detection copy px per frame px (0 when the frame was not detected)


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
    task: FrameTask,
    opts: FrameOptions,
    tracked: list[Tracked] | None = None,
    force_detect: bool = True,
    seen_face_px: float | None = None,
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
        seen = opts.seen_face_px if seen_face_px is None else seen_face_px
        return _analyse(image, record, opts, tracked, force_detect, seen)
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
    seen_face_px: float = 0.0,
) -> tuple[FrameResult, list[Tracked]]:
    gray = to_gray(image)

    # (box, score, landmarks, box relation for tracking, identity distance known from the track,
    #  rotation, detector)
    faces: list[tuple[tuple[int, int, int, int], float, np.ndarray, np.ndarray, float | None, int, str]] = []
    next_tracked: list[Tracked] = []
    detect_seconds = 0.0
    scale = 0.0
    detected = force_detect or not tracked
    if not detected:
        for prev in tracked or []:
            hit = track_face(gray, prev)
            if hit is None:  # lost one face: fall back to the detector for the whole frame
                detected = True
                faces = []
                break
            box, landmarks, score = hit
            faces.append(
                (box, score, landmarks, box_relation(box, landmarks), prev.identity_distance, 0, "hog")
            )
    if detected:
        start = time.perf_counter()
        scale = detection_scale(opts, image.shape, seen_face_px)
        found = detect_faces(image, opts.detector, opts.upsample, gray=gray, scale=scale)
        for det in found:
            landmarks = predict_landmarks(gray, det.box)
            faces.append(
                (det.box, det.score, landmarks, box_relation(det.box, landmarks), None, 0, opts.detector)
            )
        if not faces and retries_enabled(opts):
            faces.extend(_retry(image, gray, opts, scale))
        detect_seconds = time.perf_counter() - start

    crops = []
    for box, score, landmarks, relation, known_distance, rotation, detector in faces:
        crop, matrix = align_face(image, landmarks, opts.size, opts.coverage)
        face = FaceRecord(
            box=[int(v) for v in box],
            score=round(float(score), 4),
            landmarks=_round_points(landmarks),
            matrix=[[float(v) for v in row] for row in matrix],
            rotation=rotation,
            detector=detector,
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
        if rotation == 0:  # a turned face is looked for again by the full detector
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
        if detected and retries_enabled(opts):
            record.reason += " (also turned 90/270/180 degrees" + (
                ")" if opts.detector == "cnn" else ", and with the cnn detector)"
            )
    return FrameResult(record, crops, detect_seconds, detected, scale), next_tracked


def _retry(
    image: np.ndarray, gray: np.ndarray, opts: FrameOptions, scale: float
) -> list[tuple[tuple[int, int, int, int], float, np.ndarray, np.ndarray, None, int, str]]:
    """Nothing found upright: the frame turned by 90/270/180 degrees (HOG, a strict score), then the
    CNN detector upright (profiles). Boxes and landmarks come back in the frame's own pixels."""
    out = []
    for degrees in RETRY_ROTATIONS:
        turned_gray = rotate_image(gray, degrees)
        found: list[Detection] = [
            d
            for d in detect_faces(image, "hog", opts.upsample, gray=turned_gray, scale=scale)
            if d.score >= RETRY_MIN_SCORE
        ]
        for det in found:
            landmarks = unrotate_points(predict_landmarks(turned_gray, det.box), degrees, gray.shape)
            box = unrotate_box(det.box, degrees, gray.shape)
            out.append((box, det.score, landmarks, box_relation(box, landmarks), None, degrees, "hog"))
        if out:
            return out
    if opts.detector != "cnn":
        cnn_scale = min(scale, CNN_RETRY_MAX_SIDE / max(gray.shape[:2]))
        for det in detect_faces(image, "cnn", 0, gray=gray, scale=cnn_scale):
            landmarks = predict_landmarks(gray, det.box)
            out.append((det.box, det.score, landmarks, box_relation(det.box, landmarks), None, 0, "cnn"))
    return out


def process_chunk(tasks: list[FrameTask], opts: FrameOptions) -> list[FrameResult]:
    """Consecutive frames: detect on every track_interval-th frame, track the faces in between.

    Each chunk starts with a detection, so chunks are independent and can go to any worker.
    """
    interval = max(1, opts.track_interval)
    results = []
    tracked: list[Tracked] = []
    seen = opts.seen_face_px
    for position, task in enumerate(tasks):
        result, tracked = process_frame(
            task, opts, tracked, force_detect=position % interval == 0, seen_face_px=seen
        )
        seen = smallest_face(result.record, seen)
        results.append(result)
    return results


def smallest_face(record: FrameRecord, seen: float) -> float:
    """The smallest face box width seen so far (0 = none yet), kept and rejected faces alike."""
    widths = [f.box[2] - f.box[0] for f in record.faces + record.rejected if f.rotation == 0]
    if not widths:
        return seen
    smallest = float(min(widths))
    return smallest if seen <= 0 else min(seen, smallest)


def _init_worker() -> None:
    # One process per core does the parallelism; threads inside each would only fight over cores.
    cv2.setNumThreads(1)
