"""Temporal smoothing of landmarks across frames, so the swapped face does not jitter.

Faces are linked into tracks over consecutive frames (nearest box centre, similar size). A track
ends, and the filter resets, when the face is lost (a frame without it), at a scene cut (the face
jumps or changes size abruptly) or where the caller marks a cut. Landmarks are filtered in units of
the face size, so the same settings work for small and large faces.

Filters (registry ``SMOOTHERS``):
- ``none``
- ``oneeuro``: One Euro filter (Casiez et al. 2012), causal, adaptive: strong smoothing when the
  face is still, little lag when it moves.
- ``savgol``: Savitzky-Golay (local quadratic fit over a centred window): no lag on smooth motion;
  needs the neighbouring frames, which the converter has (alignments are known in advance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from faceswap.face.geometry import umeyama

SmoothFn = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class Track:
    """One face followed over consecutive frames: frame indices and the face's slot in each."""

    frames: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)


def _face_scale(landmarks: np.ndarray) -> float:
    span = landmarks.max(axis=0) - landmarks.min(axis=0)
    return float(max(np.hypot(*span), 1.0))


def build_tracks(
    faces: Iterable[tuple[int, list[np.ndarray]]],
    cuts: Iterable[int] = (),
    max_jump: float = 0.25,
    max_scale_change: float = 1.3,
) -> list[Track]:
    """Links faces of consecutive frames. ``faces``: (frame index, landmarks of each face) for
    every frame in order, frames without a face included (they end the tracks). ``cuts``: frame indices that start a new scene. ``max_jump``: largest mean
    landmark move between frames, in face sizes, that still counts as the same face."""
    cut_set = set(cuts)
    done: list[Track] = []
    open_tracks: list[Track] = []
    for index, face_list in faces:
        candidates = [] if index in cut_set else open_tracks
        used: set[int] = set()
        next_open: list[Track] = []
        for slot, lm in enumerate(face_list):
            scale = _face_scale(lm)
            best, best_cost = None, math.inf
            for ti, track in enumerate(candidates):
                if ti in used:
                    continue
                prev = track.landmarks[-1]
                ratio = scale / _face_scale(prev)
                cost = float(np.linalg.norm(lm - prev, axis=1).mean()) / scale
                if (
                    cost <= max_jump
                    and 1 / max_scale_change <= ratio <= max_scale_change
                    and cost < best_cost
                ):
                    best, best_cost = ti, cost
            if best is None:
                track = Track()
            else:
                used.add(best)
                track = candidates[best]
            track.frames.append(index)
            track.slots.append(slot)
            track.landmarks.append(np.asarray(lm, np.float64))
            next_open.append(track)
        # Tracks not continued in this frame have lost their face: they are finished.
        done.extend(t for t in open_tracks if all(t is not n for n in next_open))
        open_tracks = next_open
    done.extend(open_tracks)
    return sorted(done, key=lambda t: (t.frames[0], t.slots[0]))


def no_smoothing(series: np.ndarray, fps: float) -> np.ndarray:
    return series


class OneEuro:
    """Vectorised One Euro filter over a (T, D) series sampled at ``fps``."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.3, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, series: np.ndarray, fps: float) -> np.ndarray:
        dt = 1.0 / fps
        out = np.empty_like(series)
        x_prev = out[0] = series[0]
        dx_prev = np.zeros_like(series[0])
        a_d = self._alpha(self.d_cutoff, dt)
        for t in range(1, len(series)):
            dx = (series[t] - x_prev) / dt
            dx_hat = a_d * dx + (1 - a_d) * dx_prev
            cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
            a = self._alpha(cutoff, dt)
            x_prev = out[t] = a * series[t] + (1 - a) * x_prev
            dx_prev = dx_hat
        return out


def savgol_weights(window: int, order: int) -> np.ndarray:
    """(window, window) matrix: row i gives the weights that evaluate, at sample i of a window,
    the least-squares polynomial of the given order (rows other than the centre serve the edges)."""
    x = np.arange(window, dtype=np.float64) - (window - 1) / 2
    vander = np.vander(x, order + 1, increasing=True)
    return vander @ np.linalg.pinv(vander)


class SavitzkyGolay:
    def __init__(self, window: int = 9, order: int = 2) -> None:
        self.window, self.order = window, order

    def __call__(self, series: np.ndarray, fps: float) -> np.ndarray:
        n = len(series)
        window = min(self.window, n if n % 2 else n - 1)
        if window <= self.order + 1:
            return series
        weights = savgol_weights(window, self.order)
        half = window // 2
        out = np.empty_like(series)
        flat = series.reshape(n, -1)
        res = out.reshape(n, -1)
        # Interior: centre row; edges: the first/last window's fit evaluated off-centre.
        for t in range(n):
            lo = min(max(t - half, 0), n - window)
            res[t] = weights[t - lo] @ flat[lo : lo + window]
        return out


SMOOTHERS: dict[str, SmoothFn] = {
    "none": no_smoothing,
    "oneeuro": OneEuro(min_cutoff=3.0, beta=10.0),
    "savgol": SavitzkyGolay(),
}


def smooth_tracks(tracks: list[Track], kind: str, fps: float = 30.0) -> dict[tuple[int, int], np.ndarray]:
    """Smoothed landmarks for every (frame index, face slot) on the tracks."""
    fn = SMOOTHERS[kind]
    out: dict[tuple[int, int], np.ndarray] = {}
    for track in tracks:
        series = np.stack(track.landmarks)  # (T, 68, 2)
        if kind != "none" and len(series) > 1:
            # Filter in face-size units around the track's mean position: scale-free settings.
            scale = float(np.mean([_face_scale(lm) for lm in series]))
            origin = series.reshape(-1, 2).mean(axis=0)
            norm = (series - origin) / scale
            series = fn(norm.reshape(len(norm), -1), fps).reshape(norm.shape) * scale + origin
        for frame, slot, lm in zip(track.frames, track.slots, series, strict=True):
            out[(frame, slot)] = lm
    return out


def smoothed_matrix(matrix: np.ndarray, landmarks: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """Moves a frame -> face alignment matrix along with its landmarks' smoothing.

    S maps the raw landmarks onto the smoothed ones; the aligned face of the smoothed landmarks is
    then ``matrix @ S^-1``. With no smoothing S is the identity and the matrix is unchanged, so
    this needs no knowledge of the detector's landmark template.
    """
    if np.array_equal(landmarks, smoothed):
        return np.asarray(matrix, np.float64)
    s = umeyama(landmarks, smoothed)
    m = np.vstack([np.asarray(matrix, np.float64), [0, 0, 1]])
    return (m @ np.linalg.inv(s))[:2]


def jitter_energy(series: np.ndarray) -> float:
    """Mean squared second difference over time: what a viewer sees as jitter."""
    if len(series) < 3:
        return 0.0
    return float((np.diff(series, n=2, axis=0) ** 2).mean())
