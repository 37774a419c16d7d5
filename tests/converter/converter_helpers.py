"""Test data for the converter: real frames of the sample clip, their alignments, a tiny model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from services.common.storage import ObjectStore, join_key
from services.detector.alignments import Alignments, FaceRecord, FrameRecord

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
CLIP_FRAMES = 60  # for the jitter measurement
SWAP_FRAMES = 6  # frames the conversion tests run on


def read_clip(path: Path, count: int) -> list[np.ndarray]:
    from services.media.core import read_frames

    return [frame for _, frame in read_frames(path, 0, count)]


def detect_alignments(frames: list[np.ndarray], size: int = 64, coverage: float = 0.75) -> Alignments:
    """Alignments of real frames from the detector's own detection, landmarks and alignment."""
    from services.detector.align import alignment_matrix
    from services.detector.detect import detect_faces, predict_landmarks, to_gray

    records = []
    for index, frame in enumerate(frames):
        gray = to_gray(frame)
        faces = []
        for det in detect_faces(frame, "hog", upsample=0, max_side=640, gray=gray):
            lm = predict_landmarks(gray, det.box)
            faces.append(
                FaceRecord(
                    box=[int(v) for v in det.box],
                    score=det.score,
                    landmarks=lm.tolist(),
                    matrix=alignment_matrix(lm, size, coverage).tolist(),
                )
            )
        h, w = frame.shape[:2]
        records.append(
            FrameRecord(
                index=index,
                key=f"{index:08d}.png",
                width=w,
                height=h,
                status="ok" if faces else "no_face",
                reason="" if faces else "no face found",
                faces=faces,
            )
        )
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
    from services.trainer.checkpoint import FORMAT_FULL, Checkpoint, save_checkpoint
    from services.trainer.model import build_model

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
