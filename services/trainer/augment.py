"""Training augmentation: the classic deepfakes random warp, flips, colour jitter, and batching.

The warp: a random rotation / scale / shift (+ flip) moves the whole face; then a 5x5 grid over the
image is jittered and the image remapped through it (the *warped input*); the *target* is the same
image under the best affine fit of that grid (Umeyama), so it is aligned with the input's face but
without the non-linear distortion. The model thus learns to produce a clean face from a distorted
one, which is what makes A -> B swaps work.

Each sample carries 5 channels (BGR + face hull + eyes/mouth) so masks move with the pixels.
Batches are drawn from a generator seeded with (seed, step): the same step always sees the same
batch, whichever thread built it, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

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


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform src -> dst (Umeyama 1991), as a 2x3 matrix."""
    n, dim = src.shape
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_d, dst_d = src - src_mean, dst - dst_mean
    cov = dst_d.T @ src_d / n
    d = np.ones(dim)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    u, s, vt = np.linalg.svd(cov)
    rot = u @ np.diag(d) @ vt
    var = src_d.var(0).sum()
    scale = (s * d).sum() / var if var > 0 else 1.0
    mat = np.zeros((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = dst_mean - scale * rot @ src_mean
    return mat


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
    mat = umeyama(src, dst)
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


def make_batch(
    faces: FaceSet, batch_size: int, rng: np.random.Generator, cfg: AugmentConfig, augment: bool = True
) -> Batch:
    idx = rng.integers(0, len(faces), batch_size)
    warped, target = [], []
    for i in idx:
        stack = np.dstack([faces.images[i], faces.masks[i], faces.regions[i]])
        if augment:
            stack = random_transform(stack, rng, cfg)
            w, t = random_warp(stack, rng, cfg)
        else:
            w = t = stack
        w = w.astype(np.float32) / 255.0
        t = t.astype(np.float32) / 255.0
        if augment:
            colour_jitter([w, t], rng, cfg)
        warped.append(w)
        target.append(t)
    w_arr = torch.from_numpy(np.stack(warped)).permute(0, 3, 1, 2)
    t_arr = torch.from_numpy(np.stack(target)).permute(0, 3, 1, 2)
    return Batch(
        warped=w_arr[:, :3].contiguous(),
        target=t_arr[:, :3].contiguous(),
        mask=t_arr[:, 3:4].contiguous(),
        region=t_arr[:, 4:5].contiguous(),
    )


def step_rng(seed: int, step: int, identity: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), identity])


class Prefetcher:
    """Builds (step, batch A, batch B) ahead of the training loop in background threads.

    OpenCV and NumPy release the GIL, so a few threads keep a GPU fed; on a 2-core CPU one thread
    overlaps augmentation with the model's work. Batches come out in step order.
    """

    def __init__(
        self,
        face_a: FaceSet,
        face_b: FaceSet,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        workers: int = 1,
        depth: int = 4,
        cfg: AugmentConfig | None = None,
        pin_memory: bool = False,
    ) -> None:
        self.faces = (face_a, face_b)
        self.batch_size = batch_size
        self.seed = seed
        self.cfg = cfg or AugmentConfig()
        self.pin = pin_memory
        self.end = end_step
        self._next = start_step
        self._lock = threading.Lock()
        self._ready: dict[int, tuple[Batch, Batch]] = {}
        self._cond = threading.Condition()
        self._slots = threading.Semaphore(max(depth, workers))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"trainer-data-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    def _build(self, step: int) -> tuple[Batch, Batch]:
        out = []
        for ident, faces in enumerate(self.faces):
            batch = make_batch(faces, self.batch_size, step_rng(self.seed, step, ident), self.cfg)
            if self.pin:
                batch = Batch(
                    *(t.pin_memory() for t in (batch.warped, batch.target, batch.mask, batch.region))
                )
            out.append(batch)
        return out[0], out[1]

    def _work(self) -> None:
        cv2.setNumThreads(1)
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            with self._lock:
                step = self._next
                self._next += 1
            if step >= self.end:
                self._slots.release()
                return
            try:
                item = self._build(step)
            except BaseException as exc:
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._ready[step] = item
                self._cond.notify_all()

    def get(self, step: int, timeout: float = 120.0) -> tuple[Batch, Batch]:
        with self._cond:
            ok = self._cond.wait_for(lambda: step in self._ready or self._error is not None, timeout)
            if self._error is not None:
                raise self._error
            if not ok:
                raise TimeoutError(f"no training batch for step {step} within {timeout}s")
            item = self._ready.pop(step)
        self._slots.release()
        return item

    def __iter__(self) -> Iterator[tuple[Batch, Batch]]:
        step = self._next
        while step < self.end:
            yield self.get(step)
            step += 1

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
