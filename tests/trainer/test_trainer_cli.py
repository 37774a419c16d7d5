"""`faceswap train` on local folders: train, resume, export --fp16, warm start from the export."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from trainer_faces import write_face_set

from faceswap.model import checkpoint as ckpt_io
from faceswap.storage import LocalStore
from services.trainer.cli import main

WARM = ckpt_io.builtin_path("demo")


def test_cli_trains_resumes_exports_and_warm_starts(tmp_path: Path, raw_faces, capsys) -> None:
    a, b, model = tmp_path / "faces_a", tmp_path / "faces_b", tmp_path / "model"
    write_face_set(LocalStore(a, ""), "", raw_faces["a"])
    write_face_set(LocalStore(b, ""), "", raw_faces["b"])
    common = [
        "-A",
        str(a),
        "-B",
        str(b),
        "--size",
        "32",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(["train", *common, "-m", str(model), "--steps", "2"]) == 0
    assert main(["train", *common, "-m", str(model), "--steps", "3"]) == 0
    out = capsys.readouterr()
    assert "resuming from step 2" in out.err and "succeeded at step 3/3" in out.out
    assert (model / "checkpoint.pt").is_file() and (model / "preview.png").is_file()

    exported = tmp_path / "warm.pt"
    assert main(["train", "export", str(model), "-o", str(exported), "--fp16"]) == 0
    assert "fp16" in capsys.readouterr().out
    weights = ckpt_io.read_checkpoint_file(exported)
    assert weights.format == ckpt_io.FORMAT_WEIGHTS and weights.optimizer is None
    assert all(v.dtype == torch.float16 for v in weights.model.values() if v.is_floating_point())
    assert exported.stat().st_size < 0.6 * (model / "checkpoint.pt").stat().st_size
    assert main(["train", "info", str(exported)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 3 and set(info["fingerprints"]) == {"a", "b"}

    warm_dir = tmp_path / "warm_model"
    assert main(["train", *common, "-m", str(warm_dir), "--steps", "2", "--warm-start", str(exported)]) == 0
    assert "warm start from" in capsys.readouterr().err
    # The same warm start for the swapped pair is refused (it was trained on other face sets).
    swapped = ["-A", str(b), "-B", str(a), *common[4:]]
    assert (
        main(["train", *swapped, "-m", str(tmp_path / "x"), "--steps", "2", "--warm-start", str(exported)])
        == 2
    )
    assert "other face sets" in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


@pytest.mark.skipif(
    not WARM.is_file(), reason="bundled warm start not built yet (see faceswap/model/warmstart)"
)
def test_bundled_warm_start_loads_and_matches_its_record() -> None:
    """demo.pt is the file its README describes: same sha256, step, preset and face-set fingerprints."""
    readme = (WARM.parent / "README.md").read_text()
    assert hashlib.sha256(WARM.read_bytes()).hexdigest() in readme
    assert WARM.stat().st_size < 25e6
    ckpt = ckpt_io.read_checkpoint_file(WARM)
    assert ckpt.format == ckpt_io.FORMAT_WEIGHTS and ckpt.config["preset"] == "demo"
    assert f"{ckpt.step:,}" in readme
    for side, name in (("a", "A"), ("b", "B")):
        fp = ckpt.fingerprints[side]
        assert re.search(rf"{name} `{fp['sha256'][:8]}…` \({fp['count']} faces\)", readme), side
    model = ckpt_io.model_from_checkpoint(ckpt)
    image, mask = model.eval()(torch.rand(1, 3, 64, 64), "b")
    assert image.shape == (1, 3, 64, 64) and mask is not None
