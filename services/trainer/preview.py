"""Preview grid written with each checkpoint: columns A, A->A, A->B, B, B->B, B->A."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from faceswap.model.network import FaceSwapModel

COLUMNS = ("A", "A->A", "A->B", "B", "B->B", "B->A")


def _to_image(t: torch.Tensor) -> np.ndarray:
    return (t.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def preview_grid(
    model: FaceSwapModel, faces_a: np.ndarray, faces_b: np.ndarray, device: torch.device
) -> np.ndarray:
    """A BGR uint8 image: one row per sample pair, 6 columns (see COLUMNS)."""
    was_training = model.training
    model.eval()
    try:
        a = torch.from_numpy(faces_a).permute(0, 3, 1, 2).float().div(255).to(device)
        b = torch.from_numpy(faces_b).permute(0, 3, 1, 2).float().div(255).to(device)
        cols = [a, model(a, "a")[0], model(a, "b")[0], b, model(b, "b")[0], model(b, "a")[0]]
        imgs = [_to_image(c) for c in cols]
    finally:
        model.train(was_training)
    rows = [np.hstack([col[i] for col in imgs]) for i in range(len(imgs[0]))]
    return np.vstack(rows)


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding of the preview failed")
    return buf.tobytes()
