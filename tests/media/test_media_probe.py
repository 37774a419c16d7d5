"""probe(): exact rates, counted frames, rotation, the ffmpeg-only fallback, and bad inputs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import InvalidArgument, NotFound
from faceswap.media.ffmpeg import FFMPEG_ENV, FFPROBE_ENV, summarize_stderr
from faceswap.media.store import probe, read_frames


@pytest.fixture(params=["ffprobe", "ffmpeg-only"])
def prober(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with ffprobe, and again with only imageio-ffmpeg's bundled ffmpeg (no ffprobe)."""
    if request.param == "ffmpeg-only":
        imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
        monkeypatch.setenv(FFMPEG_ENV, imageio_ffmpeg.get_ffmpeg_exe())
        monkeypatch.setenv(FFPROBE_ENV, "none")
    return request.param


def test_probe_real_clip(shared_data: Path, prober: str) -> None:
    info = probe(shared_data / "videos" / "liveportrait_s18.mp4")
    assert (info.width, info.height, info.rotation) == (1280, 720, 0)
    assert info.fps == Fraction(30) and info.frame_count == 282
    assert info.video_codec == "h264" and info.pixel_format == "yuv420p"
    assert info.has_audio and info.audio_codec == "aac"
    assert info.video_duration == pytest.approx(9.4, abs=1e-3)
    assert info.duration == pytest.approx(9.426, abs=0.01)
    assert info.audio_duration == pytest.approx(9.43, abs=0.05)


def test_2997_rate_is_exact_and_count_matches_decoding(hamilton: Path, prober: str) -> None:
    info = probe(hamilton)
    assert info.fps == Fraction(2997, 100)  # exact, not 29.97 as a float
    assert info.frame_count == 275
    assert sum(1 for _ in read_frames(hamilton)) == info.frame_count


def test_ntsc_rate_and_counted_frames_without_header(ntsc_mkv: Path, prober: str) -> None:
    info = probe(ntsc_mkv)
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 37  # Matroska has no frame count: counted from the packets
    assert not info.has_audio


def test_rotation_is_reported_and_applied(
    media_dir: Path, run_ffmpeg: Callable[..., None], prober: str
) -> None:
    ffmpeg = run_ffmpeg
    plain, rotated = media_dir / "ts.mp4", media_dir / "ts_rot.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x96:rate=10", "-frames:v", "3", "-c:v", "libx264",
           "-qp", "0", "-pix_fmt", "yuv444p", str(plain))  # fmt: skip
    try:  # ffmpeg >= 6 sets a display matrix with -display_rotation; 5.x takes the rotate tag
        ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))
    except subprocess.CalledProcessError:
        ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    info = probe(rotated)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (96, 160)  # frames come out the way they are displayed
    original = next(read_frames(plain))[1]
    shown = next(read_frames(rotated, info=info))[1]
    turn = cv2.ROTATE_90_CLOCKWISE if info.rotation == 90 else cv2.ROTATE_90_COUNTERCLOCKWISE
    assert np.array_equal(cv2.rotate(original, turn), shown)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("truncated", "moov atom not found"),
        ("zero_bytes", "empty"),
        ("image", "still image"),
        ("audio_only", "no video stream"),
    ],
)
def test_bad_inputs_are_invalid_argument(
    bad_inputs: dict[str, Path], case: str, reason: str, prober: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        probe(bad_inputs[case])
    assert reason in err.value.message
    assert bad_inputs[case].name in err.value.message  # names the file
    assert err.value.field == "video"


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nothing\.mp4"):
        probe(tmp_path / "nothing.mp4")


def test_stderr_summary_keeps_the_cause() -> None:
    stderr = (
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c0] moov atom not found\n"
        "/data/in.mp4: Invalid data found when processing input\n"
        "Conversion failed!\n"
    )
    summary = summarize_stderr(stderr, "/data/in.mp4")
    assert summary == "moov atom not found; Invalid data found when processing input"


def test_stream_copy_cut_counts_only_frames_that_decode(
    hamilton: Path, media_dir: Path, run_ffmpeg: Callable[..., None], prober: str
) -> None:
    """A `-c copy` cut keeps the GOP's leading packets behind an edit list: the header counts them,
    the decoder drops them. frame_count and late-start seeking must follow the decoder."""
    cut = media_dir / f"cut_copy_{prober}.mp4"
    run_ffmpeg("-ss", "1.5", "-i", str(hamilton), "-t", "3", "-c", "copy", str(cut))
    info = probe(cut)
    frames = dict(read_frames(cut, info=info))
    assert info.frame_count == len(frames) and info.fps == Fraction(2997, 100)
    late = list(read_frames(cut, start=info.frame_count - 5, info=info))
    assert [n for n, _ in late] == list(range(info.frame_count - 5, info.frame_count))
    assert all(np.array_equal(frame, frames[n]) for n, frame in late)
