"""Trainer test fixtures: small real face sets (see trainer_faces.py), one torch thread."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from trainer_faces import RawFace, extract_faces, write_face_set

from faceswap.storage import ObjectStore


@pytest.fixture(scope="session")
def raw_faces(shared_data: Path) -> dict[str, list[RawFace]]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    faces = {
        "a": extract_faces(shared_data / "faces" / "angelina_jolie"),
        "b": extract_faces(shared_data / "faces" / "katy_perry"),
    }
    assert len(faces["a"]) >= 6 and len(faces["b"]) >= 6, {k: len(v) for k, v in faces.items()}
    return faces


@pytest.fixture
def face_sets(local_store: ObjectStore, raw_faces: dict[str, list[RawFace]]) -> tuple[str, str]:
    write_face_set(local_store, "sets/a", raw_faces["a"])
    write_face_set(local_store, "sets/b", raw_faces["b"])
    return "sets/a", "sets/b"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Six developers share two cores: the trainer's tests use one thread.
    monkeypatch.setenv("FACESWAP_THREADS", "1")
    torch.set_num_threads(1)
