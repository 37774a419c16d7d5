"""The live compose matches the batch method (appearance.compose) on real frames, and is faster."""

from __future__ import annotations

import time

import numpy as np

from faceswap.composite import appearance as ap
from faceswap.face.detect import detect_faces, predict_landmarks, to_gray
from services.live import render
from services.live.core import paste


def test_live_compose_matches_the_batch_compose(frames_a, bank) -> None:
    frame = frames_a[0]
    gray = to_gray(frame)
    face = detect_faces(frame, gray=gray, upsample=1)[0]
    lm = predict_landmarks(gray, face.box)
    box = ap.roi_box(lm, frame.shape[1], frame.shape[0])
    x0, y0, x1, y1 = box
    roi = frame[y0:y1, x0:x1]
    sources = {"face": [(0, 1.0)], "mouth": [(1, 0.6), (2, 0.4)], "eyes": [(3, 1.0)]}
    t0 = time.perf_counter()
    ref = ap.compose(roi, lm, box, sources, bank.crops, bank.landmarks)
    t1 = time.perf_counter()
    fast = render.compose(roi, lm, box, sources, bank.crops, bank.landmarks)
    t2 = time.perf_counter()
    assert fast.face.shape == ref.face.shape and fast.alpha.shape == ref.alpha.shape
    inside = ref.alpha > 0.5
    assert inside.sum() > 1000
    out_ref = paste(ref.face, roi, ref.alpha).astype(np.int16)
    out_fast = paste(fast.face, roi, fast.alpha).astype(np.int16)
    diff = np.abs(out_ref - out_fast).max(axis=2)
    assert diff.mean() < 1.5, diff.mean()  # grey levels over the ROI
    assert np.percentile(diff[inside], 99) < 16
    # The skin test reads the composed face, so the alpha differs a little where that does.
    assert np.abs(ref.alpha - fast.alpha).mean() < 0.01
    assert np.abs(ref.alpha - fast.alpha).max() < 0.25
    assert t2 - t1 < t1 - t0  # and it is the faster of the two


def test_paste_leaves_pixels_outside_the_mask_untouched() -> None:
    rng = np.random.default_rng(0)
    roi = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    face = rng.uniform(0, 255, (20, 30, 3)).astype(np.float32)
    alpha = np.zeros((20, 30), np.float32)
    alpha[5:15, 10:20] = 0.5
    out = paste(face, roi, alpha)
    outside = alpha == 0
    assert np.array_equal(out[outside], roi[outside])
    assert not np.array_equal(out[~outside], roi[~outside])
