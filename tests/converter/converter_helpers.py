"""Test data for the converter: real frames of the sample clip, their alignments, a tiny model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from faceswap.face.alignments import Alignments
from faceswap.storage import ObjectStore, join_key

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
CLIP_FRAMES = 60  # for the jitter measurement
SWAP_FRAMES = 6  # frames the conversion tests run on


def read_clip(path: Path, count: int) -> list[np.ndarray]:
    from faceswap.media.store import read_frames

    return [frame for _, frame in read_frames(path, 0, count)]


def detect_alignments(frames: list[np.ndarray], size: int = 64, coverage: float = 0.75) -> Alignments:
    """Alignments of real frames from the detector (in this process, on a 640 px copy)."""
    from faceswap.face.extract import DetectOptions, detect_images

    options = DetectOptions(size=size, coverage=coverage, upsample=0, detect_max_side=640, jobs=1)
    records = detect_images(frames, options)
    for rec in records:
        rec.key = f"{rec.index:08d}.png"
    return Alignments(size=size, coverage=coverage, detector="hog", frames=records)


def put_frames(store: ObjectStore, prefix: str, frames: list[np.ndarray]) -> list[str]:
    keys = []
    for index, frame in enumerate(frames):
        ok, buf = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok
        key = join_key(prefix, f"{index:08d}.png")
        store.put_bytes(key, buf.tobytes())
        keys.append(key)
    return keys


def save_model(store: ObjectStore, prefix: str, preset: str = "lite", size: int = 64, seed: int = 0) -> None:
    """A randomly initialised model saved as a real trainer checkpoint."""
    from faceswap.model.checkpoint import FORMAT_FULL, Checkpoint, save_checkpoint
    from faceswap.model.network import build_model

    torch.manual_seed(seed)
    model = build_model(preset, size)
    ckpt = Checkpoint(
        format=FORMAT_FULL,
        step=0,
        config={"preset": preset, "size": size, "coverage": 0.75, "model": model.config.to_dict()},
        model=model.state_dict(),
        optimizer=None,
        fingerprints={},
        extra={},
    )
    save_checkpoint(store, prefix, ckpt)
