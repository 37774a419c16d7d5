"""Training augmentation: the classic deepfakes random warp, flips, colour jitter, and batching.

The warp: a random rotation / scale / shift (+ flip) moves the whole face; then a 5x5 grid over the
image is jittered and the image remapped through it (the *warped input*); the *target* is the same
image under the best affine fit of that grid (Umeyama), so it is aligned with the input's face but
without the non-linear distortion. The model thus learns to produce a clean face from a distorted
one, which is what makes A -> B swaps work.

``random_transform`` / ``random_warp`` are the seed's per-image OpenCV form (kept as the reference);
training uses ``warp_batch``, the same warp batched with ``grid_sample`` on the training device.
Each sample carries 5 channels (BGR + face hull + eyes/mouth) so masks move with the pixels.
Batches are drawn from a generator seeded with (seed, step): the same step always sees the same
batch, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceswap.face.geometry import umeyama
from services.trainer.data import FaceSet


@dataclass(frozen=True)
class AugmentConfig:
    rotation: float = 10.0  # degrees
    zoom: float = 0.05
    shift: float = 0.05
    flip: float = 0.4
    warp_scale: float = 5.0 / 160.0  # grid jitter, as a share of the image (5 px over 160 in the seed)
    brightness: float = 0.08
    contrast: float = 0.1
    color: float = 0.05


def random_transform(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random rotation, zoom, shift and horizontal flip of an (S, S, C) image."""
    size = image.shape[0]
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    scale = rng.uniform(1 - cfg.zoom, 1 + cfg.zoom)
    tx, ty = rng.uniform(-cfg.shift, cfg.shift, 2) * size
    mat = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    mat[:, 2] += (tx, ty)
    out = cv2.warpAffine(image, mat, (size, size), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < cfg.flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def random_warp(
    image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(warped input, aligned target) of an (S, S, C) image: grid warp vs its best affine fit."""
    size = image.shape[0]
    grid = np.linspace(0, size, 5)
    mapx = np.broadcast_to(grid, (5, 5)) + rng.normal(scale=cfg.warp_scale * size, size=(5, 5))
    mapy = np.broadcast_to(grid, (5, 5)).T + rng.normal(scale=cfg.warp_scale * size, size=(5, 5))
    # Interpolate the 5x5 grid to a dense map; the 1/8 margin makes the grid's corners land on the
    # image corners (as the seed's 80 -> [8:72] crop does at 64 px).
    big, pad = size + size // 4, size // 8
    interp_x = cv2.resize(mapx, (big, big))[pad : pad + size, pad : pad + size].astype(np.float32)
    interp_y = cv2.resize(mapy, (big, big))[pad : pad + size, pad : pad + size].astype(np.float32)
    warped = cv2.remap(image, interp_x, interp_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    src = np.stack([mapx.ravel(), mapy.ravel()], axis=-1)
    dst = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    mat = umeyama(src, dst)[:2]  # the 2x3 affine part of the 3x3 similarity
    target = cv2.warpAffine(image, mat, (size, size), borderMode=cv2.BORDER_REPLICATE)
    if warped.ndim == 2:
        warped, target = warped[..., None], target[..., None]
    return warped, target


def colour_jitter(images: list[np.ndarray], rng: np.random.Generator, cfg: AugmentConfig) -> None:
    """Same random brightness / contrast / per-channel gain on each float BGR image (in place)."""
    gain = 1 + rng.uniform(-cfg.color, cfg.color, 3).astype(np.float32)
    contrast = 1 + rng.uniform(-cfg.contrast, cfg.contrast)
    bright = rng.uniform(-cfg.brightness, cfg.brightness)
    for img in images:
        bgr = img[..., :3]
        mean = bgr.mean()
        bgr[...] = np.clip((bgr - mean) * contrast + mean + bright, 0, 1) * gain
        np.clip(bgr, 0, 1, out=bgr)


@dataclass
class Batch:
    warped: torch.Tensor  # (B, 3, S, S) float in [0, 1]
    target: torch.Tensor  # (B, 3, S, S)
    mask: torch.Tensor  # (B, 1, S, S) face hull of the target
    region: torch.Tensor  # (B, 1, S, S) eyes + mouth of the target


class FaceBank:
    """A face set's pixels + masks as one (N, 5, S, S) uint8 tensor on the training device.

    Batches are gathered and augmented there in a few batched tensor ops (grid_sample), so the GPU
    never waits for a CPU data pipeline and a CPU run spends little time outside the model.
    """

    def __init__(self, faces: FaceSet, device: torch.device | str = "cpu") -> None:
        stack = np.concatenate([faces.images, faces.masks[..., None], faces.regions[..., None]], axis=-1)
        self.data = torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous().to(device)
        self.device = self.data.device

    def __len__(self) -> int:
        return int(self.data.shape[0])


def step_generator(seed: int, step: int, identity: int) -> torch.Generator:
    """The random source of one step's batch: the same (seed, step) always gives the same batch."""
    gen = torch.Generator()
    gen.manual_seed((int(seed) * 1_000_003 + int(step) * 2 + identity) % (2**63 - 1))
    return gen


def _uniform(gen: torch.Generator, shape: tuple[int, ...], limit: float) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) * 2 - 1) * limit


def warp_batch(
    x: torch.Tensor, gen: torch.Generator, cfg: AugmentConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(warped input, aligned target) of a float (N, C, S, S) batch, the batched form of
    random_transform + random_warp: one grid_sample each, in normalised coordinates."""
    n, _, s, _ = x.shape
    dev = x.device
    angle = _uniform(gen, (n,), math.radians(cfg.rotation))
    scale = 1 + _uniform(gen, (n,), cfg.zoom)
    shift = _uniform(gen, (n, 2), cfg.shift * 2)
    flip = torch.rand(n, generator=gen) < cfg.flip
    lin = torch.linspace(-1, 1, 5)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    base = torch.stack([gx, gy], -1)  # (5, 5, 2): x, y
    src = base + torch.randn((n, 5, 5, 2), generator=gen) * (cfg.warp_scale * 2)
    # Best similarity fit of the jittered grid (complex least squares = Umeyama in 2-D).
    zb = torch.complex(base[..., 0], base[..., 1]).reshape(-1)
    zs = torch.complex(src[..., 0], src[..., 1]).reshape(n, -1)
    db, ds = zb - zb.mean(), zs - zs.mean(1, keepdim=True)
    a = (db.conj() * ds).sum(1) / (db.abs() ** 2).sum()
    b = zs.mean(1) - a * zb.mean()
    px = torch.linspace(-1, 1, s)
    qy, qx = torch.meshgrid(px, px, indexing="ij")
    zq = torch.complex(qx, qy)
    zt = a[:, None, None] * zq + b[:, None, None]
    fit = torch.stack([zt.real, zt.imag], -1)  # (n, s, s, 2)
    dense = F.interpolate(src.permute(0, 3, 1, 2), size=(s, s), mode="bilinear", align_corners=True)
    dense = dense.permute(0, 2, 3, 1)

    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    sign = torch.where(flip, -1.0, 1.0)[:, None, None]
    shift_x, shift_y = shift[:, 0, None, None], shift[:, 1, None, None]
    inv_scale = (1 / scale)[:, None, None]

    def to_source(c: torch.Tensor) -> torch.Tensor:
        # Output coords -> source coords: flip, then the inverse of the random similarity.
        cx, cy = c[..., 0] * sign - shift_x, c[..., 1] - shift_y
        return torch.stack([(cx * cos + cy * sin) * inv_scale, (-cx * sin + cy * cos) * inv_scale], -1)

    grids = torch.cat([to_source(dense), to_source(fit)]).to(dev, x.dtype)
    out = F.grid_sample(torch.cat([x, x]), grids, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:n], out[n:]


def sample_batch(
    bank: FaceBank, batch_size: int, gen: torch.Generator, cfg: AugmentConfig, augment: bool = True
) -> Batch:
    """A random batch of one face set: warped input, target, and the target's masks."""
    idx = torch.randint(0, len(bank), (batch_size,), generator=gen).to(bank.device)
    x = bank.data[idx].float().div_(255)
    if not augment:
        return Batch(x[:, :3], x[:, :3].clone(), x[:, 3:4], x[:, 4:5])
    warped, target = warp_batch(x, gen, cfg)
    dev = x.device
    gain = (1 + _uniform(gen, (batch_size, 3, 1, 1), cfg.color)).to(dev)
    contrast = (1 + _uniform(gen, (batch_size, 1, 1, 1), cfg.contrast)).to(dev)
    bright = _uniform(gen, (batch_size, 1, 1, 1), cfg.brightness).to(dev)
    mean = target[:, :3].mean((1, 2, 3), keepdim=True)

    def jitter(rgb: torch.Tensor) -> torch.Tensor:
        # The same colour change on input and target: the model learns colour, it need not guess it.
        return (((rgb - mean) * contrast + mean + bright).clamp(0, 1) * gain).clamp(0, 1)

    return Batch(
        warped=jitter(warped[:, :3]).contiguous(),
        target=jitter(target[:, :3]).contiguous(),
        mask=target[:, 3:4].contiguous(),
        region=target[:, 4:5].contiguous(),
    )
