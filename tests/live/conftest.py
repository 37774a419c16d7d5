"""Shared fixtures for the live tests: a small bank of B's faces and a few of A's frames."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from live_helpers import CLIP_A, CLIP_B, FACES_B, SAMPLES


@pytest.fixture(scope="session")
def frames_a() -> list[np.ndarray]:
    """The first 40 frames of A's clip at 640x360 (the tests' frame size: quick to swap)."""
    cap = cv2.VideoCapture(str(CLIP_A))
    out = []
    for _ in itertools.repeat(None, 40):
        ok, image = cap.read()
        assert ok
        out.append(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    return out


@pytest.fixture(scope="session")
def jpegs_a(frames_a: list[np.ndarray]) -> list[bytes]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames_a]


@pytest.fixture(scope="session")
def bank():
    from services.live.bank import bank_from_path

    bank, _ = bank_from_path(str(CLIP_B), FACES_B, [SAMPLES.resolve()])
    return bank


@pytest.fixture(scope="session")
def b_embeddings() -> np.ndarray:
    """dlib embeddings of B's face in six frames of B's clip: who the swapped faces should be."""
    from live_helpers import face_embedding_of

    cap = cv2.VideoCapture(str(CLIP_B))
    out = []
    for index in itertools.count():
        ok, image = cap.read()
        if not ok or len(out) == 6:
            break
        if index % 20 == 0 and (found := face_embedding_of(image)) is not None:
            out.append(found)
    cap.release()
    assert len(out) >= 3
    return np.stack(out)
