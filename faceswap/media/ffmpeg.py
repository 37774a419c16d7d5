"""Locating the ffmpeg/ffprobe binaries and turning their stderr into short, readable reasons."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from typing import IO

from faceswap.errors import FailedPrecondition, InvalidArgument

# Overrides for unusual installs (and for tests of the fallback): a path, or "none" for ffprobe.
FFMPEG_ENV = "FACESWAP_FFMPEG"
FFPROBE_ENV = "FACESWAP_FFPROBE"


# The only demuxers any input is opened with: real containers (and single images / audio files, so
# their own clear errors and audio sources keep working). Playlists and other reference formats (hls,
# dash, concat, ffconcat, image2 sequences, tee, ...) would make ffmpeg open further files or URLs
# named inside the upload, so they are never probed, and every later call names the demuxer probed.
CONTAINERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "flv",
    "mpeg",
    "ogg",
    "asf",
    "gif",
    "mp3",
    "wav",
    "aac",
    "flac",
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "bmp_pipe",
    "tiff_pipe",
)
FORMAT_WHITELIST = ",".join(CONTAINERS)
CONTAINER_NAMES = "mp4/mov, mkv/webm, avi, mpegts, flv, mpeg, ogg, asf, gif"


def demuxer_for(container: str, label: str = "input") -> str:
    """The demuxer to force (``-f``) for a probed container name; only the allowed ones."""
    if container not in CONTAINERS:
        raise InvalidArgument(
            f"{label!r} is in the {container[:40]!r} format, not an accepted container ({CONTAINER_NAMES})",
            field="video",
        )
    return container.split(",")[0]


def input_args(path: str | os.PathLike[str], container: str | None) -> list[str]:
    """``-i`` for a local file with its safeguards: only the file protocol, and the demuxer named
    explicitly (``-f``, from the probe) or, when probing, chosen only among ``CONTAINERS``."""
    args = ["-protocol_whitelist", "file"]
    if not container:
        args += ["-format_whitelist", FORMAT_WHITELIST]
    else:
        args += ["-f", demuxer_for(container)]
    return [*args, "-i", "file:" + os.path.abspath(os.fspath(path))]


def not_a_container(stderr: str) -> bool:
    """ffmpeg refused the input because its format is not on the whitelist."""
    return "not on whitelist" in stderr.lower()


def find_ffmpeg() -> str:
    """The ffmpeg binary: $FACESWAP_FFMPEG, the system one, else imageio-ffmpeg's bundled build."""
    override = os.environ.get(FFMPEG_ENV)
    if override:
        return override
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # not installed, or no binary for this platform
        raise FailedPrecondition(f"no ffmpeg binary found (install ffmpeg or imageio-ffmpeg): {exc}") from exc


def find_ffprobe() -> str | None:
    """The ffprobe binary, or None (imageio-ffmpeg ships no ffprobe; probe() then parses ffmpeg)."""
    override = os.environ.get(FFPROBE_ENV)
    if override:
        return None if override.lower() == "none" else override
    found = shutil.which("ffprobe")
    if found:
        return found
    # An ffprobe next to the chosen ffmpeg (static builds ship both).
    sibling = os.path.join(os.path.dirname(find_ffmpeg()), "ffprobe")
    return sibling if os.access(sibling, os.X_OK) else None


@functools.lru_cache(maxsize=8)
def encoder_names(ffmpeg: str) -> frozenset[str]:
    """Video and audio encoders this ffmpeg build has (``ffmpeg -encoders``)."""
    out = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-encoders"], capture_output=True, text=True, check=False
    ).stdout
    names = set()
    for line in out.splitlines():
        # " V....D libx264              libx264 H.264 / AVC ..."
        match = re.match(r"^\s*([VAS][A-Z.]{5})\s+(\S+)", line)
        if match:
            names.add(match.group(2))
    return frozenset(names)


@functools.lru_cache(maxsize=8)
def passthrough_args(ffmpeg: str) -> tuple[str, ...]:
    """Options that pass decoded frames through unchanged: -fps_mode (ffmpeg >= 5.1) or -vsync 0."""
    out = subprocess.run([ffmpeg, "-hide_banner", "-h", "long"], capture_output=True, text=True, check=False)
    return ("-fps_mode", "passthrough") if "-fps_mode" in out.stdout else ("-vsync", "0")


# Lines ffmpeg prints after the real reason; they say nothing about the cause.
_NOISE = re.compile(
    r"(conversion failed|error opening (input|output) file|exiting normally|"
    r"nothing was written|error while opening encoder|task finished|terminating thread|"
    r"^\s*last message repeated|error (writing|closing) (trailer|file)|"
    r"error opening input files|could not open encoder before eof|at least one output file|^\s*$)",
    re.IGNORECASE,
)


def summarize_stderr(stderr: str, path: str | None = None) -> str:
    """The last meaningful lines of ffmpeg's stderr (cause first), without paths and log prefixes."""
    cleaned: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if path:
            line = line.replace(f"{path}: ", "").replace(path, os.path.basename(path))
        # "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d...] moov atom not found" -> "moov atom not found"
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line)
        line = re.sub(r"^Error opening input( file)?:\s*", "", line)
        if line and not _NOISE.search(line) and line not in cleaned:
            cleaned.append(line)
    if not cleaned:
        return "ffmpeg failed without a message"
    # The line before the last often holds the cause ("moov atom not found" before "Invalid data").
    return "; ".join(cleaned[-2:])[:300]


class StderrTail:
    """Drains a process's stderr on a thread (so the pipe never fills) and keeps the last lines."""

    def __init__(self, stream: IO[bytes], keep: int = 40) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._lines.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    def text(self, timeout: float = 5.0) -> str:
        self._thread.join(timeout)
        return "\n".join(self._lines)
