"""The identity filter keeps only the chosen person."""

from __future__ import annotations

from pathlib import Path

import cv2

from faceswap.face.extract import DetectOptions, detect_images


def test_identity_filter_picks_the_reference_person(shared_data: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(shared_data / "hard_cases" / "two_people.jpg"))
    # Reference: a crop of the person on the right; the filter must keep that one face only.
    w = image.shape[1]
    ref_path = tmp_path / "ref.png"
    cv2.imwrite(str(ref_path), image[:, w // 2 :])
    records = detect_images([image], DetectOptions(reference_photos=[str(ref_path)], jobs=1))
    rec = records[0]
    assert rec.status == "ok"
    assert len(rec.faces) == 1 and len(rec.rejected) == 1
    kept, dropped = rec.faces[0], rec.rejected[0]
    assert kept.box[0] > w // 2 > dropped.box[2]
    assert kept.identity_distance < 0.3 < 0.6 < dropped.identity_distance
    assert dropped.reason.startswith("identity distance")


def test_identity_filter_across_photos(shared_data: Path) -> None:
    aj = shared_data / "faces" / "angelina_jolie"
    kp = shared_data / "faces" / "katy_perry"
    images = [cv2.imread(str(aj / "deepface_img2.jpg")), cv2.imread(str(kp / "deepface_img26.jpg"))]
    options = DetectOptions(reference_photos=[str(aj / "deepface_img1.jpg")], detect_max_side=800, jobs=1)
    kept, other = detect_images(images, options)
    assert kept.status == "ok" and kept.faces[0].identity_distance < 0.6
    assert other.status == "filtered" and not other.faces and other.rejected[0].identity_distance > 0.6
    assert "identity distance" in other.reason
