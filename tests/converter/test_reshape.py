"""Expression lock: the swapped face is bent back onto the source landmarks (real photo, dlib)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.composite.reshape import _border_anchors, fit_landmarks, lock_expression, tps_map
from faceswap.face.extract import DetectOptions, detect_images
from faceswap.face.geometry import align_face


@pytest.fixture(scope="module")
def aligned(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    photo = cv2.imread(str(sorted((shared_data / "faces" / "angelina_jolie").glob("*.jpg"))[2]))
    record = detect_images([photo], DetectOptions())[0]
    landmarks = record.faces[0].landmarks_array
    crop, matrix = align_face(photo, landmarks, size=64)
    return crop.astype(np.float32), landmarks @ matrix[:, :2].T + matrix[:, 2]


def _error(points: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(points - target, axis=1).mean())


def test_tps_map_moves_control_points_and_pins_the_border() -> None:
    rng = np.random.default_rng(0)
    dst = rng.uniform(10, 54, (20, 2))
    src = dst + rng.normal(0, 2, dst.shape)
    anchors = _border_anchors(64)
    map_x, map_y = tps_map(np.vstack([dst, anchors]), np.vstack([src, anchors]), 64, smoothing=0.0)
    for (x, y), (sx, sy) in zip(np.vstack([dst, anchors]), np.vstack([src, anchors]), strict=True):
        xi, yi = round(x), round(y)
        if abs(x - xi) < 1e-6 and abs(y - yi) < 1e-6:
            assert abs(map_x[yi, xi] - sx) < 1e-3 and abs(map_y[yi, xi] - sy) < 1e-3
    # The crop's border barely moves, so the warp shows no seam at the square's edge.
    assert np.abs(map_x[0] - np.arange(64)).max() < 1.0
    assert np.abs(map_y[0]).max() < 1.0


def test_lock_expression_restores_the_source_mouth(aligned) -> None:
    crop, target = aligned
    # A "swapped" face with an open mouth and a longer nose, as an autoencoder tends to draw B.
    drawn = target.copy()
    drawn[56:60, 1] += 4
    drawn[65:68, 1] += 3
    drawn[31:36, 1] += 2
    anchors = _border_anchors(64)
    map_x, map_y = tps_map(np.vstack([drawn, anchors]), np.vstack([target, anchors]), 64)
    distorted = cv2.remap(crop, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    before = _error(fit_landmarks(distorted, target), target)
    fixed, mask, applied = lock_expression(distorted, target, np.ones((64, 64), np.float32))
    after = _error(fit_landmarks(fixed, target), target)
    assert applied and mask is not None and mask.shape == (64, 64)
    assert after < 0.6 * before, (before, after)


def test_a_face_already_in_place_barely_changes(aligned) -> None:
    crop, target = aligned
    out, _, applied = lock_expression(crop, target)
    assert applied
    assert float(np.abs(out - crop).mean()) < 6.0  # a sub-pixel nudge, not a redraw


def test_unusable_target_leaves_the_face_unchanged(aligned) -> None:
    crop, target = aligned
    bad = target.copy()
    bad[10] = np.nan
    out, _, applied = lock_expression(crop, bad)
    assert not applied and out is crop
