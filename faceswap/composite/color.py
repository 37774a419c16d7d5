"""Colour correction of the swapped face towards the frame's face (skin tone, lighting).

Every function takes the swapped face (float32 BGR, 0..255), the original frame region (uint8 BGR)
and a boolean region to measure on (the inner mask), and returns the corrected float32 image.
Statistics are measured inside the face only, then the correction is applied to the whole region.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

ColorFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def no_correction(swapped: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    return swapped


def mean_difference(swapped: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The seed's adjustment: shift each BGR channel by the difference of the means."""
    diff = target[region].mean(axis=0) - swapped[region].mean(axis=0)
    return np.clip(swapped + diff.astype(np.float32), 0, 255)


def _to_lab(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((bgr.astype(np.float32) * (1.0 / 255.0)), cv2.COLOR_BGR2LAB)


def reinhard(swapped: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Reinhard et al. 2001: match mean and standard deviation per channel in L*a*b*."""
    src = _to_lab(np.clip(swapped, 0, 255))
    dst = _to_lab(target)
    s, d = src[region], dst[region]
    s_mean, s_std = s.mean(axis=0), s.std(axis=0)
    d_mean, d_std = d.mean(axis=0), d.std(axis=0)
    # Bound the gain: a flat (e.g. untrained) face must not be stretched into noise.
    gain = np.clip(d_std / np.maximum(s_std, 1e-3), 0.25, 4.0)
    out = (src - s_mean) * gain + d_mean
    bgr = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2BGR)
    return np.clip(bgr * 255.0, 0, 255)


def histogram(swapped: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching: map the swapped face's CDF onto the frame face's CDF
    (slope-limited, then re-centred on the frame face's mean)."""
    src = np.clip(np.rint(swapped), 0, 255).astype(np.uint8)
    out = np.empty(swapped.shape, np.float32)
    levels = np.arange(256, dtype=np.float64)
    for c in range(3):
        s_hist = np.bincount(src[..., c][region], minlength=256).astype(np.float64)
        d_hist = np.bincount(target[..., c][region], minlength=256).astype(np.float64)
        s_cdf = np.cumsum(s_hist) / max(s_hist.sum(), 1.0)
        d_cdf = np.cumsum(d_hist) / max(d_hist.sum(), 1.0)
        lut = np.interp(s_cdf, d_cdf, levels)
        # Limit the mapping's slope (as reinhard bounds its gain): a narrow source histogram,
        # e.g. a smooth generated face, must not be stretched into banding and noise.
        lut = lut[0] + np.concatenate([[0.0], np.cumsum(np.clip(np.diff(lut), 0.0, 4.0))])
        lut += target[..., c][region].mean() - lut[src[..., c][region]].mean()
        out[..., c] = np.clip(lut, 0, 255).astype(np.float32)[src[..., c]]
    return out


COLORS: dict[str, ColorFn] = {
    "none": no_correction,
    "mean": mean_difference,
    "reinhard": reinhard,
    "histogram": histogram,
}


def correct(kind: str, swapped: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    if kind == "none" or not region.any():
        return swapped
    return COLORS[kind](swapped, target, region)
