"""The trained autoencoder on aligned crops: uint8 BGR squares in, B's decoded faces out.

One home for the tensor layout both the batch converter and the live stream use (BGR uint8 HWC ->
float CHW in 0..1 -> the decoder of ``identity`` -> float32 HWC 0..255 and the mask channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from faceswap.errors import InvalidArgument
from faceswap.model.checkpoint import model_from_checkpoint, resolve_checkpoint_ref
from faceswap.storage import ObjectStore


@torch.inference_mode()
def decode_faces(
    model: torch.nn.Module, crops: np.ndarray, identity: str = "b", device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray | None]:
    """``crops``: N x size x size x 3 uint8 BGR aligned faces. Returns the decoded faces (N x size x
    size x 3 float32, 0..255) and the predicted masks (N x size x size float32) or None."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    image, mask = model(x, identity)
    faces = image.mul(255.0).permute(0, 2, 3, 1).contiguous().float().cpu().numpy()
    return faces, (mask[:, 0].float().cpu().numpy() if mask is not None else None)


@dataclass
class TrainedModel:
    """A loaded model for inference and the aligned square it was trained on."""

    net: Any
    size: int
    coverage: float
    device: str = "cpu"


def load_trained_model(
    store: ObjectStore | None, ref: str, device: str = "", field: str = "model"
) -> TrainedModel:
    """A checkpoint named ``builtin:NAME``, by an object key or a model prefix, ready for inference
    (on ``device``; default: the GPU when there is one). A bad ``ref`` is reported against ``field``."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not ref.startswith("builtin:") and store is None:
        raise InvalidArgument(f"{ref!r}: only builtin:NAME models without an object store", field=field)
    ckpt = resolve_checkpoint_ref(store, ref, field)  # type: ignore[arg-type]
    net = model_from_checkpoint(ckpt, device)
    net.eval()
    size, coverage = int(ckpt.config.get("size", 64)), float(ckpt.config.get("coverage", 0.75))
    return TrainedModel(net, size, coverage, device)
