"""Media test fixtures: short real clips cut from the shared videos, plus generated odd inputs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from faceswap.media.ffmpeg import find_ffmpeg


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
        check=True,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="session")
def run_ffmpeg() -> Callable[..., None]:
    """ffmpeg(*args) for tests that generate their own inputs."""
    return ffmpeg


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_clip(shared_data: Path, media_dir: Path) -> Path:
    """1 s (30 frames) of the real s18 clip with its AAC audio, scaled down to keep tests fast."""
    out = media_dir / "short.mp4"
    src = shared_data / "videos" / "liveportrait_s18.mp4"
    ffmpeg("-i", str(src), "-t", "1", "-vf", "scale=320:180", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", "-movflags", "+faststart", str(out))  # fmt: skip
    return out


@pytest.fixture(scope="session")
def hamilton(shared_data: Path) -> Path:
    return shared_data / "videos" / "hamilton_short_clip.mp4"


@pytest.fixture(scope="session")
def ntsc_mkv(media_dir: Path) -> Path:
    """A 30000/1001 fps Matroska clip: no frame count in its header, so it must be counted."""
    out = media_dir / "ntsc.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=30000/1001", "-frames:v", "37",
           "-c:v", "libx264", "-preset", "ultrafast", str(out))  # fmt: skip
    return out


@pytest.fixture(scope="session")
def audio_only(media_dir: Path) -> Path:
    out = media_dir / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(out))
    return out


@pytest.fixture(scope="session")
def image_as_mp4(shared_data: Path, media_dir: Path) -> Path:
    out = media_dir / "photo.mp4"
    shutil.copyfile(shared_data / "hard_cases" / "two_people.jpg", out)
    return out


@pytest.fixture(scope="session")
def cut_clip(short_clip: Path, media_dir: Path) -> Path:
    """The short clip cut off halfway: the header is intact, the frames after the cut are missing."""
    out = media_dir / "cut.mp4"
    data = short_clip.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.fixture(scope="session")
def bad_inputs(shared_data: Path, image_as_mp4: Path, audio_only: Path) -> dict[str, Path]:
    hard = shared_data / "hard_cases"
    return {
        "truncated": hard / "broken_truncated_no_moov.mp4",
        "zero_bytes": hard / "broken_zero_bytes.jpg",
        "image": image_as_mp4,
        "audio_only": audio_only,
    }
