"""`faceswap media ...` as a user runs it: a real process, exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from faceswap.media.store import probe

ROOT = Path(__file__).resolve().parents[2]


def faceswap(*args: str | Path, full: bool = False) -> subprocess.CompletedProcess[str]:
    # full=True runs the real `faceswap` entry point (every service's commands load, slower);
    # otherwise the media commands alone, with the same error handling.
    module = "services.cli" if full else "services.media.cli"
    return subprocess.run(
        [sys.executable, "-m", module, "media", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_extract_encode_probe(short_clip: Path, tmp_path: Path) -> None:
    frames, out = tmp_path / "frames", tmp_path / "out.mp4"
    done = faceswap("extract", short_clip, "-o", frames, full=True)
    assert done.returncode == 0, done.stderr
    assert "extracted 30 frames at 30 fps" in done.stdout
    assert len(list(frames.glob("*.png"))) == 30 and (frames / "index.json").is_file()

    done = faceswap("encode", frames, "-o", out, "--audio-from", short_clip, "--fps", "30000/1001", "--preset",
                    "ultrafast")  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert info.frame_count == 30 and info.fps == Fraction(30000, 1001) and info.has_audio

    done = faceswap("probe", out, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["fps"] == "30000/1001" and data["frame_count"] == 30
    human = faceswap("probe", short_clip)
    assert human.returncode == 0 and "frames     30" in human.stdout and "aac" in human.stdout


@pytest.mark.parametrize("case", ["truncated", "zero_bytes", "image", "audio_only", "missing"])
def test_bad_inputs_exit_2_with_a_message(bad_inputs: dict[str, Path], tmp_path: Path, case: str) -> None:
    video = bad_inputs.get(case, tmp_path / "missing.mp4")
    done = faceswap("extract", video, "-o", tmp_path / "frames", full=case == "truncated")
    assert done.returncode == 2
    assert done.stderr.startswith("faceswap: error:") and video.name in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "frames").exists()


def test_encode_errors(tmp_path: Path, short_clip: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = faceswap("encode", empty, "-o", tmp_path / "o.mp4")
    assert (
        done.returncode == 2 and "no .png/.jpg/.webp frames" in done.stderr and "Traceback" not in done.stderr
    )
    frames = tmp_path / "frames"
    assert faceswap("extract", short_clip, "-o", frames, "--end", "2").returncode == 0
    done = faceswap("encode", frames, "-o", tmp_path / "o.mp4", "--codec", "nosuchcodec")
    assert done.returncode == 2 and "nosuchcodec" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o.mp4").exists()
