"""Detector fixtures: detection results on real photos, computed once per session."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from faceswap.face.alignments import FrameRecord
from faceswap.face.extract import DetectOptions, detect_images

ANGELINA = ["deepface_img1.jpg", "deepface_img2.jpg", "deepface_img4.jpg", "deepface_img5.jpg"]


@pytest.fixture(scope="session", autouse=True)
def _single_thread() -> None:
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def angelina_records(shared_data: Path) -> list[FrameRecord]:
    paths = [shared_data / "faces" / "angelina_jolie" / n for n in ANGELINA]
    records = detect_images([cv2.imread(str(p)) for p in paths], DetectOptions(detect_max_side=800, jobs=1))
    for rec, p in zip(records, paths, strict=True):
        rec.key = p.name
    return records
