"""Causal choices for a stream (the live swap): which of B's faces to show, and smoothed landmarks.

The batch path sees the whole sequence (``appearance.plan_sources``: Viterbi per region, then a
cross-fade). A live stream sees one frame at a time, so:

- ``CausalChooser``: per region, the nearest face of B by weighted descriptor distance, with
  hysteresis: the current face stays until another beats it by ``margin`` (squared distance) on
  ``hold`` frames in a row, then the switch cross-fades over ``crossfade`` frames (the outgoing face
  fades out, as ``appearance.crossfade_weights`` does). A still face never flickers; a head turn
  is followed within ``hold`` frames, the mouth and eyes on the first frame (``part_hold``), since
  speech moves faster than a hold allows.
- ``RunningCentre``: A's descriptors are centred on A's own median (``appearance.normalise``); live,
  the median is over the frames seen so far (a window of the last ``window``).
- ``OneEuroStream``: the One Euro filter of ``faceswap.composite.smooth`` one sample at a time, on
  landmarks in face-size units, reset when the track is lost. No look-ahead, so no added latency.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from faceswap.composite import appearance as ap


@dataclass
class _RegionState:
    current: int = -1
    challenger: int = -1
    streak: int = 0
    fading: list[tuple[int, int]] = field(default_factory=list)  # (face, steps since the switch)


class CausalChooser:
    """Per region of the face (``appearance.REGION_WEIGHTS``), one face of B per frame."""

    def __init__(
        self,
        index: ap.FaceIndex,
        margin: float = 1.0,
        hold: int = 3,
        crossfade: int = 4,
        part_cost: float = ap.PART_COST,
        part_hold: int = 1,
    ) -> None:
        self.margin, self.hold, self.crossfade = float(margin), max(1, int(hold)), max(0, int(crossfade))
        # The mouth and eyes follow A at once (their switch still cross-fades): a mouth held for
        # ``hold`` frames lags speech, showing B's teeth for a closing mouth or a frown for a smile.
        # The whole face keeps its hold, so the head's look never flickers.
        self.part_hold = max(1, int(part_hold))
        # A part (mouth, eyes) pays this for coming from another face of B than the whole face's,
        # as in the whole-sequence choice: it leaves the face's pick only when that face lacks A's
        # expression (two faces meeting at a part's soft edge can show a ghost brow or lid).
        self.part_cost = float(part_cost)
        self.weighted = {r: index.descriptors * w for r, w in ap.REGION_WEIGHTS.items()}
        # Blurred faces of B cost extra, as in the whole-sequence choice.
        self.penalty = (
            np.zeros(len(index)) if index.penalty is None else np.asarray(index.penalty, np.float64)
        )
        self.weights = dict(ap.REGION_WEIGHTS)
        self.state = {r: _RegionState() for r in ap.REGION_WEIGHTS}
        self.switches = 0

    def reset(self) -> None:
        """A new scene / a lost face: the next frame picks afresh, without a cross-fade."""
        self.state = {r: _RegionState() for r in self.weighted}

    def distances(self, region: str, query: np.ndarray) -> np.ndarray:
        diff = self.weighted[region] - query * self.weights[region]
        return (diff * diff).sum(1) + self.penalty

    def choose(self, query: np.ndarray) -> ap.Sources:
        """The sources for one frame (query: A's normalised descriptor)."""
        out = {"face": self._step("face", query)}
        face = self.state["face"].current
        for region in self.weighted:
            if region != "face":
                out[region] = self._step(region, query, face)
        return out

    def _step(self, region: str, query: np.ndarray, face: int = -1) -> list[tuple[int, float]]:
        st = self.state[region]
        dist = self.distances(region, query)
        if face >= 0 and self.part_cost > 0:
            dist = dist + self.part_cost
            dist[face] -= self.part_cost
        best = int(np.argmin(dist))
        if st.current < 0:
            st.current, st.challenger, st.streak, st.fading = best, -1, 0, []
        elif best != st.current and dist[best] + self.margin < dist[st.current]:
            st.streak = st.streak + 1 if best == st.challenger or st.challenger < 0 else 1
            st.challenger = best
            if st.streak >= (self.hold if region == "face" else self.part_hold):
                if self.crossfade:
                    st.fading.append((st.current, 0))
                st.current, st.challenger, st.streak = best, -1, 0
                self.switches += 1
        else:
            st.challenger, st.streak = -1, 0
        st.fading = [(f, s + 1) for f, s in st.fading if s + 1 <= self.crossfade and f != st.current]
        if st.fading:
            face, steps = st.fading[-1]
            w_old = 1.0 - steps / (self.crossfade + 1)
            return [(face, w_old), (st.current, 1.0 - w_old)]
        return [(st.current, 1.0)]


class RunningCentre:
    """The median of A's raw descriptors over the last ``window`` frames (causal centring)."""

    def __init__(self, window: int = 90) -> None:
        self.history: deque[np.ndarray] = deque(maxlen=window)

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        self.history.append(np.asarray(raw, np.float64))
        centre = np.median(np.stack(self.history), axis=0)
        return ap.normalise(raw[None], centre)[0]


class OneEuroStream:
    """One Euro filter (Casiez et al. 2012) over 68 x 2 landmarks, one frame at a time.

    Filters in face-size units around the face's first position, so the same settings suit any
    face size (as ``faceswap.composite.smooth.smooth_tracks`` does for whole tracks)."""

    def __init__(self, min_cutoff: float = 3.0, beta: float = 10.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t = 0.0
        self.scale = 1.0
        self.origin = np.zeros(2)

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        """Smoothed landmarks for the frame at time ``t`` (seconds, increasing)."""
        lm = np.asarray(landmarks, np.float64)
        if self.x is None:
            span = lm.max(0) - lm.min(0)
            self.scale = float(max(np.hypot(*span), 1.0))
            self.origin = lm.mean(0)
            self.x = (lm - self.origin) / self.scale
            self.dx = np.zeros_like(self.x)
            self.t = t
            return lm
        dt = max(t - self.t, 1e-3)
        self.t = t
        x = (lm - self.origin) / self.scale
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx), dt)
        self.x = a * x + (1 - a) * self.x
        return self.x * self.scale + self.origin
