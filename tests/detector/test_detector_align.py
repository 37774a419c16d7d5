"""Umeyama, the mean-face template and the aligned crop's geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceswap.errors import InvalidArgument
from faceswap.face.geometry import (
    MEAN_FACE_68,
    align_face,
    alignment_matrix,
    check_size,
    eye_centers,
    invert_matrix,
    paste_back,
    template_points,
    transform_points,
    umeyama,
)


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-np.pi, np.pi)
    scale = rng.uniform(0.2, 5.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    t = np.eye(3)
    t[:2, :2] = scale * rot
    t[:2, 2] = rng.uniform(-500, 500, size=2)
    return t


@pytest.mark.parametrize("seed", range(5))
def test_umeyama_recovers_known_similarity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = random_similarity(rng)
    src = rng.uniform(0, 1000, size=(51, 2))
    dst = transform_points(src, truth[:2])
    est = umeyama(src, dst, estimate_scale=True)
    assert np.abs(est - truth).max() < 1e-6


def test_umeyama_without_scale_is_rigid() -> None:
    rng = np.random.default_rng(7)
    truth = random_similarity(rng)
    truth[:2, :2] /= np.sqrt(abs(np.linalg.det(truth[:2, :2])))  # scale 1
    src = rng.uniform(-50, 50, size=(20, 2))
    est = umeyama(src, transform_points(src, truth[:2]), estimate_scale=False)
    assert np.abs(est - truth).max() < 1e-6


def test_template_maps_onto_itself() -> None:
    lm = template_points(128, 0.75) * 3.0 + 40  # the mean face, scaled and shifted in a "frame"
    mat = alignment_matrix(lm, 64, 0.75)
    assert np.abs(transform_points(lm, mat) - template_points(64, 0.75)).max() < 1e-6
    assert MEAN_FACE_68.shape == (68, 2)


def test_inverse_maps_points_and_pixels_back_within_one_pixel() -> None:
    rng = np.random.default_rng(3)
    truth = random_similarity(rng)
    truth[:2, :2] /= np.sqrt(abs(np.linalg.det(truth[:2, :2]))) / 2.5  # face ~ 2.5x template size
    lm = transform_points(template_points(64, 0.75), truth[:2]) + 1000
    lm += rng.normal(0, 1.0, size=lm.shape)  # noisy landmarks: the fit is not exact
    frame = np.zeros((1400, 1400, 3), np.uint8)
    nose = lm[30]
    cv2.circle(frame, (round(float(nose[0])), round(float(nose[1]))), 4, (255, 255, 255), -1)
    crop, mat = align_face(frame, lm, size=256, coverage=0.75)
    inv = invert_matrix(mat)
    assert np.abs(transform_points(transform_points(lm, mat), inv) - lm).max() < 1e-6
    # Paste the crop back onto an empty frame: the dot lands where it was.
    back = paste_back(np.zeros_like(frame), crop, mat)

    def centroid(img: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)
        gray[gray < 64] = 0
        ys, xs = np.nonzero(gray)
        w = gray[ys, xs]
        return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])

    assert np.linalg.norm(centroid(back) - centroid(frame)) < 1.0


@pytest.mark.parametrize("size", [63, 513, 0])
def test_bad_size_is_invalid_argument(size: int) -> None:
    with pytest.raises(InvalidArgument, match="size"):
        check_size(size, 0.75)
    with pytest.raises(InvalidArgument, match="coverage"):
        check_size(64, 1.5)


def test_eyes_of_one_person_land_on_the_template(angelina_records) -> None:
    target = eye_centers(template_points(64, 0.75))
    for rec in angelina_records:
        assert rec.status == "ok", rec.reason
        face = rec.faces[0]
        eyes = transform_points(eye_centers(face.landmarks_array), face.matrix_array)
        err = np.linalg.norm(eyes - target, axis=1).max()
        assert err < 2.0, f"{rec.key}: eyes {eyes.round(2)} vs template {target.round(2)}"
