"""Face masks in frame (ROI) coordinates: which pixels of the swapped face replace the frame's.

Each mask kind returns a binary uint8 mask (0/255); ``feather`` then erodes it (so the seam lies
inside the face, away from hair and background) and blurs the edge (so there is no hard line).
Kinds:
- ``hull``: convex hull of the 68 landmarks (the seed's mask).
- ``components``: union of hulls of face parts (jaw halves, cheeks, eyes, nose): follows a turned
  face's outline more tightly than one hull.
- ``predicted``: the mask the model outputs for its face, warped back to the frame.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from faceswap.errors import FailedPrecondition

MaskFn = Callable[[np.ndarray, tuple[int, int], "np.ndarray | None"], np.ndarray]

# 68-point iBUG groups used by the components mask (as in deepfakes/faceswap's "components").
_COMPONENTS: tuple[tuple[slice, ...], ...] = (
    (slice(0, 9), slice(17, 18)),
    (slice(8, 17), slice(26, 27)),
    (slice(17, 20), slice(8, 9)),
    (slice(24, 27), slice(8, 9)),
    (slice(19, 25), slice(8, 9)),
    (slice(17, 22), slice(27, 28), slice(31, 36), slice(8, 9)),
    (slice(22, 27), slice(27, 28), slice(31, 36), slice(8, 9)),
    (slice(27, 31), slice(31, 36)),
)


def _fill_hull(mask: np.ndarray, points: np.ndarray) -> None:
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8)


def hull_mask(
    landmarks: np.ndarray, shape: tuple[int, int], predicted: np.ndarray | None = None
) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    _fill_hull(mask, landmarks)
    return mask


def components_mask(
    landmarks: np.ndarray, shape: tuple[int, int], predicted: np.ndarray | None = None
) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for parts in _COMPONENTS:
        _fill_hull(mask, np.concatenate([landmarks[s] for s in parts]))
    return mask


def predicted_mask(
    landmarks: np.ndarray, shape: tuple[int, int], predicted: np.ndarray | None = None
) -> np.ndarray:
    if predicted is None:
        raise FailedPrecondition("mask 'predicted' needs a model that outputs a mask; this one does not")
    return np.where(predicted >= 0.5, 255, 0).astype(np.uint8)


MASKS: dict[str, MaskFn] = {"hull": hull_mask, "components": components_mask, "predicted": predicted_mask}


def _ellipse(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def feather(binary: np.ndarray, erode_px: float, blur_px: float) -> np.ndarray:
    """Erodes then blurs a 0/255 mask; returns float32 alpha in [0, 1].

    The blur is centred on the eroded edge, so the alpha reaches past the eroded mask by at most
    ``blur_px``: with erode >= blur the soft edge stays inside the original mask.
    """
    mask = binary
    erode = round(erode_px)
    if erode > 0:
        mask = cv2.erode(mask, _ellipse(erode))
    alpha = mask.astype(np.float32) * (1.0 / 255.0)
    blur = round(blur_px)
    if blur > 0:
        alpha = cv2.GaussianBlur(alpha, (2 * blur + 1, 2 * blur + 1), blur / 2.0)
        # Tiny blur tails would touch far pixels by 1e-7: cut them so "outside" stays untouched.
        alpha[alpha < 1.0 / 512.0] = 0.0
    return alpha


def build_mask(
    kind: str,
    landmarks: np.ndarray,
    shape: tuple[int, int],
    erode_px: float,
    blur_px: float,
    predicted: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Float alpha in [0, 1] for one face. ``valid`` (0/255) limits it to where the model's output
    lands in the frame, so no pixel comes from outside the swapped square."""
    binary = MASKS[kind](landmarks, shape, predicted)
    if valid is not None:
        binary = cv2.bitwise_and(binary, valid)
    return feather(binary, erode_px, blur_px)
