"""`faceswap live` end to end: a video file streamed through an in-process server, written out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from live_helpers import CLIP_B, FACES_B, ROOT, assert_reads_as_b


def _clip(frames: list[np.ndarray], path: Path, fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_live_cli_streams_a_video_and_writes_the_swapped_frames(
    tmp_path: Path, frames_a, b_embeddings
) -> None:
    clip = _clip(frames_a[:10], tmp_path / "a.mp4")
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "services.cli", "live", "--faces-b", str(CLIP_B), "--input", str(clip),
           "--output", str(out), "--max-faces-b", str(FACES_B), "--json"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["frames_sent"] == 10 and figures["errors"] == 0
    assert figures["frames_back"] + figures["dropped"] == 10 and figures["fps"] > 0
    assert figures["encoding"] == "jpeg"
    cap = cv2.VideoCapture(str(out))
    written = [img for ok, img in iter(cap.read, (False, None)) if ok]
    cap.release()
    assert len(written) == 10  # dropped frames are filled in: the source's timing is kept
    assert written[0].shape == frames_a[0].shape
    assert_reads_as_b(written[0], frames_a[0], b_embeddings)  # the face was swapped


def test_live_cli_bad_inputs_are_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    for extra in (
        ["--faces-b", str(bad), "--input", str(CLIP_B)],
        ["--faces-b", str(CLIP_B), "--input", str(bad)],
    ):
        cmd = [sys.executable, "-m", "services.cli", "live", *extra, "--frames", "2", "--max-faces-b", "4"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr[-1500:]
        assert "Traceback" not in proc.stderr and "bad.mp4" in proc.stderr


def test_live_cli_names_a_missing_model_in_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "services.cli", "live", "--faces-b", str(CLIP_B), "--input", str(CLIP_B),
           "--frames", "2", "--max-faces-b", "4", "--model", "builtin:nope"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and "builtin:nope" in proc.stderr
