"""Session fixtures for the converter tests: real clip frames, their alignments, a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from converter_helpers import (
    CLIP,
    CLIP_FRAMES,
    SWAP_FRAMES,
    detect_alignments,
    put_frames,
    read_clip,
    save_model,
)

from faceswap.face.alignments import Alignments
from faceswap.storage import LocalStore


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def clip() -> list[np.ndarray]:
    if not CLIP.is_file():
        pytest.skip(f"sample clip {CLIP} missing")
    return read_clip(CLIP, CLIP_FRAMES)


@pytest.fixture(scope="session")
def clip_alignments(clip: list[np.ndarray]) -> Alignments:
    """The detector's landmarks and matrices for the clip's frames (computed once per session)."""
    return detect_alignments(clip)


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    store = LocalStore(tmp_path_factory.mktemp("models"), "m")
    save_model(store, "lite")
    save_model(store, "demo", preset="demo")
    return store


@pytest.fixture
def frames_store(
    tmp_path: Path, clip: list[np.ndarray], clip_alignments: Alignments, model_store: LocalStore
) -> LocalStore:
    """A store with frames/, alignments.json and model/ (a copy of the tiny lite checkpoint)."""
    store = LocalStore(tmp_path / "store", "t")
    put_frames(store, "frames", clip[:SWAP_FRAMES])
    subset = Alignments(
        size=clip_alignments.size,
        coverage=clip_alignments.coverage,
        detector=clip_alignments.detector,
        frames=[f for f in clip_alignments.frames if f.index < SWAP_FRAMES],
    )
    store.put_bytes("alignments.json", subset.dumps())
    for name in ("checkpoint.pt", "checkpoint.json"):
        store.put_bytes(f"model/{name}", model_store.get_bytes(f"lite/{name}"))
    return store
