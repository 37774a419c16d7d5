"""Detection and landmarks on real photos: HOG and CNN, face counts, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import InvalidArgument
from faceswap.face.detect import detect_faces, predict_landmarks
from faceswap.face.extract import DetectOptions, detect_images, frame_options


def load(shared_data: Path, rel: str, max_side: int = 0) -> np.ndarray:
    image = cv2.imread(str(shared_data / rel))
    assert image is not None, rel
    if max_side and max(image.shape[:2]) > max_side:
        f = max_side / max(image.shape[:2])
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return image


@pytest.fixture(scope="module")
def hog_records(shared_data: Path):
    names = [
        "faces/katy_perry/deepface_img26.jpg",
        "hard_cases/two_people.jpg",
        "hard_cases/no_face_landscape.jpg",
        "hard_cases/multi_face_selfie.jpg",
    ]
    return dict(
        zip(names, detect_images([load(shared_data, n) for n in names], DetectOptions(jobs=1)), strict=True)
    )


def test_hog_face_counts(hog_records) -> None:
    counts = {name: len(rec.faces) for name, rec in hog_records.items()}
    assert counts == {
        "faces/katy_perry/deepface_img26.jpg": 1,
        "hard_cases/two_people.jpg": 2,
        "hard_cases/no_face_landscape.jpg": 0,
        "hard_cases/multi_face_selfie.jpg": 4,
    }
    no_face = hog_records["hard_cases/no_face_landscape.jpg"]
    assert no_face.status == "no_face" and "no face" in no_face.reason


def test_landmarks_inside_the_box(hog_records) -> None:
    for name, rec in hog_records.items():
        for face in rec.faces:
            left, top, right, bottom = face.box
            lm = face.landmarks_array
            assert lm.shape == (68, 2)
            inner = lm[17:]  # brows, eyes, nose, mouth: inside the detector's box
            assert (inner[:, 0] >= left).all() and (inner[:, 0] <= right).all(), name
            assert (inner[:, 1] >= top).all() and (inner[:, 1] <= bottom).all(), name
            # The jaw may reach a little past the box (the chin), but not far.
            mx, my = 0.25 * (right - left), 0.25 * (bottom - top)
            assert (lm[:, 0] >= left - mx).all() and (lm[:, 0] <= right + mx).all(), name
            assert (lm[:, 1] >= top - my).all() and (lm[:, 1] <= bottom + my).all(), name
            assert face.score > 0
            assert len(face.matrix) == 2 and len(face.matrix[0]) == 3


def test_cnn_detector_on_small_images(shared_data: Path) -> None:
    # CNN (MMOD) is slow on CPU: small copies and no upsampling keep this quick.
    portrait = load(shared_data, "faces/katy_perry/deepface_img26.jpg", 320)
    two = load(shared_data, "hard_cases/two_people.jpg", 640)
    empty = load(shared_data, "hard_cases/no_face_landscape.jpg", 320)
    records = detect_images([portrait, two, empty], DetectOptions(detector="cnn", upsample=0, jobs=1))
    assert [len(r.faces) for r in records] == [1, 2, 0]
    assert all(f.score > 0 for r in records for f in r.faces)


def test_downscaled_detection_keeps_full_resolution_landmarks(shared_data: Path) -> None:
    image = load(shared_data, "hard_cases/two_people.jpg")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    full = sorted(detect_faces(image, "hog", 1, max_side=0), key=lambda d: d.box[0])
    small = sorted(detect_faces(image, "hog", 1, max_side=560), key=lambda d: d.box[0])
    assert len(full) == len(small) == 2
    for a, b in zip(full, small, strict=True):
        width = a.box[2] - a.box[0]
        # Boxes differ by the pyramid's scale steps; landmarks fitted on the full frame barely do.
        lm_a, lm_b = predict_landmarks(gray, a.box), predict_landmarks(gray, b.box)
        assert np.abs(lm_a - lm_b).mean() < 0.03 * width


def test_unreadable_images_are_recorded_not_fatal(shared_data: Path) -> None:
    from faceswap.face.frame_worker import FrameTask, process_chunk

    hard = shared_data / "hard_cases"
    names = ["broken_zero_bytes.jpg", "broken_corrupted_compreface.png", "broken_empty_compreface.png"]
    tasks = [FrameTask(i, n, str(hard / n)) for i, n in enumerate(names)]
    tasks.append(FrameTask(3, "missing.jpg", str(hard / "does_not_exist.jpg")))
    tasks.append(FrameTask(4, "two_people.jpg", str(hard / "two_people.jpg")))
    results = process_chunk(tasks, frame_options(DetectOptions(detect_max_side=640)))
    assert [r.record.status for r in results] == ["unreadable"] * 4 + ["ok"]
    assert all("cannot decode" in r.record.reason for r in results[:4])
    assert len(results[4].record.faces) == 2


def test_bad_options_are_invalid_argument() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(InvalidArgument, match="unknown detector 'yolo'"):
        detect_images([image], DetectOptions(detector="yolo"))
    with pytest.raises(InvalidArgument, match="size"):
        detect_images([image], DetectOptions(size=32))
    with pytest.raises(InvalidArgument, match="no images"):
        detect_images([], DetectOptions())
