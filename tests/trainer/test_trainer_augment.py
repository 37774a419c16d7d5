"""Random warp: the unwarped target stays aligned to the warped input's face; batches are seeded."""

from __future__ import annotations

import numpy as np
import torch

from services.trainer.augment import AugmentConfig, make_batch, random_transform, random_warp, step_rng
from services.trainer.data import load_face_set


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum()))


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 127)
    return np.array([xs.mean(), ys.mean()])


def test_random_warp_keeps_target_aligned_to_the_input_face(local_store, face_sets) -> None:
    faces = load_face_set(local_store, face_sets[0])
    cfg = AugmentConfig()
    rng = np.random.default_rng(1)
    ious, moved, offsets, changed = [], [], [], []
    for i in range(len(faces)):
        for _ in range(8):
            stack = np.dstack([faces.images[i], faces.masks[i]])
            moved_stack = random_transform(stack, rng, cfg)
            warped, target = random_warp(moved_stack, rng, cfg)
            ious.append(_iou(warped[..., 3], target[..., 3]))
            moved.append(_iou(faces.masks[i], target[..., 3]))
            offsets.append(np.linalg.norm(_centroid(warped[..., 3]) - _centroid(target[..., 3])))
            changed.append(np.abs(warped[..., :3].astype(int) - target[..., :3].astype(int)).mean())
    # Input and target show the same face in the same place: hull masks overlap, centres agree...
    assert np.mean(ious) > 0.9 and min(ious) > 0.8
    assert np.mean(offsets) < 1.0
    # ...while the pixels differ (the grid warp) and the face has moved from the original crop.
    assert np.mean(changed) > 1.0
    assert np.mean(moved) < np.mean(ious)


def test_batches_are_deterministic_per_step_and_well_formed(local_store, face_sets) -> None:
    faces = load_face_set(local_store, face_sets[1])
    one = make_batch(faces, 4, step_rng(7, 3, 0), AugmentConfig())
    two = make_batch(faces, 4, step_rng(7, 3, 0), AugmentConfig())
    other = make_batch(faces, 4, step_rng(7, 4, 0), AugmentConfig())
    assert torch.equal(one.warped, two.warped) and torch.equal(one.target, two.target)
    assert not torch.equal(one.warped, other.warped)
    assert one.warped.shape == (4, 3, 64, 64) and one.mask.shape == (4, 1, 64, 64)
    assert float(one.warped.min()) >= 0 and float(one.warped.max()) <= 1
    # The hull mask covers a sensible part of an aligned face; eyes + mouth lie inside it.
    assert 0.2 < float(one.mask.mean()) < 0.8
    assert float((one.region * (1 - one.mask)).sum()) < 0.15 * float(one.region.sum())
