"""The appearance method's compose (``faceswap.composite.appearance.compose``, retrieval mode), made
fast enough for a live stream on a CPU.

Same layers, masks and relighting as the batch path; three things cost less:

- the scene-light low-pass (a Gaussian of half the eye distance, ~50 px at 720p) is computed on a
  copy shrunk by ~sigma/4 and enlarged back: a blur that wide has nothing above 1/sigma, so the
  result matches the full-size blur to a fraction of a grey level, at ~1/50 of the cost;
- the thin-plate spline is solved once per frame for all layers, on a grid of 1/12 of the eye
  distance (8 px at 720p; the batch path: 4 px) and enlarged with one ``warpAffine``;
- B's similarity and the spline are folded into one sampling map, so B's crop is resampled once
  (the batch path warps, then bends the warped copy: two interpolations, a little softer);
- the part masks' dilation is done on their hulls (a convex hull grown by a disc is the hull of
  its points moved around a circle). Masks, skin test, targets and defaults are the batch path's
  own functions, called as they are.

``tests/live/test_render.py`` compares this with ``appearance.compose`` on real frames, so a change
in the batch method that this copy misses shows up there.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import cv2
import numpy as np

from faceswap.composite import appearance as ap
from faceswap.face.geometry import umeyama

_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(ap.compose).parameters.items()
    if name in ("light_sigma", "pose_follow")
}
TPS_STEP = 8  # grid step of the spline at ~100 px between the eyes (720p); scaled with the face


def tps_step(iod: float) -> int:
    """Spline grid step for a face of ``iod`` px between the eyes: 1/12 of it, 4..16 px (4 is the
    batch path's step; coarser on small faces bends the lips visibly differently)."""
    return int(np.clip(round(iod / 12.0), 4, 16))


def masked_lowpass(lab: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """``appearance._masked_lowpass`` (normalised Gaussian inside ``weight``), at a reduced scale."""
    factor = int(sigma / 4.0)
    if factor < 2:
        return ap._masked_lowpass(lab, weight, sigma)
    h, w = weight.shape
    size = (max(2, round(w / factor)), max(2, round(h / factor)))
    num = cv2.resize(lab * weight[..., None], size, interpolation=cv2.INTER_AREA)
    den = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    s = sigma * size[0] / w
    num = cv2.GaussianBlur(num, (0, 0), s)
    den = cv2.GaussianBlur(den, (0, 0), s)[..., None]
    low = num / np.maximum(den, 1e-4)
    return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)


class TpsBasis:
    """A thin-plate spline's system for one set of destination points (A's target landmarks plus
    the ROI border), solved once per frame and shared by every layer of B placed onto them."""

    def __init__(self, dst: np.ndarray, w: int, h: int, step: int = TPS_STEP) -> None:
        n = len(dst)
        self.n, self.w, self.h, self.step = n, w, h, step
        self.scale = scale = float(max(w, h))
        d = dst / scale
        k = _kernel(_sqdist(d, d)) + 1e-5 * np.eye(n)
        p = np.hstack([np.ones((n, 1)), d])
        a = np.zeros((n + 3, n + 3))
        a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
        self.inverse = np.linalg.inv(a)
        gx = np.arange(0, w - 1 + step, step, dtype=np.float64)
        gy = np.arange(0, h - 1 + step, step, dtype=np.float64)
        self.grid_shape = (len(gy), len(gx))
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2) / scale
        self.basis = np.hstack([_kernel(_sqdist(grid, d)), np.ones((len(grid), 1)), grid])

    def sample_map(self, src: np.ndarray) -> np.ndarray:
        """For every ROI pixel (dst space), where to sample in src space (h x w x 2 float32)."""
        rhs = np.zeros((self.n + 3, 2))
        rhs[: self.n] = src / self.scale
        coarse = self.basis @ (self.inverse @ rhs) * self.scale
        coarse = coarse.reshape(*self.grid_shape, 2).astype(np.float32)
        # ROI pixel (x, y) <- coarse (x / step, y / step), bilinear, corners aligned.
        up = np.float32([[1.0 / self.step, 0, 0], [0, 1.0 / self.step, 0]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(coarse, up, (self.w, self.h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dx = a[:, None, 0] - b[None, :, 0]
    dy = a[:, None, 1] - b[None, :, 1]
    return dx * dx + dy * dy


def _kernel(r2: np.ndarray) -> np.ndarray:
    return r2 * np.log(np.maximum(r2, 1e-12))  # 0 at r = 0 (r2 * log(1e-12) underflows to -0)


def place_source(
    image: np.ndarray,
    b_lm: np.ndarray,
    a_lm: np.ndarray,
    target: np.ndarray,
    box: tuple[int, int, int, int],
    part: str = "face",
    basis: TpsBasis | None = None,
) -> np.ndarray:
    """``appearance.place_source`` with the similarity and the spline in one sampling map."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    idx = ap.STABLE_POINTS if part == "face" else ap._PART_ANCHORS[part]
    anchor = np.asarray(a_lm)[idx] if part == "face" else target[idx]
    m = umeyama(np.asarray(b_lm)[idx], anchor, True)[:2].copy()
    m[:, 2] -= (x0, y0)
    placed = ap.apply(m, b_lm)
    t_roi = np.asarray(target, np.float64) - (x0, y0)
    if not (np.linalg.norm(t_roi - placed, axis=1) > 0.3).any():
        return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(
            np.float32
        )
    border = ap._border_points(w, h)
    if basis is None:
        basis = TpsBasis(np.concatenate([t_roi, border]), w, h)
    where = basis.sample_map(np.concatenate([placed, border]))
    # where: positions in the similarity-warped ROI; back through the similarity into B's crop.
    maps = cv2.transform(where, cv2.invertAffineTransform(m).astype(np.float32))
    out = cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.astype(np.float32)


def _grown_hull(mask: np.ndarray, pts: np.ndarray, radius: float) -> None:
    """Fills the hull of ``pts`` dilated by a disc of ``radius`` (for a convex hull, dilation by a
    disc is the hull of the points each moved around a circle: no morphology pass needed)."""
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1) * radius
    grown = (np.asarray(pts, np.float64)[:, None, :] + ring[None]).reshape(-1, 2)
    ap._hull(mask, grown)


def part_mask(lm: np.ndarray, part: str, shape: tuple[int, int], grow: float) -> np.ndarray:
    """``appearance._part_mask`` with the dilation done on the hulls."""
    m = np.zeros(shape, np.uint8)
    iod = float(ap.interocular(lm))
    r = max(1, round(grow * iod))
    if part == "eyes":
        for sub in (np.r_[17:22, 36:42], np.r_[22:27, 42:48]):
            _grown_hull(m, lm[sub], r)
    else:
        _grown_hull(m, lm[ap._PART_POINTS[part]], r)
    return cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), max(1.0, 0.08 * iod))


def compose(
    frame_roi: np.ndarray,
    a_lm: np.ndarray,
    box: tuple[int, int, int, int],
    sources: ap.Sources,
    images: Sequence[np.ndarray] | dict[int, np.ndarray],
    landmarks: Sequence[np.ndarray] | np.ndarray,
    light_sigma: float | None = None,
    pose_follow: float | None = None,
) -> ap.Composed:
    """``appearance.compose`` with ``decoded=None`` (B's real faces only); same arguments and the
    same defaults (read from its signature, so a retuned default is followed)."""
    light_sigma = _DEFAULTS["light_sigma"] if light_sigma is None else light_sigma
    pose_follow = _DEFAULTS["pose_follow"] if pose_follow is None else pose_follow
    x0, y0 = box[0], box[1]
    shape = frame_roi.shape[:2]
    a_roi = np.asarray(a_lm, np.float64) - (x0, y0)
    iod = float(ap.interocular(a_roi))
    face_j = max(sources["face"], key=lambda s: s[1])[0]
    b_face = np.asarray(landmarks[face_j], np.float64)
    m0 = umeyama(b_face[ap.STABLE_POINTS], np.asarray(a_lm)[ap.STABLE_POINTS], True)[:2]
    target = ap.expression_targets(ap.pose_targets(ap.apply(m0, b_face), a_lm, pose_follow), a_lm)
    t_roi = target - (x0, y0)

    border = ap._border_points(shape[1], shape[0])
    basis = TpsBasis(np.concatenate([t_roi, border]), shape[1], shape[0], tps_step(iod))

    def layer(region: str) -> np.ndarray:
        acc = None
        for j, wgt in sources[region]:
            placed = place_source(images[j], landmarks[j], a_lm, target, box, region, basis)
            acc = placed * wgt if acc is None else acc + placed * wgt
        return acc

    real = {"face": layer("face")}
    for part in ("mouth", "eyes"):
        if [j for j, _ in sources[part]] != [j for j, _ in sources["face"]]:
            real[part] = layer(part)
    composite = real["face"]
    # (The batch path's expression gate only weighs the decoder's layer: none here.)
    for part in ("mouth", "eyes"):
        if part in real:
            pmask = part_mask(t_roi, part, shape, 0.15)[..., None]
            composite = composite * (1 - pmask) + real[part] * pmask
    alpha = ap.face_mask(a_roi, t_roi, shape)
    region = (alpha > 0.01).astype(np.float32)
    sigma_l = light_sigma * iod
    la = ap._to_lab(frame_roi)
    lr = ap._to_lab(composite)
    # Light on skin only and B's highlights rolled off below A's, as the batch path does.
    skin_a = region * (1.0 - ap.feature_mask(a_roi, shape, 0.12).astype(np.float32) / 255.0)
    skin_b = region * (1.0 - ap.feature_mask(t_roi, shape, 0.12).astype(np.float32) / 255.0)
    out = masked_lowpass(la, skin_a, sigma_l) + lr - masked_lowpass(lr, skin_b, sigma_l)
    out[..., 0] = ap._highlight_shoulder(out[..., 0], la[..., 0], skin_a > 0.5)
    face = ap._channel_shoulder(ap._from_lab(out), frame_roi, skin_a > 0.5)
    # Hair and background told from skin on B's own pixels (as the batch path does).
    alpha = alpha * ap.skin_weight(composite, t_roi, region)
    return ap.Composed(face.astype(np.float32), alpha.astype(np.float32))
