"""Pure metric functions on landmarks, embeddings and frames (no I/O, no model loading).

Conventions: landmarks are 68x2 float arrays in frame pixels (dlib's iBUG 68-point order), embeddings
128-D float vectors, images BGR uint8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceswap.evaluate.faces import SAME_PERSON_DISTANCE

RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)


# --- identity ---------------------------------------------------------------------------------------


def embedding_distances(embedding: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Euclidean distance from one embedding to each row of ``others`` (dlib's metric)."""
    return np.linalg.norm(np.asarray(others, dtype=np.float64) - embedding[None, :], axis=1)


def mean_distance(embedding: np.ndarray, others: np.ndarray) -> float:
    return float(embedding_distances(embedding, others).mean())


def reads_as_b(distance_to_b: float, distance_to_source: float, source_distance_to_b: float) -> bool:
    """A swapped face reads as B when it is within dlib's same-person threshold of the B set AND closer
    to B than to the face it replaced (a blurred face is only far from A; it is not B).

    When the source face itself already reads as B (A and B are one person to dlib, e.g. a clip
    evaluated against its own faces), closeness to the source is no evidence against B, so only the
    threshold applies; the report flags such runs (``source_reads_as_b_share``)."""
    if not distance_to_b < SAME_PERSON_DISTANCE:
        return False
    return distance_to_b < distance_to_source or source_distance_to_b < SAME_PERSON_DISTANCE


# --- geometry ---------------------------------------------------------------------------------------


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres: the face-size unit that landmark errors are divided by."""
    return float(np.linalg.norm(landmarks[RIGHT_EYE].mean(0) - landmarks[LEFT_EYE].mean(0)))


def landmark_error(source: np.ndarray, swapped: np.ndarray) -> float:
    """Mean point distance between the two 68-point sets / the source's inter-ocular distance, in %."""
    iod = inter_ocular(source)
    if iod <= 0:
        return math.nan
    return float(np.linalg.norm(source - swapped, axis=1).mean() / iod * 100.0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def best_match(box: Sequence[float], candidates: Sequence[Sequence[float]], min_iou: float = 0.3) -> int:
    """Index of the candidate box overlapping ``box`` most (IoU >= min_iou), or -1."""
    best, best_iou = -1, min_iou
    for i, cand in enumerate(candidates):
        score = iou(box, cand)
        if score >= best_iou:
            best, best_iou = i, score
    return best


# --- temporal stability -----------------------------------------------------------------------------


def second_difference_energy(landmarks: Sequence[np.ndarray | None], scales: Sequence[float]) -> list[float]:
    """Per interior sample t: mean over points of |L[t+1] - 2 L[t] + L[t-1]|^2 / scale[t]^2.

    Acceleration of the landmarks, in face-size units: steady motion (a head turning) costs nothing,
    frame-to-frame shake does. NaN where a neighbour has no face (the chain breaks there)."""
    out = [math.nan] * len(landmarks)
    for t in range(1, len(landmarks) - 1):
        prev, cur, nxt = landmarks[t - 1], landmarks[t], landmarks[t + 1]
        if prev is None or cur is None or nxt is None or not scales[t] > 0:
            continue
        accel = nxt - 2.0 * cur + prev
        out[t] = float((accel**2).sum(axis=1).mean() / scales[t] ** 2)
    return out


def rms_percent(energies: Sequence[float]) -> float:
    """sqrt(mean energy) * 100: landmark acceleration RMS in % of the inter-ocular distance."""
    values = [e for e in energies if not math.isnan(e)]
    return float(math.sqrt(sum(values) / len(values)) * 100.0) if values else math.nan


# --- blending ---------------------------------------------------------------------------------------

# Border rings, in ring widths from the landmark hull's edge: 0 = the band just inside the edge,
# 1 = the band just outside. A seam shows as gradient on the edge that the source frame does not have;
# rings deeper inside would measure the new face's own features (brows, make-up), not the blend.
RING_OFFSETS = (0, 1)
RING_WIDTH = 0.04  # of the inter-ocular distance


@dataclass
class BorderMeasure:
    gradient: list[float]  # mean gradient magnitude on each ring of RING_OFFSETS
    delta_e: float  # CIE76 distance between mean LAB just inside and just outside the hull
    interior_lab: tuple[float, float, float]  # mean LAB inside the hull


@dataclass
class BorderGeometry:
    """Rings and bands around a face's landmark hull, in a crop of the frame (computed once per face,
    applied to the source and the swapped frame alike so both are measured on the same pixels)."""

    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame
    rings: list[np.ndarray]  # boolean masks, crop-sized, one per RING_OFFSETS
    inner: np.ndarray
    outer: np.ndarray
    interior: np.ndarray


def border_geometry(landmarks: np.ndarray, frame_shape: tuple[int, ...]) -> BorderGeometry | None:
    height, width = frame_shape[:2]
    iod = inter_ocular(landmarks)
    if iod <= 1:
        return None
    width_px = max(2, round(RING_WIDTH * iod))  # ring and band thickness, scaled with the face
    margin = width_px * (max(RING_OFFSETS) + 3)
    x0 = max(0, int(landmarks[:, 0].min()) - margin)
    y0 = max(0, int(landmarks[:, 1].min()) - margin)
    x1 = min(width, math.ceil(landmarks[:, 0].max()) + margin)
    y1 = min(height, math.ceil(landmarks[:, 1].max()) + margin)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    hull = cv2.convexHull((landmarks - [x0, y0]).astype(np.int32))
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width_px + 1, 2 * width_px + 1))

    def grown(steps: int) -> np.ndarray:
        if steps > 0:
            return cv2.dilate(mask, kernel, iterations=steps) > 0
        if steps < 0:
            return cv2.erode(mask, kernel, iterations=-steps) > 0
        return mask > 0

    levels = {s: grown(s) for s in range(min(-1, min(RING_OFFSETS) - 1), max(RING_OFFSETS) + 1)}
    # Ring k: the pixels between the hull grown by k-1 and by k widths (k=0: just inside the edge).
    rings = [levels[k] & ~levels[k - 1] for k in RING_OFFSETS]
    return BorderGeometry(
        crop=(x0, y0, x1, y1),
        rings=rings,
        inner=levels[0] & ~levels[-1],
        outer=levels[1] & ~levels[0],
        interior=levels[-1],
    )


def measure_border(image_bgr: np.ndarray, geo: BorderGeometry) -> BorderMeasure:
    x0, y0, x1, y1 = geo.crop
    patch = image_bgr[y0:y1, x0:x1]
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy)
    gradient = [float(magnitude[ring].mean()) if ring.any() else math.nan for ring in geo.rings]
    lab = cv2.cvtColor(patch.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)  # L 0..100, a/b +-127
    inner = lab[geo.inner].mean(0) if geo.inner.any() else np.full(3, np.nan)
    outer = lab[geo.outer].mean(0) if geo.outer.any() else np.full(3, np.nan)
    interior = lab[geo.interior].mean(0) if geo.interior.any() else np.full(3, np.nan)
    return BorderMeasure(
        gradient=gradient,
        delta_e=float(np.linalg.norm(inner - outer)),
        interior_lab=(float(interior[0]), float(interior[1]), float(interior[2])),
    )


def delta_e(lab_a: Sequence[float], lab_b: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(lab_a, dtype=np.float64) - np.asarray(lab_b, dtype=np.float64)))


# --- realism (inside the source face's landmark hull) -------------------------------------------------

# A pixel is a clipped highlight when its L* is at the top of the scale or any channel is saturated.
CLIPPED_L = 98.0
CLIPPED_CHANNEL = 250


@dataclass
class InteriorMeasure:
    """Figures of one image on the source face's hull interior (``BorderGeometry.interior``)."""

    sharpness: float  # variance of the Laplacian of the grey image
    light: float  # mean L* (CIELAB, 0..100)
    clipped: float  # share of clipped-highlight pixels, 0..1


def measure_interior(image_bgr: np.ndarray, geo: BorderGeometry) -> InteriorMeasure:
    x0, y0, x1, y1 = geo.crop
    patch = image_bgr[y0:y1, x0:x1]
    mask = geo.interior
    if not mask.any():
        return InteriorMeasure(math.nan, math.nan, math.nan)
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    laplacian = cv2.Laplacian(gray, cv2.CV_64F, ksize=3)
    lightness = cv2.cvtColor(patch.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)[..., 0]
    clipped = (lightness >= CLIPPED_L) | (patch.max(axis=2) >= CLIPPED_CHANNEL)
    return InteriorMeasure(
        sharpness=float(laplacian[mask].var()),
        light=float(lightness[mask].mean()),
        clipped=float(clipped[mask].mean()),
    )


def interior_difference(a_bgr: np.ndarray, b_bgr: np.ndarray, geo: BorderGeometry) -> float:
    """Mean absolute grey-level difference of two frames on the hull interior (0..255)."""
    x0, y0, x1, y1 = geo.crop
    if not geo.interior.any():
        return math.nan
    ga = cv2.cvtColor(a_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.int16)
    gb = cv2.cvtColor(b_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.int16)
    return float(np.abs(ga - gb)[geo.interior].mean())


# --- expression, in the face's own size --------------------------------------------------------------

# dlib 68-point indices (0-based): inner-lip pairs (upper 61-63, lower 67-65), eyelid pairs, brows.
MOUTH_PAIRS = ((61, 67), (62, 66), (63, 65))
EYE_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
BROWS = slice(17, 27)


@dataclass(frozen=True)
class Expression:
    mouth_open: float  # mean inner-lip gap / inter-ocular distance
    eye_open: float  # mean eyelid gap / inter-ocular distance
    brow_height: float  # mean distance of the brow points above the eye line / inter-ocular distance


def expression(landmarks: np.ndarray) -> Expression:
    """Expression figures of one face, each divided by that face's own inter-ocular distance, so B's
    bigger or smaller face does not count: only how open the mouth and eyes are, how high the brows."""
    iod = inter_ocular(landmarks)
    if iod <= 0:
        return Expression(math.nan, math.nan, math.nan)

    def gap(pairs: tuple[tuple[int, int], ...]) -> float:
        return float(np.mean([np.linalg.norm(landmarks[i] - landmarks[j]) for i, j in pairs]))

    right, left = landmarks[RIGHT_EYE].mean(0), landmarks[LEFT_EYE].mean(0)
    axis = (left - right) / iod
    normal = np.array([axis[1], -axis[0]])  # perpendicular to the eye line, pointing up in the image
    brow = float(((landmarks[BROWS] - (right + left) / 2) @ normal).mean())
    return Expression(gap(MOUTH_PAIRS) / iod, gap(EYE_PAIRS) / iod, brow / iod)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation over the pairs where both are finite; NaN with < 3 pairs or a flat series."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan
    a, b = np.array(pairs, dtype=np.float64).T
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


# --- aggregation helpers ----------------------------------------------------------------------------


def nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(sum(kept) / len(kept)) if kept else math.nan


def safe_ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return math.nan
    return float(numerator / denominator)
