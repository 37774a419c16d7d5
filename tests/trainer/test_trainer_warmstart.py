"""The bundled demo warm start: a short fine-tune on the re-extracted demo pair keeps the loss falling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.model import checkpoint as ckpt_io
from faceswap.storage import LocalStore
from services.trainer.loop import TrainOptions, train

ROOT = Path(__file__).resolve().parents[2]
WARM = ckpt_io.builtin_path("demo")


def _frames(video: Path, out: Path, step: int) -> Path:
    out.mkdir(parents=True)
    cap = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            cv2.imwrite(str(out / f"{index:08d}.png"), frame)
        index += 1
    return out


@pytest.mark.skipif(
    not WARM.is_file(), reason="bundled warm start not built yet (see faceswap/model/warmstart)"
)
def test_fine_tune_from_the_bundled_warm_start(tmp_path: Path) -> None:
    from faceswap.face.extract import DetectOptions, extract_from_path

    for name, clip in (("a", "liveportrait_s18.mp4"), ("b", "liveportrait_d10.mp4")):
        frames = _frames(ROOT / "samples" / clip, tmp_path / f"frames_{name}", step=4)
        extract_from_path(frames, tmp_path / "store" / f"faces_{name}", DetectOptions(jobs=1))
    store = LocalStore(tmp_path / "store", "")
    losses: list[float] = []
    final = train(
        store,
        "faces_a",
        "faces_b",
        "model",
        TrainOptions(
            preset="demo", steps=40, batch_size=16, warm_start="builtin:demo", save_every=0, report_every=0
        ),
        on_progress=lambda p: losses.append(p.loss_a + p.loss_b) if p.step else None,
    )
    assert "warm start from builtin:demo" in final.message
    scratch = train(
        store,
        "faces_a",
        "faces_b",
        "scratch",
        TrainOptions(preset="demo", steps=5, batch_size=8, save_every=0),
    )
    # Far below a fresh model's loss, and not undone by the fine-tune: it stays at the warm start's
    # level (at the full peak lr it rose 30% in 60 steps; docs/trainer.md).
    assert np.mean(losses[:10]) < 0.6 * (scratch.loss_a + scratch.loss_b)
    assert np.mean(losses[-10:]) <= 1.05 * np.mean(losses[:10])
