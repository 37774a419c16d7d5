"""The worker a Kubernetes Job runs, end to end on real data: train, then convert one Indexed-Job chunk.

Real ffmpeg, real dlib detection, a real (tiny) training run and conversion, through
`python -m services.k8s_worker`'s main() exactly as a Job pod calls it, with storage from the environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIDEO_A = ROOT / "samples" / "liveportrait_s18.mp4"
VIDEO_B = ROOT / "samples" / "liveportrait_d10.mp4"


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.mark.timeout(240)
def test_worker_trains_then_converts_one_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import torch

    torch.set_num_threads(1)
    for var in ("S3_ENDPOINT", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACESWAP_STORAGE", "local")
    monkeypatch.setenv("FACESWAP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACESWAP_THREADS", "1")

    from faceswap.face.extract import DetectOptions, extract_face_set
    from faceswap.media.store import extract_frames, list_frame_keys
    from faceswap.storage import open_store
    from services.k8s_worker import main

    store = open_store()
    store.put_file("in/a.mp4", VIDEO_A)
    store.put_file("in/b.mp4", VIDEO_B)
    extract_frames(store, "in/a.mp4", "j/frames/a", end=6)
    extract_frames(store, "in/b.mp4", "j/frames/b", end=8)
    detect = DetectOptions(jobs=1, detect_max_side=360)
    extract_face_set(store, "j/frames/a", "j/faces/a", detect)
    extract_face_set(store, "j/frames/b", "j/faces/b", detect)

    train_options = {"preset": "demo", "steps": 2, "save_every": 2, "device": "cpu", "threads": 1}
    code = main(
        [
            "train",
            "--faces-a",
            "j/faces/a",
            "--faces-b",
            "j/faces/b",
            "--model",
            "j/model",
            "--options",
            json.dumps(train_options),
        ]
    )
    summary = _last_json(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["stage"] == "train" and summary["result"]["step"] == 2

    # Pod with completion index 1 of an Indexed Job over 6 frames in chunks of 2: frames [2, 4).
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    args = ["--frames", "j/frames/a", "--alignments", "j/faces/a/alignments.json", "--model", "j/model"]
    args += ["--options", json.dumps({"method": "autoencoder"})]  # the trained model renders B
    code = main(["convert", *args, "--output", "j/swapped", "--total-frames", "6", "--chunk-size", "2"])
    summary = _last_json(capsys.readouterr().out)
    assert code == 0, summary
    assert (summary["index"], summary["start"], summary["end"]) == (1, 2, 4)
    assert [index for index, _ in list_frame_keys(store, "j/swapped")] == [2, 3]

    # Unknown options are bad input: exit 2, which the Job's pod failure policy does not retry.
    code = main(
        [
            "convert",
            *args,
            "--output",
            "j/x",
            "--total-frames",
            "6",
            "--chunk-size",
            "2",
            "--options",
            '{"bogus": 1}',
        ]
    )
    assert code == 2
    assert _last_json(capsys.readouterr().out)["error"] == "InvalidArgument"
