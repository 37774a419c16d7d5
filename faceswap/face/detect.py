"""Face detection (dlib HOG or CNN/MMOD) and 68-point landmarks, plus landmark-based tracking.

Detection may run on a rescaled copy of the frame (``max_side`` or ``scale``) because detectors cost
grows with pixel count while faces in video are large; which scale is safe follows from the size of
the faces that must be found (``scale_for_face``). Boxes are scaled back and the landmarks are always
predicted on the full-resolution frame, so the alignment keeps full precision.

Rotated faces: ``rotate_image`` / ``unrotate_points`` turn a frame by 90/180/270 degrees for the
detector and map what was found back into the frame's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.face.models import get_model, model_lock
from faceswap.options.detect import DETECTORS


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


# dlib's HOG window is 80 x 80 px: a face is found reliably once its box is about this wide in the
# image the detector scans (after its own upsampling). The margin over 80 covers the pyramid's 5/6
# steps and faces a little turned or blurred.
HOG_SAFE_FACE_PX = 100.0
MAX_UPSCALE = 2.0  # detection copies are never enlarged more than this


def scale_for_face(face_px: float, upsample: int) -> float:
    """The smallest detection scale (copy px per frame px) at which faces of ``face_px`` (box width in
    frame pixels) are still found with ``upsample``; above 1 means the frame must be enlarged."""
    if face_px <= 0:
        return 1.0
    return HOG_SAFE_FACE_PX / (face_px * 2 ** max(0, int(upsample)))


def rescale(image: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """A copy scaled by ``scale`` (1 = unchanged) and the factor back to full size."""
    if abs(scale - 1.0) < 1e-3:
        return image, 1.0
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, size, interpolation=interp)
    return small, w / size[0]


def detect_faces(
    image_bgr: np.ndarray,
    detector: str = "hog",
    upsample: int = 1,
    max_side: int = 0,
    gray: np.ndarray | None = None,
    scale: float | None = None,
) -> list[Detection]:
    """Face boxes in full-frame coordinates, best score first.

    ``scale`` (copy px per frame px, may exceed 1) takes precedence over ``max_side``.
    """
    check_detector(detector)
    if detector == "hog":
        src = gray if gray is not None else to_gray(image_bgr)
    else:
        src = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if image_bgr.ndim == 3 else image_bgr
    if scale is not None:
        small, factor = rescale(src, min(scale, MAX_UPSCALE))
    else:
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


# Rotations the detector may be given, as cv2.rotate codes: degrees clockwise.
ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """The image turned clockwise by 0/90/180/270 degrees."""
    return image if degrees % 360 == 0 else cv2.rotate(image, ROTATIONS[degrees % 360])


def unrotate_points(points: np.ndarray, degrees: int, shape: tuple[int, ...]) -> np.ndarray:
    """Points found in ``rotate_image(image, degrees)`` mapped back into ``image`` (of ``shape``)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = shape[:2]
    x, y = pts[:, 0], pts[:, 1]
    degrees %= 360
    if degrees == 90:  # (x, y) -> (h - 1 - y, x)
        out = np.stack([y, h - 1 - x], axis=1)
    elif degrees == 180:
        out = np.stack([w - 1 - x, h - 1 - y], axis=1)
    elif degrees == 270:  # (x, y) -> (y, w - 1 - x)
        out = np.stack([w - 1 - y, x], axis=1)
    else:
        out = pts.copy()
    return out


def unrotate_box(
    box: tuple[int, int, int, int], degrees: int, shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]], float)
    back = unrotate_points(corners, degrees, shape)
    x0, y0 = back.min(axis=0)
    x1, y1 = back.max(axis=0)
    return (round(x0), round(y0), round(x1), round(y1))


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


def fit_in_carried_box(
    gray: np.ndarray, landmarks: np.ndarray, relation: np.ndarray, iterations: int = 3
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Landmarks fitted without a detector: the box carried from the last landmarks, refitted a few
    times on the box of the new fit so that it follows a face that moved (recovery of missed frames;
    the caller verifies the result)."""
    box = box_from_landmarks(landmarks, relation)
    fitted = predict_landmarks(gray, box)
    for _ in range(iterations - 1):
        new_box = box_from_landmarks(fitted, relation)
        if box_iou(new_box, box) > 0.97:
            break
        box = new_box
        fitted = predict_landmarks(gray, box)
    return box, fitted


@dataclass
class Tracked:
    """A face carried from one frame to the next without running the detector."""

    landmarks: np.ndarray
    relation: np.ndarray
    score: float
    identity_distance: float | None = None  # measured at detection, carried along the track


# Tracking re-detects in a window around the predicted box, scaled so the face is ~100 px wide:
# a little above HOG's 80 px window, so the search costs a few milliseconds whatever the frame size.
TRACK_FACE_PX = 100
TRACK_MARGIN = 0.5  # window = predicted box grown by this share of its size on every side


def track_face(
    gray: np.ndarray, prev: Tracked, min_iou: float = 0.3
) -> tuple[tuple[int, int, int, int], np.ndarray, float] | None:
    """Finds the face again near where it was; None when it is gone (then run the full detector).

    The box predicted from the last landmarks is only a search window: HOG must confirm a face
    there (a scene cut or an occlusion then ends the track instead of fitting landmarks to the
    background), and the landmarks are fitted in the detector's own box, as on detected frames.
    """
    h, w = gray.shape[:2]
    pred = box_from_landmarks(prev.landmarks, prev.relation)
    bw, bh = pred[2] - pred[0], pred[3] - pred[1]
    if bw < 16 or bh < 16:
        return None
    x0, y0 = max(0, int(pred[0] - TRACK_MARGIN * bw)), max(0, int(pred[1] - TRACK_MARGIN * bh))
    x1, y1 = min(w, int(pred[2] + TRACK_MARGIN * bw)), min(h, int(pred[3] + TRACK_MARGIN * bh))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    scale = TRACK_FACE_PX / bw
    window = cv2.resize(
        gray[y0:y1, x0:x1],
        (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    model = get_model("hog")
    with model_lock("hog"):
        rects, scores, _ = model.run(np.ascontiguousarray(window), 0, 0.0)
    best: tuple[float, tuple[int, int, int, int], float] | None = None
    for r, score in zip(rects, scores, strict=True):
        box = (
            round(x0 + r.left() / scale),
            round(y0 + r.top() / scale),
            round(x0 + (r.right() + 1) / scale) - 1,
            round(y0 + (r.bottom() + 1) / scale) - 1,
        )
        iou = box_iou(box, pred)
        if iou >= min_iou and (best is None or iou > best[0]):
            best = (iou, box, float(score))
    if best is None:
        return None
    _, box, score = best
    return box, predict_landmarks(gray, box), score
