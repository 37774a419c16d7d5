"""Reconstruction losses: L1 (the seed's), SSIM, and a weight map from the landmark masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("l1", "l1_ssim")


def _gaussian_window(
    size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: Tensor, y: Tensor, window: int = 7, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM of images in [0, 1] (Wang et al. 2004, Gaussian window), same size as x."""
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c, x.device, x.dtype)
    pad = window // 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def weight_map(mask: Tensor, region: Tensor, face_weight: float, eye_mouth_weight: float) -> Tensor:
    """1 everywhere, + face_weight inside the face hull, + eye_mouth_weight on eyes and mouth."""
    return 1.0 + face_weight * mask + eye_mouth_weight * region


def reconstruction_loss(pred: Tensor, target: Tensor, weights: Tensor | None, kind: str = "l1") -> Tensor:
    """Weighted L1 (normalised by the mean weight so the scale stays comparable), + DSSIM."""
    err = (pred - target).abs()
    loss = (err * weights).mean() / weights.mean() if weights is not None else err.mean()
    if kind == "l1_ssim":
        dssim = (1 - ssim_map(pred, target)) / 2
        loss = loss + ((dssim * weights).mean() / weights.mean() if weights is not None else dssim.mean())
    return loss
