"""Constants shared by the live tests (importable as ``live_helpers``: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CLIP_A = SAMPLES / "liveportrait_s18.mp4"
CLIP_B = SAMPLES / "liveportrait_d10.mp4"
FACES_B = 12  # faces of B in the test bank (a few seconds of detection, cached per process)
