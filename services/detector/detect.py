"""Face detection (dlib HOG or CNN/MMOD) and 68-point landmarks, plus landmark-based tracking.

Detection may run on a downscaled copy of the frame (``max_side``) because detectors cost grows
with pixel count while faces in video are large; boxes are scaled back and the landmarks are always
predicted on the full-resolution frame, so the alignment keeps full precision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.errors import InvalidArgument
from services.detector.models import get_model, model_lock

DETECTORS = ("hog", "cnn")


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # left, top, right, bottom in frame pixels
    score: float


def check_detector(name: str) -> str:
    if name not in DETECTORS:
        raise InvalidArgument(
            f"unknown detector {name!r} (use one of {', '.join(DETECTORS)})", field="detector"
        )
    return name


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose long side is at most max_side (0 = unchanged) and the factor back to full size."""
    h, w = image.shape[:2]
    long_side = max(h, w)
    if max_side <= 0 or long_side <= max_side:
        return image, 1.0
    factor = long_side / max_side
    small = cv2.resize(image, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
    return small, factor


def detect_faces(
    image_bgr: np.ndarray,
    detector: str = "hog",
    upsample: int = 1,
    max_side: int = 0,
    gray: np.ndarray | None = None,
) -> list[Detection]:
    """Face boxes in full-frame coordinates, best score first."""
    check_detector(detector)
    if detector == "hog":
        src = gray if gray is not None else to_gray(image_bgr)
    else:
        src = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if image_bgr.ndim == 3 else image_bgr
    small, factor = downscale(src, max_side)
    small = np.ascontiguousarray(small)
    model = get_model(detector)
    with model_lock(detector):
        if detector == "hog":
            rects, scores, _ = model.run(small, int(upsample), 0.0)
            found = list(zip(rects, scores, strict=True))
        else:
            found = [(d.rect, d.confidence) for d in model(small, int(upsample))]
    out = [
        Detection(
            (
                round(r.left() * factor),
                round(r.top() * factor),
                round((r.right() + 1) * factor) - 1,
                round((r.bottom() + 1) * factor) - 1,
            ),
            float(s),
        )
        for r, s in found
    ]
    return sorted(out, key=lambda d: -d.score)


def predict_landmarks(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """68 x 2 landmarks (float, frame pixels) inside a face box."""
    import dlib

    model = get_model("landmarks")
    rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    with model_lock("landmarks"):
        shape = model(gray, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def landmark_bounds(landmarks: np.ndarray) -> np.ndarray:
    """x0, y0, x1, y1 of the landmarks."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])


def box_relation(box: tuple[int, int, int, int], landmarks: np.ndarray) -> np.ndarray:
    """The detector box expressed relative to the landmarks' bounds (for tracking)."""
    x0, y0, x1, y1 = landmark_bounds(landmarks)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return np.array([(box[0] - x0) / w, (box[1] - y0) / h, (box[2] - x1) / w, (box[3] - y1) / h])


def box_from_landmarks(landmarks: np.ndarray, relation: np.ndarray) -> tuple[int, int, int, int]:
    """A detector-like box around landmarks, using the relation measured at the last detection.

    The shape predictor was trained on detector boxes, so tracking feeds it a box with the same
    framing the detector would have produced rather than the raw landmark bounds.
    """
    x0, y0, x1, y1 = landmark_bounds(landmarks)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return (
        round(x0 + relation[0] * w),
        round(y0 + relation[1] * h),
        round(x1 + relation[2] * w),
        round(y1 + relation[3] * h),
    )


def box_iou(a: np.ndarray | tuple, b: np.ndarray | tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Tracked:
    """A face carried from one frame to the next without running the detector."""

    landmarks: np.ndarray
    relation: np.ndarray
    score: float
    identity_distance: float | None = None  # measured at detection, carried along the track


def track_face(
    gray: np.ndarray, prev: Tracked, min_iou: float = 0.5
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Re-fits landmarks in a box predicted from the previous frame; None when the face is lost."""
    h, w = gray.shape[:2]
    box = box_from_landmarks(prev.landmarks, prev.relation)
    if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
        return None
    landmarks = predict_landmarks(gray, box)
    # A jump of the landmarks' bounds means the fit drifted off the face: let the detector decide.
    if box_iou(landmark_bounds(landmarks), landmark_bounds(prev.landmarks)) < min_iou:
        return None
    return box_from_landmarks(landmarks, prev.relation), landmarks


def timed_detect(*args, **kwargs) -> tuple[list[Detection], float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    found = detect_faces(*args, **kwargs)
    return found, time.perf_counter() - start
