"""Random warp: the unwarped target stays aligned to the warped input's face; batches are seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.trainer.augment import (
    AugmentConfig,
    FaceBank,
    random_transform,
    random_warp,
    sample_batch,
    step_generator,
    warp_batch,
)
from services.trainer.data import load_face_set


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / max(1, (a | b).sum()))


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.5)
    return np.array([xs.mean(), ys.mean()])


def _check_alignment(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """pairs: (original hull, warped hull, target hull) as float masks in [0, 1]."""
    ious = [_iou(w, t) for _, w, t in pairs]
    offsets = [np.linalg.norm(_centroid(w) - _centroid(t)) for _, w, t in pairs]
    moved = [_iou(o, t) for o, _, t in pairs]
    # Input and target show the same face in the same place: hull masks overlap, centres agree...
    assert np.mean(ious) > 0.9 and min(ious) > 0.8, (np.mean(ious), min(ious))
    assert np.mean(offsets) < 1.0
    # ...while the random transform has moved the face from where the crop had it.
    assert np.mean(moved) < np.mean(ious) - 0.03


def test_batched_warp_keeps_target_aligned_to_the_input_face(local_store, face_sets) -> None:
    faces = load_face_set(local_store, face_sets[0])
    bank = FaceBank(faces)
    x = bank.data.float() / 255
    pairs = []
    for rep in range(6):
        warped, target = warp_batch(x, step_generator(0, rep, 0), AugmentConfig())
        assert warped.shape == x.shape and target.shape == x.shape
        # The grid warp changes the pixels (it is what the model learns to undo).
        assert float((warped[:, :3] - target[:, :3]).abs().mean()) > 0.005
        for i in range(len(bank)):
            pairs.append((x[i, 3].numpy(), warped[i, 3].numpy(), target[i, 3].numpy()))
    _check_alignment(pairs)


def test_reference_opencv_warp_keeps_target_aligned(local_store, face_sets) -> None:
    faces = load_face_set(local_store, face_sets[0])
    rng = np.random.default_rng(1)
    pairs = []
    for i in range(len(faces)):
        for _ in range(6):
            stack = np.dstack([faces.images[i], faces.masks[i]])
            warped, target = random_warp(random_transform(stack, rng, AugmentConfig()), rng, AugmentConfig())
            pairs.append((faces.masks[i] / 255, warped[..., 3] / 255, target[..., 3] / 255))
    _check_alignment(pairs)


def test_batches_are_deterministic_per_step_and_well_formed(local_store, face_sets) -> None:
    bank = FaceBank(load_face_set(local_store, face_sets[1]))
    one = sample_batch(bank, 4, step_generator(7, 3, 0), AugmentConfig())
    two = sample_batch(bank, 4, step_generator(7, 3, 0), AugmentConfig())
    other = sample_batch(bank, 4, step_generator(7, 4, 0), AugmentConfig())
    assert torch.equal(one.warped, two.warped) and torch.equal(one.target, two.target)
    assert not torch.equal(one.warped, other.warped)
    assert one.warped.shape == (4, 3, 64, 64) and one.mask.shape == (4, 1, 64, 64)
    assert float(one.warped.min()) >= 0 and float(one.warped.max()) <= 1
    # The hull mask covers a sensible part of an aligned face; eyes + mouth lie inside it.
    assert 0.2 < float(one.mask.mean()) < 0.8
    assert float((one.region * (1 - one.mask)).sum()) < 0.15 * float(one.region.sum())


@pytest.mark.parametrize("size", [32, 128])
def test_warp_works_at_other_sizes(size: int) -> None:
    x = torch.rand(3, 5, size, size)
    warped, target = warp_batch(x, step_generator(1, 1, 1), AugmentConfig())
    assert warped.shape == target.shape == (3, 5, size, size)
