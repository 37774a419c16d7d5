"""Training on real faces: loss falls, resume is exact, checkpoints are safe, bad input is clear."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from trainer_faces import write_face_set

from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.model import checkpoint as ckpt_io
from faceswap.model.network import build_model
from faceswap.storage import join_key
from services.trainer.loop import TrainOptions, train

SMALL = {"size": 32, "batch_size": 4, "threads": 1}


def test_lite_loss_falls_on_real_faces(local_store, face_sets) -> None:
    seen: list[tuple[int, float]] = []
    final = train(
        local_store,
        *face_sets,
        "models/lite",
        # Tiny sizes keep the default suite fast: 32 px faces, lr 3e-4, 50 steps (~10 s on one core).
        TrainOptions(
            preset="lite",
            steps=50,
            batch_size=8,
            size=32,
            learning_rate=3e-4,
            save_every=0,
            report_every=0.0,
            seed=1,
        ),
        on_progress=lambda p: seen.append((p.step, p.loss_a + p.loss_b)),
    )
    assert final.state == "succeeded" and final.step == 50
    losses = [loss for step, loss in seen if step > 0]
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.9 * first, (first, last)
    assert final.samples_per_second > 0 and final.checkpoint_key == "models/lite/checkpoint.pt"
    assert local_store.exists("models/lite/preview.png")
    model, config = ckpt_io.load_for_inference(local_store, "models/lite")
    assert config["preset"] == "lite" and config["size"] == 32 and config["step"] == 50
    assert config["coverage"] == 0.75 and not model.training


def test_resume_continues_at_the_same_step_with_identical_weights(local_store, face_sets) -> None:
    # 6 steps straight...
    train(local_store, *face_sets, "m/straight", TrainOptions(steps=6, save_every=0, **SMALL))
    # ...equal 3 steps, a stop, and a resume for 3 more (same batches: they are seeded per step).
    stop = threading.Event()

    def stop_at_3(p) -> None:
        if p.step >= 3:
            stop.set()

    first = train(
        local_store,
        *face_sets,
        "m/resumed",
        TrainOptions(steps=6, report_every=0.0, **SMALL),
        stop_at_3,
        stop,
    )
    assert first.state == "stopped" and first.step == 3
    saved = ckpt_io.load_latest(local_store, "m/resumed")
    assert saved.step == 3
    started: list[int] = []
    second = train(
        local_store,
        *face_sets,
        "m/resumed",
        TrainOptions(steps=6, report_every=0.0, **SMALL),
        on_progress=lambda p: started.append(p.step),
    )
    assert started[0] == 3 and second.step == 6 and second.state == "succeeded"
    a = ckpt_io.load_latest(local_store, "m/straight").model
    b = ckpt_io.load_latest(local_store, "m/resumed").model
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    # The previous checkpoint (step 3) is kept beside the latest.
    assert ckpt_io.read_checkpoint(local_store, ckpt_io.previous_key("m/resumed")).step == 3


def test_corrupt_checkpoint_is_rejected_and_the_previous_survives(local_store, face_sets) -> None:
    train(local_store, *face_sets, "m/x", TrainOptions(steps=4, save_every=2, **SMALL))
    prev = local_store.get_bytes(ckpt_io.previous_key("m/x"))
    local_store.put_bytes(ckpt_io.checkpoint_key("m/x"), b"not a checkpoint at all")
    with pytest.raises(FailedPrecondition, match=r"corrupt.*previous checkpoint"):
        train(local_store, *face_sets, "m/x", TrainOptions(steps=8, **SMALL))
    with pytest.raises(FailedPrecondition, match="corrupt"):
        ckpt_io.load_for_inference(local_store, "m/x")
    assert local_store.get_bytes(ckpt_io.previous_key("m/x")) == prev
    # Bytes changed behind the store's back (checksum mismatch) are caught too.
    path = local_store.local_path(ckpt_io.previous_key("m/x"))
    path.write_bytes(prev[:-10] + b"0123456789")
    with pytest.raises(FailedPrecondition, match="corrupt"):
        ckpt_io.read_checkpoint(local_store, ckpt_io.previous_key("m/x"))


def test_checkpoint_of_another_architecture_is_refused(local_store, face_sets) -> None:
    train(local_store, *face_sets, "m/lite", TrainOptions(steps=2, **SMALL))
    with pytest.raises(FailedPrecondition, match="'lite' model, not 'demo'"):
        train(local_store, *face_sets, "m/lite", TrainOptions(preset="demo", steps=4, **SMALL))
    # A checkpoint whose weights do not fit its declared architecture.
    ckpt = ckpt_io.load_latest(local_store, "m/lite")
    ckpt.model = build_model("demo", 32).state_dict()
    ckpt_io.save_checkpoint(local_store, "m/bad", ckpt)
    with pytest.raises(FailedPrecondition, match="another architecture"):
        ckpt_io.load_for_inference(local_store, "m/bad")
    with pytest.raises(NotFound):
        ckpt_io.load_for_inference(local_store, "m/none")


def test_warm_start_is_checked_against_the_face_sets(local_store, face_sets, raw_faces) -> None:
    train(local_store, *face_sets, "m/base", TrainOptions(steps=2, **SMALL))
    local_store.put_bytes("warm/w.pt", ckpt_io.export_weights(ckpt_io.load_latest(local_store, "m/base")))
    warm = train(local_store, *face_sets, "m/warm", TrainOptions(steps=3, warm_start="warm/w.pt", **SMALL))
    assert warm.warm_start == "warm/w.pt" and "warm start" in warm.message and warm.step == 3
    # The same warm start on swapped identities (other face sets) is refused unless allowed.
    swapped = (face_sets[1], face_sets[0])
    with pytest.raises(FailedPrecondition, match="other face sets"):
        train(local_store, *swapped, "m/foreign", TrainOptions(steps=3, warm_start="warm/w.pt", **SMALL))
    assert not local_store.exists("m/foreign/checkpoint.pt")
    allowed = TrainOptions(steps=3, warm_start="warm/w.pt", allow_foreign_warm_start=True, **SMALL)
    assert "FOREIGN" in train(local_store, *swapped, "m/foreign", allowed).message
    scratch = TrainOptions(steps=2, warm_start="warm/w.pt", from_scratch=True, **SMALL)
    assert train(local_store, *face_sets, "m/scratch", scratch).message.endswith("(training from scratch)")


def test_bad_face_sets_are_clear_errors(local_store, face_sets, raw_faces) -> None:
    with pytest.raises(FailedPrecondition, match="no faces"):
        train(local_store, "sets/none", face_sets[1], "m/e", TrainOptions(steps=2, **SMALL))
    write_face_set(local_store, "sets/tiny", raw_faces["a"][:2])
    with pytest.raises(FailedPrecondition, match="at least"):
        train(local_store, "sets/tiny", face_sets[1], "m/e", TrainOptions(steps=2, **SMALL))
    write_face_set(local_store, "sets/small", raw_faces["a"], size=32)
    with pytest.raises(InvalidArgument, match=r"faces_a_prefix.*smaller than the model"):
        train(local_store, "sets/small", face_sets[1], "m/e", TrainOptions(steps=2, size=64, threads=1))
    with pytest.raises(InvalidArgument, match="32px and B 64px"):
        train(local_store, "sets/small", face_sets[1], "m/e", TrainOptions(steps=2, threads=1))
    # One face of another size inside a set.
    local_store.put_bytes(
        join_key("sets/small", "faces/99999999_0.png"), local_store.get_bytes("sets/a/faces/00000000_0.png")
    )
    with pytest.raises(InvalidArgument, match="but the set's faces are 32x32"):
        train(local_store, "sets/small", face_sets[1], "m/e", TrainOptions(steps=2, threads=1))
    with pytest.raises(InvalidArgument, match="steps"):
        train(local_store, *face_sets, "m/e", TrainOptions(steps=0))
    assert not local_store.exists("m/e/checkpoint.pt")


def test_trains_and_loads_from_s3(s3_store, raw_faces) -> None:
    write_face_set(s3_store, "sets/a", raw_faces["a"])
    write_face_set(s3_store, "sets/b", raw_faces["b"])
    final = train(s3_store, "sets/a", "sets/b", "models/s3", TrainOptions(steps=2, **SMALL))
    assert final.state == "succeeded" and s3_store.exists("models/s3/preview.png")
    model, config = ckpt_io.load_for_inference(s3_store, "models/s3")
    assert config["step"] == 2 and config["preset"] == "lite" and model.size == 32
