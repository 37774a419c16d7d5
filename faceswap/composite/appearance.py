"""Appearance from B's real faces: pick, warp, relight and blend B's own footage onto A's face.

The autoencoder draws B blurred; B's real frames are sharp. Following Dale et al. ("Video Face
Replacement", 2011) and Video Textures (Schoedl et al., 2000):

1. ``FaceIndex``: every face of B's face set with its landmarks and an expression/pose descriptor
   (``describe``): pose (yaw, pitch), mouth and eye opening, brow height, each normalised by that
   face's own size so two people with different proportions compare.
2. ``choose_sequence``: a Viterbi pass over the whole of A's sequence picks one face of B per frame,
   with a cost for jumping elsewhere in B's footage; staying on a face or playing B's next frame is
   free, so a still face never flickers and a talking one follows A's mouth.
3. ``stable_transform``: one similarity on the stable points (eye corners, nose) moves B's face onto
   A's head: B keeps B's proportions (identity lives in the inner-face geometry) and follows A's pose.
4. ``expression_targets`` + ``bend``: the hybrid's step. A's mouth and eyelid shape, rescaled into B's
   proportions, is where a thin-plate spline moves B's lips and lids, so A's expression is kept where
   B's footage lacks it.
5. ``compose`` (light): low spatial frequencies of each L*a*b* channel from A's face, high ones from B's
   (frequency separation): A's scene light, B's detail.
6. ``face_mask``: the inner face with the brows, inside both faces' landmark hulls, so neither B's
   hair nor background nor A's jaw line come through.

Everything here is pure numpy/OpenCV on frame-pixel landmarks (68-point iBUG layout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from faceswap.face.geometry import umeyama

# Points that move little with expression: nose bridge and base, the eyes' corners.
STABLE_POINTS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])
INNER_LIPS = slice(60, 68)
OUTER_LIPS = slice(48, 60)
# Descriptor layout and weights: what a swap must follow most is head pose and the mouth.
FEATURES = ("yaw", "pitch", "mouth_open", "mouth_width", "eye_open_l", "eye_open_r", "brow_l", "brow_r")
# Per-feature scale (a typical full range) and weight; identity-dependent ones are centred per person.
_SCALE = np.array([0.25, 0.25, 0.35, 0.25, 0.25, 0.25, 0.15, 0.15])
_WEIGHT = np.array([3.0, 2.0, 3.0, 1.0, 1.5, 1.5, 0.7, 0.7])
# Yaw is absolute (a frontal face on a turned head looks flat); pitch, width and brows carry each
# person's proportions, so they are compared around the person's own median.
_CENTRED = np.array([False, True, False, True, False, False, True, True])


def face_up(lm: np.ndarray) -> np.ndarray:
    """Unit vector from the eyes towards the forehead (at right angles to the eye corners' line)."""
    axis = (lm[45] - lm[36]) / max(float(np.linalg.norm(lm[45] - lm[36])), 1e-6)
    return np.array([axis[1], -axis[0]])


def _dist(lm: np.ndarray, i: int, j: int) -> np.ndarray:
    return np.linalg.norm(lm[..., i, :] - lm[..., j, :], axis=-1)


def interocular(lm: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (the face's own size)."""
    left = lm[..., 36:42, :].mean(axis=-2)
    right = lm[..., 42:48, :].mean(axis=-2)
    return np.maximum(np.linalg.norm(right - left, axis=-1), 1e-6)


def expression_series(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth opening, eye opening and brow height per face (N x 68 x 2), each over the face's size.

    Shared with the quality report's expression correlation, so what the converter follows is what
    the report measures."""
    lm = np.asarray(landmarks, np.float64)
    iod = interocular(lm)
    mouth_open = (_dist(lm, 61, 67) + _dist(lm, 62, 66) + _dist(lm, 63, 65)) / 3.0 / iod
    eye_l = (_dist(lm, 37, 41) + _dist(lm, 38, 40)) / 2.0 / np.maximum(_dist(lm, 36, 39), 1e-6)
    eye_r = (_dist(lm, 43, 47) + _dist(lm, 44, 46)) / 2.0 / np.maximum(_dist(lm, 42, 45), 1e-6)
    # Brow height: brows above their eye, along the face's own vertical (perpendicular to the eyes).
    eye_axis = lm[..., 45, :] - lm[..., 36, :]
    eye_axis /= np.maximum(np.linalg.norm(eye_axis, axis=-1, keepdims=True), 1e-6)
    up = np.stack([eye_axis[..., 1], -eye_axis[..., 0]], axis=-1)
    brow_l = ((lm[..., 17:22, :].mean(-2) - lm[..., 36:42, :].mean(-2)) * up).sum(-1) / iod
    brow_r = ((lm[..., 22:27, :].mean(-2) - lm[..., 42:48, :].mean(-2)) * up).sum(-1) / iod
    return {
        "mouth_open": mouth_open,
        "eye_open_l": eye_l,
        "eye_open_r": eye_r,
        "brow_l": brow_l,
        "brow_r": brow_r,
    }


def describe(landmarks: np.ndarray) -> np.ndarray:
    """N x len(FEATURES) raw descriptor (before per-person centring and weighting)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    iod = interocular(lm)
    ex = expression_series(lm)
    eye_mid = (lm[:, 36:42].mean(1) + lm[:, 42:48].mean(1)) / 2
    mouth_mid = lm[:, 48:68].mean(1)
    eye_axis = lm[:, 45] - lm[:, 36]
    eye_axis /= np.maximum(np.linalg.norm(eye_axis, axis=1, keepdims=True), 1e-6)
    down = np.stack([-eye_axis[:, 1], eye_axis[:, 0]], axis=1)
    # Yaw: where the nose tip sits between the jaw's sides; pitch: nose tip between eyes and mouth.
    jaw_mid = (lm[:, 0] + lm[:, 16]) / 2
    jaw_w = np.maximum(np.linalg.norm(lm[:, 16] - lm[:, 0], axis=1), 1e-6)
    yaw = ((lm[:, 30] - jaw_mid) * eye_axis).sum(1) / jaw_w * 2
    span = np.maximum(((mouth_mid - eye_mid) * down).sum(1), 1e-6)
    pitch = ((lm[:, 30] - eye_mid) * down).sum(1) / span
    mouth_w = _dist(lm, 48, 54) / iod
    return np.stack(
        [
            yaw,
            pitch,
            ex["mouth_open"],
            mouth_w,
            ex["eye_open_l"],
            ex["eye_open_r"],
            ex["brow_l"],
            ex["brow_r"],
        ],
        axis=1,
    )


def normalise(desc: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """Centres the identity-dependent features on the person's median, scales and weights all."""
    desc = np.asarray(desc, np.float64)
    if centre is None:
        centre = np.median(desc, axis=0) if len(desc) else np.zeros(desc.shape[1])
    out = desc - np.where(_CENTRED, centre, 0.0)
    return out / _SCALE * _WEIGHT


@dataclass
class FaceIndex:
    """B's real faces: where each one is (frame key, face slot), its landmarks and descriptor."""

    keys: list[str]
    frames: np.ndarray  # source frame number of each face (consecutive numbers = B's own motion)
    landmarks: np.ndarray  # N x 68 x 2, frame pixels
    descriptors: np.ndarray  # N x F, normalised
    # Extra cost of choosing each face (a motion-blurred frame: soft, and its landmarks are off).
    penalty: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def build(
        cls,
        keys: Sequence[str],
        frames: Sequence[int],
        landmarks: np.ndarray,
        sharpness: Sequence[float] | None = None,
    ) -> FaceIndex:
        lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
        return cls(
            list(keys), np.asarray(frames, np.int64), lm, normalise(describe(lm)), blur_penalty(sharpness)
        )


def blur_penalty(sharpness: Sequence[float] | None, weight: float = 6.0) -> np.ndarray | None:
    """Cost per face from its sharpness against the set's median: 0 at 80 % of it or more, rising
    to ``weight`` for a fully blurred face (weight ~ three switches: picked only when nothing else
    has the expression)."""
    if sharpness is None or len(sharpness) == 0:
        return None
    s = np.asarray(sharpness, np.float64)
    ref = 0.8 * float(np.median(s))
    if ref <= 0:
        return np.zeros(len(s))
    return weight * np.clip((ref - s) / ref, 0.0, 1.0)


def face_sharpness(image: np.ndarray, landmarks: np.ndarray) -> float:
    """Laplacian variance inside the face's landmark hull, at a common scale (eye distance 64 px)."""
    lm = np.asarray(landmarks, np.float64)
    k = 64.0 / float(interocular(lm))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    mask = np.zeros(small.shape, np.uint8)
    _hull(mask, lm * k)
    lap = cv2.Laplacian(small, cv2.CV_64F)
    inside = mask > 0
    return float(lap[inside].var()) if inside.any() else 0.0


def choose_sequence(
    queries: np.ndarray,
    index: FaceIndex,
    switch_cost: float = 2.0,
    cuts: Sequence[int] = (),
    extra: np.ndarray | None = None,
) -> np.ndarray:
    """Viterbi over the whole sequence: one face of B per query (T x F normalised descriptors).

    Unary cost: squared descriptor distance. Transition: staying on the same face of B or moving to
    B's next frame is free; any other jump costs ``switch_cost``. At a cut (a frame index where A's
    shot changes) jumps are free. Returns T indices into the index."""
    t_count, n = len(queries), len(index)
    if t_count == 0:
        return np.zeros(0, np.int64)
    unary = ((queries[:, None, :] - index.descriptors[None, :, :]) ** 2).sum(-1)  # T x N
    if index.penalty is not None:
        unary = unary + index.penalty[None, :]
    if extra is not None:  # T x N, e.g. a cost for leaving the face chosen for the whole face
        unary = unary + extra
    # successor[j]: the face of B's next frame, when B's footage continues from j.
    order = np.argsort(index.frames, kind="stable")
    successor = np.full(n, -1, np.int64)
    for a, b in pairwise(order):
        if index.frames[b] == index.frames[a] + 1:
            successor[a] = b
    cut_set = set(cuts)
    cost = unary[0].copy()
    back = np.zeros((t_count, n), np.int64)
    for t in range(1, t_count):
        jump = 0.0 if t in cut_set else switch_cost
        best_prev = int(np.argmin(cost))
        # Default: jump from the best previous state.
        new = np.full(n, cost[best_prev] + jump)
        arg = np.full(n, best_prev, np.int64)
        stay = cost < new  # staying on j is free
        new[stay], arg[stay] = cost[stay], np.nonzero(stay)[0]
        has_next = successor >= 0
        src = np.nonzero(has_next)[0]
        dst = successor[src]
        better = cost[src] < new[dst]
        new[dst[better]], arg[dst[better]] = cost[src[better]], src[better]
        cost = new + unary[t]
        back[t] = arg
    path = np.zeros(t_count, np.int64)
    path[-1] = int(np.argmin(cost))
    for t in range(t_count - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def crossfade_weights(path: np.ndarray, frames: int = 4) -> list[list[tuple[int, float]]]:
    """Per step, the faces of B to render with their weights: a short cross-fade after each switch
    (the outgoing face keeps being shown, fading out over ``frames`` steps)."""
    out: list[list[tuple[int, float]]] = []
    fading: list[tuple[int, int]] = []  # (face, steps since the switch)
    for t, j in enumerate(path):
        if t and path[t - 1] != j:
            fading.append((int(path[t - 1]), 0))
        fading = [(f, s + 1) for f, s in fading if s + 1 <= frames and f != j]
        weights = [(f, 1.0 - s / (frames + 1)) for f, s in fading]
        # The newest switch wins: blend the newest outgoing face only, then the current one.
        if weights:
            f, w_old = weights[-1]
            out.append([(f, w_old), (int(j), 1.0 - w_old)])
        else:
            out.append([(int(j), 1.0)])
    return out


def stable_transform(src_lm: np.ndarray, dst_lm: np.ndarray) -> np.ndarray:
    """2x3 similarity taking B's stable points (src) onto A's (dst): pose followed, proportions kept."""
    t = umeyama(np.asarray(src_lm)[STABLE_POINTS], np.asarray(dst_lm)[STABLE_POINTS], True)
    return t[:2]


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def _unit_normal(p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    axis = axis / max(length, 1e-6)
    return axis, np.array([-axis[1], axis[0]]), length  # normal points down in image coordinates


def expression_targets(b_lm: np.ndarray, a_lm: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """B's landmarks (already on A's head) with A's mouth and eye opening, in B's own shape.

    Only the openings move: each inner-lip pair's and eyelid pair's gap, measured over the mouth's
    or eye's own width, is set to A's; B's lips and lids keep their shape (lip fullness and eye
    shape are B's identity), and the mouth's width follows A's smile half-way."""
    target = np.asarray(b_lm, np.float64).copy()
    a_lm = np.asarray(a_lm, np.float64)
    b = target.copy()
    # Mouth: along the normal of the corner line.
    _, nb, wb = _unit_normal(b[48], b[54])
    _, na, wa = _unit_normal(a_lm[48], a_lm[54])
    if wa > 1e-6 and wb > 1e-6:
        gaps = []
        for up, low in ((61, 67), (62, 66), (63, 65)):
            ga = float((a_lm[low] - a_lm[up]) @ na) / wa
            gb = float((b[low] - b[up]) @ nb) / wb
            gaps.append((ga - gb) * wb * strength)
        d = float(np.mean(gaps))
        # The jaw drops the lower lip more than the upper lip rises.
        for i in (61, 62, 63, 49, 50, 51, 52, 53):
            target[i] -= nb * d * 0.3
        for i in (67, 66, 65, 59, 58, 57, 56, 55):
            target[i] += nb * d * 0.7
        for i in (60, 64):
            target[i] += nb * d * 0.2
        ax_b = (b[54] - b[48]) / wb
        iod_a, iod_b = float(interocular(a_lm)), float(interocular(b))
        widen = (wa / iod_a - wb / iod_b) * iod_b * 0.5 * strength
        target[[48, 60]] -= ax_b * widen / 2
        target[[54, 64]] += ax_b * widen / 2
    # Eyes: each lid pair's gap over that eye's width.
    for c0, c1, ups, lows in ((36, 39, (37, 38), (41, 40)), (42, 45, (43, 44), (47, 46))):
        _, nb, wb = _unit_normal(b[c0], b[c1])
        _, na, wa = _unit_normal(a_lm[c0], a_lm[c1])
        if wa < 1e-6 or wb < 1e-6:
            continue
        for up, low in zip(ups, lows, strict=True):
            ga = float((a_lm[low] - a_lm[up]) @ na) / wa
            gb = float((b[low] - b[up]) @ nb) / wb
            d = (ga - gb) * wb * strength
            target[up] -= nb * d * 0.75
            target[low] += nb * d * 0.25
    return target


def pose_targets(b_lm: np.ndarray, a_lm: np.ndarray, strength: float = 0.7) -> np.ndarray:
    """B's landmarks (on A's head) with the face outline and the nose moved towards A's pose.

    A similarity cannot turn a frontal face: where A looks aside, the jaw line and the nose tip of A
    say how far. The outline moves towards A's, the nose moves as a whole (B's nose shape stays)."""
    target = np.asarray(b_lm, np.float64).copy()
    a_lm = np.asarray(a_lm, np.float64)
    # The lower jaw follows fully; the outline's top (by the temples, where B's hair starts) less.
    follow = np.full(17, strength)
    follow[[0, 16]], follow[[1, 15]], follow[[2, 14]] = 0.0, strength * 0.33, strength * 0.66
    target[0:17] += follow[:, None] * (a_lm[0:17] - target[0:17])
    target[30:36] += strength * (a_lm[30] - target[30])
    target[28:30] += strength * 0.5 * (a_lm[28:30] - target[28:30])
    return target


def _border_points(w: int, h: int, per_side: int = 6) -> np.ndarray:
    xs = np.linspace(0, w - 1, per_side)
    ys = np.linspace(0, h - 1, per_side)
    pts = (
        [(x, 0) for x in xs]
        + [(x, h - 1) for x in xs]
        + [(0, y) for y in ys[1:-1]]
        + [(w - 1, y) for y in ys[1:-1]]
    )
    return np.asarray(pts, np.float64)


def tps_step(iod: float) -> int:
    """Grid step of the spline for a face of ``iod`` px between the eyes: 1/12 of it, 4..16 px
    (a spline that smooth has nothing finer; coarser on a small face bends the lips visibly)."""
    return int(np.clip(round(iod / 12.0), 4, 16))


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dx = a[:, None, 0] - b[None, :, 0]
    dy = a[:, None, 1] - b[None, :, 1]
    return dx * dx + dy * dy


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    return r2 * np.log(np.maximum(r2, r2.dtype.type(1e-12)))  # 0 at r = 0 (r2 * log(tiny) -> 0)


class TpsBasis:
    """A thin-plate spline's system for one set of destination points (A's target landmarks plus
    the ROI border, where it is pinned), solved once per face and shared by every layer placed
    onto them. Evaluated on a grid of about ``step`` px and enlarged bilinearly: the grid sits
    where ``cv2.resize`` reads its source pixels, so one resize interpolates it exactly."""

    def __init__(self, dst: np.ndarray, w: int, h: int, step: int = 4) -> None:
        dst = np.concatenate([np.asarray(dst, np.float64), _border_points(w, h)])
        n = len(dst)
        self.n, self.w, self.h = n, w, h
        self.scale = scale = float(max(w, h))
        d = dst / scale
        k = _tps_kernel(_sqdist(d, d)) + 1e-5 * np.eye(n)
        p = np.hstack([np.ones((n, 1)), d])
        a = np.zeros((n + 3, n + 3))
        a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
        self.inverse = np.linalg.inv(a)
        gw, gh = max(2, math.ceil(w / step)), max(2, math.ceil(h / step))
        # Grid cell g of a resize from gw to w holds the value at x = (g + 0.5) * w / gw - 0.5.
        gx = (np.arange(gw) + 0.5) * (w / gw) - 0.5
        gy = (np.arange(gh) + 0.5) * (h / gh) - 0.5
        self.grid_shape = (gh, gw)
        grid = (np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2) / scale).astype(np.float32)
        kernel = _tps_kernel(_sqdist(grid, d.astype(np.float32)))
        self.basis = np.hstack([kernel, np.ones((len(grid), 1), np.float32), grid])

    def sample_map(self, src: np.ndarray) -> np.ndarray:
        """For every ROI pixel (dst space), where to sample in src space (h x w x 2 float32);
        ``src``: where the destination points (without the border) are in the source."""
        rhs = np.zeros((self.n + 3, 2))
        rhs[: self.n] = (
            np.concatenate([np.asarray(src, np.float64), _border_points(self.w, self.h)]) / self.scale
        )
        coef = (self.inverse @ rhs * self.scale).astype(np.float32)
        coarse = (self.basis @ coef).reshape(*self.grid_shape, 2)
        return cv2.resize(coarse, (self.w, self.h), interpolation=cv2.INTER_LINEAR)


def bend(
    image: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, basis: TpsBasis | None = None
) -> np.ndarray:
    """Thin-plate spline warp of ``image`` (the ROI) so src_pts land on dst_pts; fixed at the border."""
    h, w = image.shape[:2]
    if not (np.linalg.norm(np.asarray(dst_pts) - src_pts, axis=1) > 0.3).any():
        return image
    basis = basis or TpsBasis(dst_pts, w, h)
    return cv2.remap(image, basis.sample_map(src_pts), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# Mask geometry, chosen on the sheets and the identity/realism figures (docs/converter.md):
# A's whole jaw line, B's a little inside (B's hair hangs by the cheeks), and a forehead band
# above the brows so they are never cut.
A_INSET = 1.0
B_INSET = 0.95
FOREHEAD = 0.3
B_FOREHEAD_EXTRA = 0.3  # B's hull reaches this much higher than A's (see face_mask)


def face_mask(
    a_lm: np.ndarray, b_lm: np.ndarray, shape: tuple[int, int], feather: float = 0.08
) -> np.ndarray:
    """Soft alpha (float32 0..1) over the inner face and brows, inside both faces' hulls.

    The hull runs through the brows' upper edge raised by a little forehead, and through the jaw
    pulled slightly inwards (B's hair hangs by the cheeks, A's jaw line must not show twice)."""
    h, w = shape
    masks = []
    # B's hull reaches higher than A's: the top edge is then always A's forehead band, so A's own
    # brows are covered even where B's sit lower (no double brows in the feathered edge).
    hulls = (
        (np.asarray(a_lm, np.float64), A_INSET, FOREHEAD),
        (np.asarray(b_lm, np.float64), B_INSET, FOREHEAD + B_FOREHEAD_EXTRA),
    )
    for lm, inset, forehead in hulls:
        iod = float(interocular(lm))
        centre = lm[27:36].mean(0)
        pts = lm.copy()
        pts[17:27] += face_up(lm) * forehead * iod  # above the brows, so they are not cut
        pts[0:17] = centre + (pts[0:17] - centre) * inset  # inside the jaw line and cheeks
        m = np.zeros((h, w), np.uint8)
        hull = cv2.convexHull(np.round(pts[:27]).astype(np.int32))
        cv2.fillConvexPoly(m, hull, 255)
        masks.append(m)
    both = cv2.bitwise_and(masks[0], masks[1])
    iod = float(interocular(np.asarray(a_lm, np.float64)))
    radius = max(1, round(feather * iod))
    both = cv2.erode(both, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    sigma = max(0.5, radius * 0.7)
    return np.clip(cv2.GaussianBlur(both.astype(np.float32) / 255.0, (0, 0), sigma), 0.0, 1.0)


def _masked_lowpass(
    lab: np.ndarray, weight: np.ndarray, sigma: float, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Normalised Gaussian blur of ``lab`` over ``weight``, returned at ``size`` (w, h; None: at
    the reduced scale it was computed at). Wide blurs run on a reduced copy (the
    result has only low frequencies anyway): a sigma of 100 px costs what a sigma of 4 px does."""
    h, w = weight.shape
    f = max(1.0, sigma / 4.0)
    stack = np.concatenate([lab * weight[..., None], weight[..., None]], axis=2).astype(np.float32)
    if f > 1.5:
        small = (max(2, round(w / f)), max(2, round(h / f)))
        stack = cv2.resize(stack, small, interpolation=cv2.INTER_AREA)
        stack = cv2.GaussianBlur(stack, (0, 0), sigma * small[0] / w)
    else:
        stack = cv2.GaussianBlur(stack, (0, 0), sigma)
    low = stack[..., :-1] / np.maximum(stack[..., -1:], 1e-4)
    if size is not None and low.shape[1::-1] != size:
        low = cv2.resize(low, size, interpolation=cv2.INTER_LINEAR)
    return low


# The ROI compose works in (roi_box margin): it holds the mask with its feather and the light's
# support; the spline is pinned at its border. 0.35 and 0.15 give the same face to a grey level
# on average (measured on the bundled clips) at 1.0 and 0.6 of the cost.
COMPOSE_MARGIN = 0.2


def roi_box(
    lm: np.ndarray, width: int, height: int, margin: float = COMPOSE_MARGIN
) -> tuple[int, int, int, int]:
    """Frame box around a face's landmarks with a margin (share of the landmark box size)."""
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (
        max(0, math.floor(x0 - mx)),
        max(0, math.floor(y0 - my * 1.3)),
        min(width, math.ceil(x1 + mx)),
        min(height, math.ceil(y1 + my)),
    )


def _hull(mask: np.ndarray, pts: np.ndarray, value: int = 255) -> None:
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), value)


_RING = np.stack([np.cos(a := np.linspace(0, 2 * np.pi, 16, endpoint=False)), np.sin(a)], 1)


def _grown_hull(mask: np.ndarray, pts: np.ndarray, radius: float) -> None:
    """Fills the hull of ``pts`` dilated by a disc of ``radius``: for a convex hull that is the hull
    of the points each moved around a circle, so no morphology pass is needed."""
    grown = (np.asarray(pts, np.float64)[:, None, :] + _RING[None] * radius).reshape(-1, 2)
    _hull(mask, grown)


# x the eye distance: how far a brow may reach above its landmarks (0.1 cut thick ones in half)
BROW_HEIGHT = 0.2
EYE_EXTRA = 0.05  # x the eye distance: the eye's hull grows this much more than the others


def feature_mask(lm: np.ndarray, shape: tuple[int, int], grow: float = 0.06) -> np.ndarray:
    """0/255 mask of the brows, eyes, nose and mouth (each hull grown by ``grow`` x the eye distance).

    Each brow is a thick line that stops short of its outer end, where hair at the temple would
    otherwise pass for brow."""
    lm = np.asarray(lm, np.float64)
    iod = float(interocular(lm))
    r = max(1.0, grow * iod)
    up = face_up(lm) * BROW_HEIGHT * iod
    m = np.zeros(shape, np.uint8)
    for brow, eye in ((lm[17:22].copy(), lm[36:40]), (lm[26:21:-1].copy(), lm[45:41:-1])):
        # From the outer end inwards; the outer quarter is left to the skin test (temple hair).
        brow[0] += 0.25 * (brow[-1] - brow[0])
        # dlib's brow points run along a thick brow's lower half: the hull reaches above them.
        _grown_hull(m, np.concatenate([brow, brow + up, eye]), r)  # the brow down to its eye
    for part in (slice(36, 42), slice(42, 48)):
        # Lashes, liner and the lid's crease lie just outside the eye's points.
        _grown_hull(m, lm[part], r + EYE_EXTRA * iod)
    for part in (slice(27, 36), slice(48, 60)):
        _grown_hull(m, lm[part], r)
    return m


LOCAL_LIGHT = 0.3  # x the eye distance: the blur the skin's local light is taken over
DARK_TOLERANCE = 0.2  # share below that local light at which a pixel starts to stop being skin


def skin_likeness(image: np.ndarray, lm: np.ndarray, region: np.ndarray) -> np.ndarray:
    """0..1 per pixel, not smoothed: how much like the face's own cheek skin it is (hair,
    background -> 0), features included. What the light estimates weigh by; ``skin_weight``
    makes the mask's version of it."""
    lm = np.asarray(lm, np.float64)
    h, w = image.shape[:2]
    lab = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_BGR2LAB).astype(np.float32)
    cheeks = np.zeros((h, w), np.uint8)
    _hull(cheeks, lm[[1, 2, 3, 31, 29]])
    _hull(cheeks, lm[[15, 14, 13, 35, 29]])
    _hull(cheeks, lm[[27, 28, 29, 30]] + np.array([[-2, 0], [2, 0], [-2, 0], [2, 0]]))
    cheeks &= (region > 0).astype(np.uint8) * 255
    sample = lab[cheeks > 0]
    if len(sample) < 20:
        return np.ones((h, w), np.float32)  # no cheek to learn from: nothing is refused
    centre = np.median(sample, axis=0)
    spread = np.maximum(np.median(np.abs(sample - centre), axis=0) * 1.4826, (6.0, 3.0, 3.0))
    planes = cv2.split(lab)  # contiguous planes: fast
    d2 = np.zeros((h, w), np.float32)
    for plane, c, sd in zip(planes[1:], centre[1:], spread[1:], strict=True):
        d2 += ((plane - np.float32(c)) * np.float32(1.0 / (3.0 * sd))) ** 2
    # Lightness against the skin's own light nearby, not the cheeks' spread: a side-lit face's
    # cheeks spread so far that hair (L* ~20 by skin at ~70) passed at a weight of 0.3, a ghost
    # of B's strands on A's temple. Shading is smooth and follows that local light; hair is far
    # darker than it. Brighter than the cheeks (shine) is judged by the cheeks' spread.
    light = planes[0]
    skin_like = np.exp(-0.5 * np.maximum(d2 - 1.0, 0.0)) * (region > 0)
    sigma = LOCAL_LIGHT * float(interocular(lm))
    for _ in range(2):  # the second pass takes the light without the hair the first one found
        local = _masked_lowpass(light[..., None], skin_like, sigma, (w, h)).reshape(h, w)
        local = np.maximum(local, np.float32(centre[0] * 0.5))
        darker = np.maximum(local - light, 0.0) / (np.float32(DARK_TOLERANCE) * local)
        skin_like = skin_like * np.exp(-0.5 * np.maximum(darker**2 - 1.0, 0.0))
    brighter = np.maximum(light - np.float32(centre[0]), 0.0) * np.float32(1.0 / (3.0 * spread[0]))
    d2 += darker**2 + brighter**2
    return np.exp(-0.5 * np.maximum(d2 - 1.0, 0.0))


def skin_weight(
    image: np.ndarray, lm: np.ndarray, region: np.ndarray, likeness: np.ndarray | None = None
) -> np.ndarray:
    """0..1 per pixel, smooth: where the mask shows B (hair, background -> 0).

    Skin statistics come from the cheeks and the nose bridge; the brows, eyes, nose and mouth are
    kept whatever their colour (they are the face), so only the outer ring is tested.
    ``likeness``: ``skin_likeness`` of the same image, when already made."""
    lm = np.asarray(lm, np.float64)
    h, w = image.shape[:2]
    weight = skin_likeness(image, lm, region) if likeness is None else likeness.copy()
    iod = float(interocular(lm))
    weight[feature_mask(lm, (h, w)) > 0] = 1.0
    # Pulled back from hair before the blur, so the soft edge ends on skin: blurred as it was, the
    # edge's outer half lay on B's hair and left a dark fringe (a hook of hair at a brow's end).
    sigma = max(1.0, 0.03 * iod)
    r = max(1, round(2 * sigma))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    weight = cv2.erode(weight.astype(np.float32), disc)
    return cv2.GaussianBlur(weight, (0, 0), sigma)


# -- per-region choice ---------------------------------------------------------------------------
#: Which descriptor features each region's choice looks at (weights multiply the normalised ones).
#: "face" decides pose and the whole face; "mouth" and "eyes" may come from other frames of B
#: (B's footage rarely has every mouth shape in every pose: parts are chosen on their own).
REGION_WEIGHTS: dict[str, np.ndarray] = {
    "face": np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    "mouth": np.array([0.4, 0.4, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
    "eyes": np.array([0.4, 0.4, 0.0, 0.0, 2.0, 2.0, 1.0, 1.0]),
}
REGIONS = tuple(REGION_WEIGHTS)
# Landmarks that outline each part (for its mask and its own similarity fit).
_PART_POINTS = {
    "mouth": np.r_[48:68],
    "eyes": np.r_[17:27, 36:48],
}
_PART_ANCHORS = {  # stable points a part is placed by
    "mouth": np.array([31, 32, 33, 34, 35, 48, 54]),
    "eyes": np.array([27, 28, 36, 39, 42, 45]),
}

Sources = dict[str, list[tuple[int, float]]]


# What a part (mouth, eyes) pays for coming from another face of B than the whole face's.
PART_COST = 1.0


def plan_sources(
    queries: np.ndarray,
    index: FaceIndex,
    switch_cost: float = 2.0,
    crossfade: int = 4,
    cuts: Sequence[int] = (),
    part_cost: float = PART_COST,
) -> list[Sources]:
    """For each of A's faces (T x F normalised descriptors), the faces of B per region with weights.

    The whole face is chosen first; a part (mouth, eyes) pays ``part_cost`` for coming from another
    face of B than the whole face's, so it leaves it only when that face lacks A's expression (two
    faces mixed at a part's soft edge can show a ghost brow or lid)."""
    per_region = {}
    face_path = None
    for region, weights in REGION_WEIGHTS.items():
        sub = FaceIndex(index.keys, index.frames, index.landmarks, index.descriptors * weights, index.penalty)
        extra = None
        if face_path is not None and part_cost > 0:
            extra = np.full((len(queries), len(index)), part_cost)
            extra[np.arange(len(queries)), face_path] = 0.0
        path = choose_sequence(queries * weights, sub, switch_cost=switch_cost, cuts=cuts, extra=extra)
        if region == "face":
            face_path = path
        per_region[region] = crossfade_weights(path, crossfade)
    return [{r: per_region[r][t] for r in REGIONS} for t in range(len(queries))]


# -- composing one face --------------------------------------------------------------------------
@dataclass
class Composed:
    face: np.ndarray  # uint8 BGR, ROI-sized
    alpha: np.ndarray  # float32 0..1, ROI-sized


# L*a*b* through OpenCV's 8-bit tables, ~10x faster than its float path on a 720p face: L* in
# steps of 0.4, a* and b* of 1 (what one 8-bit BGR step changes); the arithmetic between is float.
_LAB8_SCALE = np.array([100.0 / 255.0, 1.0, 1.0], np.float32)
_LAB8_SHIFT = np.array([0.0, -128.0, -128.0], np.float32)


# (cv2.transform and cv2.convertScaleAbs: numpy broadcasting over a last axis of 3 is ~10x slower.)
_LAB8_IN = np.hstack([np.diag(_LAB8_SCALE), _LAB8_SHIFT[:, None]]).astype(np.float32)
_LAB8_OUT = np.hstack([np.diag(1 / _LAB8_SCALE), -(_LAB8_SHIFT / _LAB8_SCALE)[:, None]]).astype(np.float32)


def warm_up() -> None:
    """OpenCV builds its 8-bit L*a*b* tables on first use (~90 ms): a live stream calls this before
    its first frame so that frame is not late."""
    lab = cv2.cvtColor(np.zeros((1, 1, 3), np.uint8), cv2.COLOR_BGR2LAB)
    cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def _to_u8(image: np.ndarray) -> np.ndarray:
    """Rounded and saturated to uint8 (negative values are clipped first: convertScaleAbs takes |x|)."""
    if image.dtype == np.uint8:
        return image
    return cv2.convertScaleAbs(np.maximum(image, 0, dtype=np.float32))


def _to_lab(image: np.ndarray) -> np.ndarray:
    """BGR (uint8, or float 0..255) to float32 L*a*b* (L* 0..100)."""
    return cv2.transform(cv2.cvtColor(_to_u8(image), cv2.COLOR_BGR2LAB).astype(np.float32), _LAB8_IN)


def _part_mask(lm: np.ndarray, part: str, shape: tuple[int, int], grow: float) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    iod = float(interocular(lm))
    r = max(1.0, grow * iod)
    if part == "eyes":
        # The brow to its top (dlib's points run along a thick brow's lower half): the face
        # layer's brow showed above the eyes layer's, a second brow.
        up = face_up(lm) * BROW_HEIGHT * iod
        for brow, eye in ((lm[17:22], lm[36:42]), (lm[22:27], lm[42:48])):
            _grown_hull(m, np.concatenate([brow, brow + up, eye]), r)
    else:
        _grown_hull(m, lm[_PART_POINTS[part]], r)
    return cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), max(1.0, 0.08 * iod))


def _shoulder_lut(top: float, knee: float) -> np.ndarray:
    """A 256-entry tone curve (uint8): unchanged up to ``knee``, then rolled off smoothly towards
    ``top`` (knee + span * tanh((x - knee) / span)), in the table's own units."""
    x = np.arange(256, dtype=np.float64)
    span = max(top - knee, 1e-3)
    y = np.where(x > knee, knee + span * np.tanh((x - knee) / span), x)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _finish_lab(out: np.ndarray, la: np.ndarray, frame_s: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """float32 L*a*b* -> uint8 BGR with two shoulders, as 8-bit tone curves (cv2.LUT):

    - B's highlights rolled off below the brightest skin of A's face (B's shine under B's light
      would otherwise clip where A's face does not): a shoulder above a knee 6 L* lower;
    - then each BGR channel below the source skin's own top (A's warm light on B's detail can
      push the red channel into 255 where A's face stays below it): a knee 15 levels lower.
    ``la``/``frame_s``: A's ROI at the reduced scale (L*a*b* float, BGR uint8); ``skin`` there."""
    lab8 = _to_u8(cv2.transform(out, _LAB8_OUT))
    if not skin.any():
        return cv2.cvtColor(lab8, cv2.COLOR_LAB2BGR)
    top = float(np.percentile(cv2.split(la)[0][skin], 99.5)) + 1.0
    planes = list(cv2.split(lab8))
    planes[0] = cv2.LUT(planes[0], _shoulder_lut(top * 2.55, (top - 6.0) * 2.55))
    face = cv2.cvtColor(cv2.merge(planes), cv2.COLOR_LAB2BGR)
    luts = []
    for channel in cv2.split(frame_s):
        top_c = min(254.0, float(np.percentile(channel[skin], 99.5)) + 2.0)
        luts.append(_shoulder_lut(top_c, top_c - 15.0))
    return cv2.LUT(face, np.stack(luts, -1)[None])


FEATURE_CHROMA = 0.25  # the share of A's colour shift a pixel of B unlike B's skin takes (brows, liner)


def _relit(lab: np.ndarray, low: np.ndarray, shift: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """``lab`` (B's face, L*a*b*) in A's light: its low frequencies (L* of them, ``low``) moved by
    ``shift``; ``skin`` (0..1) how much each pixel is like B's skin (``skin_likeness``).

    L* moves by the whole shift; a* and b* by the shift times the pixel's lightness against its
    low (at most 1). Colour under light scales with the light: the additive shift made B's dark
    patches (hair-shaded skin, an under-eye ring) as yellow as A's lit cheek, an olive smudge."""
    # (cv2 on single planes: numpy over a strided last axis is several times slower here.)
    k = cv2.divide(cv2.extractChannel(lab, 0), cv2.max(low, 1.0))
    k = cv2.max(cv2.min(k, 1.0), 0.2)
    # A's colour shift is mostly the two skins' tones (A pale pink, B tan), not the light's:
    # B's brown brows and liner took it whole and came out lilac grey. Features keep B's hue.
    k = cv2.multiply(k, cv2.add(cv2.multiply(skin, 1.0 - FEATURE_CHROMA), FEATURE_CHROMA))
    sl, sa, sb = cv2.split(shift)
    return cv2.add(lab, cv2.merge([sl, cv2.multiply(sa, k), cv2.multiply(sb, k)]))


def place_source(
    image: np.ndarray,
    b_lm: np.ndarray,
    a_lm: np.ndarray,
    target: np.ndarray,
    box: tuple[int, int, int, int],
    part: str = "face",
    basis: TpsBasis | None = None,
    window: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """B's frame (or crop) warped into A's ROI ``box`` (or only its ``window``, x0, y0, x1, y1 in
    ROI pixels) so B's landmarks land on ``target``:
    one similarity on stable points (the part's own anchors for mouth/eyes), then a spline
    (``basis``: the spline's system for ``target``, shared by every layer of one face). Both are
    folded into one sampling map, so B's pixels are interpolated once (sharper than two passes)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    idx = STABLE_POINTS if part == "face" else _PART_ANCHORS[part]
    anchor = np.asarray(a_lm)[idx] if part == "face" else np.asarray(target)[idx]
    m = umeyama(np.asarray(b_lm)[idx], anchor, True)[:2].copy()
    m[:, 2] -= (x0, y0)
    placed = apply(m, b_lm)
    t_roi = np.asarray(target, np.float64) - (x0, y0)
    wx0, wy0, wx1, wy1 = window or (0, 0, w, h)
    if not (np.linalg.norm(t_roi - placed, axis=1) > 0.3).any():
        m[:, 2] -= (wx0, wy0)
        flags = cv2.INTER_LINEAR
        out = cv2.warpAffine(image, m, (wx1 - wx0, wy1 - wy0), flags=flags, borderMode=cv2.BORDER_REFLECT)
        return out.astype(np.float32)
    basis = basis or TpsBasis(t_roi, w, h, tps_step(float(interocular(t_roi))))
    # Positions in the similarity-warped ROI, then back through the similarity into B's image.
    # (A warpAffine of the window alone from the coarse grid is no faster and less exact.)
    where = basis.sample_map(placed)[wy0:wy1, wx0:wx1]
    maps = cv2.transform(where, cv2.invertAffineTransform(m).astype(np.float32))
    return cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)


def _mask_window(mask: np.ndarray, w: int, h: int) -> tuple[int, int, int, int] | None:
    """Box (ROI pixels, x0, y0, x1, y1) around where a reduced-scale ``mask`` is above 1e-3."""
    ys, xs = np.nonzero(mask > 1e-3)
    if not len(xs):
        return None
    sx, sy = w / mask.shape[1], h / mask.shape[0]
    return (
        max(0, math.floor(xs.min() * sx) - 2),
        max(0, math.floor(ys.min() * sy) - 2),
        min(w, math.ceil((xs.max() + 1) * sx) + 2),
        min(h, math.ceil((ys.max() + 1) * sy) + 2),
    )


# The smooth layers (masks, the skin test, the light) are made at MASK_SCALE of the ROI and
# enlarged: none has detail finer than its feather (~8 % of the eye distance), while B's pixels
# are sampled at full size. A quarter of the pixels for every per-pixel test.
MASK_SCALE = 0.5


def decoded_in_roi(face: np.ndarray, matrix: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The decoder's aligned face (size x size, float32 BGR) warped into the ROI ``box`` of the
    frame, for ``compose(..., decoded=)``; ``matrix``: frame px -> aligned px."""
    x0, y0, x1, y1 = box
    m = np.asarray(matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(
        face, m, (x1 - x0, y1 - y0), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT,
    )  # fmt: skip


def compose(
    frame_roi: np.ndarray,
    a_lm: np.ndarray,
    box: tuple[int, int, int, int],
    sources: Sources,
    images: Sequence[np.ndarray] | dict[int, np.ndarray],
    landmarks: np.ndarray,
    decoded: np.ndarray | None = None,
    light_sigma: float = 1.0,
    pose_follow: float = 0.3,
) -> Composed:
    """One swapped face in A's ROI (frame_roi, uint8 BGR; ``box`` its place in the frame).

    a_lm: A's landmarks (frame px). sources: per region the faces of B with weights (``images[j]``
    is face j's frame or crop and ``landmarks[j]`` its landmarks there). decoded: the autoencoder's
    face already warped into the ROI (hybrid) or None (retrieval). Layers, in L*a*b*:
    light = low frequencies of A; shape = band of the decoder (hybrid) or of B's real face
    (retrieval); detail = high frequencies of B's real face, per region, kept only where that
    region's expression agrees with A's (a blink B never did shows the decoder's lids). The batch
    converter and the live stream both call this."""
    x0, y0 = box[0], box[1]
    h, w = frame_roi.shape[:2]
    a_roi = np.asarray(a_lm, np.float64) - (x0, y0)
    iod = float(interocular(a_roi))
    face_j = max(sources["face"], key=lambda s: s[1])[0]
    b_face = np.asarray(landmarks[face_j], np.float64)
    # Target geometry: B's proportions on A's head, with A's pose outline and A's lips and lids.
    m0 = umeyama(b_face[STABLE_POINTS], np.asarray(a_lm)[STABLE_POINTS], True)[:2]
    target = expression_targets(pose_targets(apply(m0, b_face), a_lm, pose_follow), a_lm)
    t_roi = target - (x0, y0)
    da = describe(a_roi[None])[0]
    basis = TpsBasis(t_roi, w, h, tps_step(iod))

    def layer(region: str, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        acc = None
        for j, wgt in sources[region]:
            placed = place_source(images[j], landmarks[j], a_lm, target, box, region, basis, window)
            if wgt != 1.0:
                placed *= np.float32(wgt)
            acc = placed if acc is None else cv2.add(acc, placed)
        return acc

    # The reduced copies: point (x, y) of the ROI is ((x + .5) * sx - .5, ...) there (cv2.resize).
    ws, hs = max(2, round(w * MASK_SCALE)), max(2, round(h * MASK_SCALE))
    sx, sy = ws / w, hs / h
    small = (hs, ws)
    a_s = (a_roi + 0.5) * (sx, sy) - 0.5
    t_s = (t_roi + 0.5) * (sx, sy) - 0.5
    # Region weights: a part's own source inside its mask, the face's elsewhere. A part is only
    # drawn inside its mask's box (the mouth is a tenth of the ROI).
    composite = layer("face")
    gate = np.ones(small, np.float32)
    for part, feats in (("mouth", [2]), ("eyes", [4, 5])):
        pmask = _part_mask(t_s, part, small, 0.15)
        j = max(sources[part], key=lambda s: s[1])[0]
        if [k for k, _ in sources[part]] != [k for k, _ in sources["face"]]:
            window = _mask_window(pmask, w, h)
            if window is not None:
                wx0, wy0, wx1, wy1 = window
                full = cv2.resize(pmask, (w, h), interpolation=cv2.INTER_LINEAR)[wy0:wy1, wx0:wx1]
                inside = composite[wy0:wy1, wx0:wx1]
                composite[wy0:wy1, wx0:wx1] = cv2.blendLinear(layer(part, window), inside, full, 1.0 - full)
        db = describe(np.asarray(landmarks[j])[None])[0]
        mismatch = float(np.abs(da[feats] - db[feats]).mean())
        tolerance = 0.06 if part == "mouth" else 0.08
        g = float(np.clip(1.5 - mismatch / tolerance, 0.0, 1.0))
        gate = np.minimum(gate, 1 - pmask * (1 - g))
    alpha = face_mask(a_s, t_s, small)
    region = (alpha > 0.01).astype(np.float32)
    sigma_l = light_sigma * iod * sx
    # A's frame point-sampled (its brightest skin is measured on it, so nothing averaged away).
    frame_s = cv2.resize(frame_roi, (ws, hs), interpolation=cv2.INTER_NEAREST)
    la = _to_lab(frame_s)
    lr = _to_lab(composite)
    # Light is estimated on skin only: A's own brows, eyes and mouth must not shade B's face (a
    # ghost brow above B's), nor B's darken the light taken from A.
    # Hair is not skin either: B's dark hair by the cheek, counted in B's light, made the skin
    # beside it come out pale (a light band along the mask's edge); A's the same the other way.
    composite_s = cv2.resize(composite, (ws, hs), interpolation=cv2.INTER_AREA)
    like_b = skin_likeness(composite_s, t_s, region)  # B's own pixels, before A's light
    skin_a = region * (1.0 - feature_mask(a_s, small, 0.12).astype(np.float32) / 255.0)
    skin_a *= skin_likeness(frame_s, a_s, region)
    skin_b = region * (1.0 - feature_mask(t_s, small, 0.12).astype(np.float32) / 255.0) * like_b
    lr_s = cv2.resize(lr, (ws, hs), interpolation=cv2.INTER_AREA)
    # A's low frequencies for B's: one difference of two low-passes at their reduced scale,
    # enlarged once.
    low_b = _masked_lowpass(lr_s, skin_b, sigma_l)
    source = lr
    if decoded is not None:
        # Hybrid: B's real face everywhere its expression agrees with A's; where it cannot (a
        # blink, a mouth shape B's footage lacks) the decoder's B, which has A's expression.
        ld = _to_lab(bend(decoded.astype(np.float32), a_roi, t_roi, basis))
        ld_s = cv2.resize(ld, (ws, hs), interpolation=cv2.INTER_AREA)
        low_dec = _masked_lowpass(ld_s, skin_b, sigma_l)
        g_low = cv2.resize(gate, low_b.shape[1::-1], interpolation=cv2.INTER_AREA)
        low_b = cv2.blendLinear(low_b, low_dec, g_low, 1.0 - g_low)
        g = cv2.resize(gate, (w, h), interpolation=cv2.INTER_LINEAR)
        source = cv2.blendLinear(lr, ld, g, 1.0 - g)
    shift = _masked_lowpass(la, skin_a, sigma_l) - low_b
    size = (w, h)
    low_l = cv2.resize(cv2.extractChannel(low_b, 0), size, interpolation=cv2.INTER_LINEAR)
    like_full = cv2.resize(like_b, size, interpolation=cv2.INTER_LINEAR)
    out = _relit(source, low_l, cv2.resize(shift, size, interpolation=cv2.INTER_LINEAR), like_full)
    face = _finish_lab(out, la, frame_s, skin_a > 0.5)
    # Hair and background are told from skin on B's own pixels, before A's light changes them.
    alpha = alpha * skin_weight(composite_s, t_s, region, like_b)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    return Composed(face, np.clip(alpha, 0.0, 1.0).astype(np.float32))
