"""Expression lock: bend the swapped face so its landmarks land on the source face's landmarks.

An autoencoder trained on two people tends to draw B's habitual expression (an open mouth, raised
brows) and B's geometry (a longer nose) instead of A's. We find the 68 landmarks on the swapped
face (dlib's shape predictor on an upscaled copy, initialised on the source face's box) and warp it
with a thin-plate spline that moves them onto A's landmarks, with the crop's border pinned. B's
appearance stays; A's expression, mouth shape and head pose are restored exactly. Measured on the
bundled pair (docs/converter.md): mean landmark error against the source drops while the face
still reads as B.
"""

from __future__ import annotations

import cv2
import numpy as np

# Upscale small faces before fitting landmarks: the shape predictor was trained on larger faces.
_FIT_SIZE = 256
# A fit whose points are further than this share of the crop from the target is not trusted.
_MAX_SHIFT = 0.2


def fit_landmarks(face: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """68 landmarks of ``face`` (size x size, BGR, 0..255), searched from ``guide``'s bounding box."""
    import dlib

    from faceswap.face.models import get_model, model_lock

    size = face.shape[0]
    scale = max(1.0, _FIT_SIZE / size)
    image = cv2.resize(np.clip(face, 0, 255).astype(np.uint8), None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_CUBIC)  # fmt: skip
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    x0, y0 = guide.min(axis=0) * scale
    x1, y1 = guide.max(axis=0) * scale
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    with model_lock("landmarks"):
        shape = get_model("landmarks")(rgb, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64) / scale


def _border_anchors(size: int, per_side: int = 9) -> np.ndarray:
    """Points along the crop's border that the warp keeps in place (no seams at the square's edge)."""
    t = np.linspace(0, size - 1, per_side)
    inner = t[1:-1]
    lo, hi = 0.0, float(size - 1)
    top = np.stack([t, np.full_like(t, lo)], 1)
    bottom = np.stack([t, np.full_like(t, hi)], 1)
    left = np.stack([np.full_like(inner, lo), inner], 1)
    right = np.stack([np.full_like(inner, hi), inner], 1)
    return np.concatenate([top, bottom, left, right])


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        k = r2 * np.log(r2)
    return np.nan_to_num(k)


def tps_map(dst: np.ndarray, src: np.ndarray, size: int, smoothing: float = 1.0) -> tuple[np.ndarray, ...]:
    """remap() grids sending each output pixel near ``dst[i]`` to the input pixel near ``src[i]``."""
    n = len(dst)
    k = _tps_kernel(((dst[:, None, :] - dst[None, :, :]) ** 2).sum(-1)) + smoothing * np.eye(n)
    p = np.hstack([np.ones((n, 1)), dst])
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
    b = np.zeros((n + 3, 2))
    b[:n] = src
    coef = np.linalg.solve(a, b)
    ys, xs = np.mgrid[0:size, 0:size]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    u = _tps_kernel(((grid[:, None, :] - dst[None, :, :]) ** 2).sum(-1))
    mapped = u @ coef[:n] + coef[n] + grid @ coef[n + 1 :]
    return (mapped[:, 0].reshape(size, size).astype(np.float32),
            mapped[:, 1].reshape(size, size).astype(np.float32))  # fmt: skip


def lock_expression(
    face: np.ndarray, target: np.ndarray, predicted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Warps ``face`` (and its predicted mask) so its landmarks match ``target`` (aligned pixels).

    Returns (face, mask, applied). Faces whose landmark fit is implausible come back unchanged."""
    size = face.shape[0]
    if not np.isfinite(target).all():
        return face, predicted, False
    fitted = fit_landmarks(face, target)
    shift = np.linalg.norm(fitted - target, axis=1).mean()
    if not np.isfinite(shift) or shift > _MAX_SHIFT * size:
        return face, predicted, False
    anchors = _border_anchors(size)
    map_x, map_y = tps_map(np.vstack([target, anchors]), np.vstack([fitted, anchors]), size)
    warped = cv2.remap(face, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = None
    if predicted is not None:
        mask = cv2.remap(predicted, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return warped, mask, True
