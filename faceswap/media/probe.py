"""probe(): container and stream facts of a video, with ffprobe or, without it, with ffmpeg alone.

Frame rates stay exact rationals (30000/1001, 2997/100). The frame count comes from the header when
it agrees with duration x fps, and is counted from the packets otherwise (no header, VFR, odd muxers).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from faceswap.errors import InvalidArgument, NotFound
from faceswap.media.ffmpeg import (
    CONTAINER_NAMES,
    demuxer_for,
    find_ffmpeg,
    find_ffprobe,
    input_args,
    not_a_container,
    summarize_stderr,
)

# Demuxers that read single images: a JPEG renamed .mp4 "probes" as a one-frame jpeg_pipe video.
IMAGE_DEMUXERS = re.compile(r"(_pipe$|^image2$|^webp$|^apng$)")
PROBE_TIMEOUT = 120.0


@dataclass
class VideoInfo:
    """What a video holds. width/height are the size of decoded frames (rotation already applied)."""

    duration: float  # container duration, seconds (the longest stream)
    fps: Fraction
    frame_count: int
    width: int
    height: int
    rotation: int = 0  # display rotation in degrees clockwise: 0, 90, 180, 270
    video_codec: str = ""
    audio_codec: str = ""
    has_audio: bool = False
    pixel_format: str = ""
    container: str = ""
    audio_duration: float = 0.0
    video_duration: float = 0.0
    video_stream_index: int = 0  # absolute stream index, used to map exactly this stream

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoInfo:
        values = dict(data)
        values["fps"] = parse_rate(str(values["fps"]))
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


class NoVideoStream(InvalidArgument):
    """The file has no video stream; audio_codec says what audio it has (None: no audio either)."""

    def __init__(self, message: str, audio_codec: str | None) -> None:
        super().__init__(message, field="video")
        self.audio_codec = audio_codec


def parse_rate(text: str | float | Fraction, field: str = "fps") -> Fraction:
    """'30000/1001', '29.97', '25' or a number -> exact positive Fraction."""
    try:
        if isinstance(text, Fraction):
            rate = text
        elif isinstance(text, str) and "/" in text:
            num, den = text.split("/", 1)
            rate = Fraction(int(num), int(den))
        else:
            rate = Fraction(str(text)).limit_denominator(1001)
            # Decimal NTSC spellings mean the exact 1001 rates.
            for base in (24, 30, 48, 60, 120):
                if abs(float(rate) - base * 1000 / 1001) < 0.006:
                    rate = Fraction(base * 1000, 1001)
    except (ValueError, ZeroDivisionError):
        raise InvalidArgument(
            f"{text!r} is not a frame rate (use e.g. 30000/1001 or 25)", field=field
        ) from None
    if rate <= 0 or rate > 1000:
        raise InvalidArgument(f"frame rate {text!r} must be > 0 and <= 1000", field=field)
    return rate


def _rate(text: str | None) -> Fraction | None:
    try:
        num, den = (int(x) for x in str(text).split("/", 1))
        return Fraction(num, den) if num > 0 and den > 0 else None
    except (ValueError, ZeroDivisionError):
        return None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _check_path(path: str | Path, label: str) -> str:
    path = str(path)
    if not os.path.exists(path):
        raise NotFound(f"video {label!r} not found")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise InvalidArgument(f"{label!r} is not a readable file", field="video")
    if os.path.getsize(path) == 0:
        raise InvalidArgument(f"{label!r} is empty (0 bytes), not a video", field="video")
    return path


def probe(path: str | Path, *, label: str | None = None) -> VideoInfo:
    """Facts about the video at path; label names the file in errors (e.g. its object key)."""
    label = label or os.path.basename(str(path))
    path = _check_path(path, label)
    ffprobe = find_ffprobe()
    if ffprobe:
        return _probe_ffprobe(ffprobe, path, label)
    return probe_with_ffmpeg(find_ffmpeg(), path, label)


def unreadable(label: str, stderr: str, path: str) -> InvalidArgument:
    if not_a_container(stderr):
        return InvalidArgument(
            f"{label!r} is not in an accepted container ({CONTAINER_NAMES}); playlists and "
            "references to other files are not accepted",
            field="video",
        )
    return InvalidArgument(
        f"{label!r} is not a readable video: {summarize_stderr(stderr, path)}", field="video"
    )


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    return (height, width) if rotation in (90, 270) else (width, height)


def _reliable(count: int, seconds: float, fps: Fraction) -> bool:
    if count <= 0:
        return False
    if seconds <= 0:
        return True
    expected = seconds * float(fps)
    return abs(count - expected) <= max(2.0, 0.01 * expected)


def _pick_fps(r_rate: Fraction | None, avg_rate: Fraction | None) -> Fraction | None:
    # r_frame_rate is the stream's base rate; it is wrong (e.g. 90000/1) only when far above the average.
    if r_rate and (avg_rate is None or r_rate <= avg_rate * Fraction(3, 2)):
        return r_rate
    return avg_rate or r_rate


def run_tool(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT, check=False
    )


def _probe_ffprobe(ffprobe: str, path: str, label: str) -> VideoInfo:
    proc = run_tool(
        [
            ffprobe,
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            *input_args(path, None),
        ]
    )
    if proc.returncode != 0:
        raise unreadable(label, proc.stderr, path)
    data = json.loads(proc.stdout or "{}")
    fmt = data.get("format", {})
    container = str(fmt.get("format_name", ""))
    if IMAGE_DEMUXERS.search(container):
        raise InvalidArgument(f"{label!r} is a still image ({container}), not a video", field="video")
    demuxer_for(container, label)  # only real containers, whatever the whitelist let through
    streams = data.get("streams", [])
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos:
        kinds = ", ".join(f"{s.get('codec_type')} {s.get('codec_name', '?')}" for s in streams) or "none"
        audio_codec = str(audios[0].get("codec_name", "")) if audios else None
        raise NoVideoStream(f"{label!r} has no video stream (streams: {kinds})", audio_codec=audio_codec)
    video = videos[0]
    codec = str(video.get("codec_name", "") or "")
    if not codec or codec in ("none", "unknown"):
        raise InvalidArgument(f"{label!r} uses a video codec this ffmpeg cannot decode", field="video")
    fps = _pick_fps(_rate(video.get("r_frame_rate")), _rate(video.get("avg_frame_rate")))
    if fps is None:
        raise InvalidArgument(f"{label!r} has no frame rate in its video stream", field="video")
    rotation = _ffprobe_rotation(video)
    width, height = display_size(int(video.get("width", 0)), int(video.get("height", 0)), rotation)
    video_duration = _float(video.get("duration")) or _tag_duration(video)
    count = int(video.get("nb_frames", 0) or 0)
    if not _reliable(count, video_duration, fps):
        count = _count_packets(ffprobe, path, int(video["index"]), label, container)
    if not video_duration and count:
        video_duration = float(count / fps)
    audio = audios[0] if audios else {}
    audio_duration = _float(audio.get("duration")) or _tag_duration(audio)
    return VideoInfo(
        duration=_float(fmt.get("duration")) or max(video_duration, audio_duration),
        fps=fps,
        frame_count=count,
        width=width,
        height=height,
        rotation=rotation,
        video_codec=codec,
        audio_codec=str(audio.get("codec_name", "")),
        has_audio=bool(audios),
        pixel_format=str(video.get("pix_fmt", "")),
        container=container,
        audio_duration=audio_duration,
        video_duration=video_duration,
        video_stream_index=int(video["index"]),
    )


def _ffprobe_rotation(stream: dict[str, Any]) -> int:
    rotate = stream.get("tags", {}).get("rotate")
    if rotate is not None:
        return int(_float(rotate)) % 360
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            # The display matrix rotates counter-clockwise; we report the clockwise display rotation.
            return round(-_float(side["rotation"])) % 360
    return 0


def _tag_duration(stream: dict[str, Any]) -> float:
    # Matroska keeps stream durations in a "DURATION" tag such as "00:00:09.400000000".
    text = stream.get("tags", {}).get("DURATION") or stream.get("tags", {}).get("duration")
    return clock_seconds(text) if text else 0.0


def clock_seconds(text: str) -> float:
    try:
        hours, minutes, seconds = str(text).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _count_packets(ffprobe: str, path: str, index: int, label: str, container: str) -> int:
    """Frames as the decoder will output them: packets, less those an edit list discards (flag D),
    e.g. the leading frames of a stream-copy cut, which the header still counts."""
    proc = run_tool(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            str(index),
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
            *input_args(path, container),
        ]
    )
    if proc.returncode != 0:
        raise unreadable(label, proc.stderr, path)
    return sum(1 for line in proc.stdout.splitlines() if line.strip() and "D" not in line)


# ---- probe() without ffprobe ---------------------------------------------------------------
# probe() without ffprobe (imageio-ffmpeg ships only ffmpeg): parse `ffmpeg -i`, list packets.
#
# `ffmpeg -i` gives the container, codecs, size and rotation; a stream-copy `framecrc` listing (no
# decoding) gives the exact frame count, the rate from the presentation-time gaps, and stream durations.

_STREAM = re.compile(r"^\s*Stream #0:(\d+)\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")


def _split_top(text: str) -> list[str]:
    """Splits 'h264 (Main) (avc1 / x), yuv420p(tv, bt709), 1280x720' on commas outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def probe_with_ffmpeg(ffmpeg: str, path: str, label: str) -> VideoInfo:
    header = run_tool([ffmpeg, "-hide_banner", "-nostdin", *input_args(path, None)]).stderr
    match = re.search(r"^Input #0, (.+?), from ", header, re.MULTILINE)
    if not match:
        raise unreadable(label, header, path)
    container = match.group(1)
    if IMAGE_DEMUXERS.search(container):
        raise InvalidArgument(f"{label!r} is a still image ({container}), not a video", field="video")
    demuxer_for(container, label)
    lines = header.splitlines()
    video: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    kinds = []
    for i, line in enumerate(lines):
        m = _STREAM.match(line)
        if not m:
            continue
        index, kind, rest = int(m.group(1)), m.group(2), m.group(3)
        parts = _split_top(rest)
        codec = parts[0].split(" ")[0] if parts else ""
        kinds.append(f"{kind.lower()} {codec}")
        if kind == "Video" and video is None and "(attached pic)" not in rest:
            size = re.search(r"\b(\d{1,5})x(\d{1,5})\b", rest)
            video = {
                "index": index,
                "codec": codec,
                "pix_fmt": re.match(r"\w+", parts[1]).group(0) if len(parts) > 1 else "",  # type: ignore[union-attr]
                "width": int(size.group(1)) if size else 0,
                "height": int(size.group(2)) if size else 0,
                "rotation": _header_rotation(lines[i + 1 :]),
            }
        elif kind == "Audio" and audio is None:
            audio = {"index": index, "codec": codec}
    if video is None:
        streams = ", ".join(kinds) or "none"
        audio_codec = audio["codec"] if audio else None
        raise NoVideoStream(f"{label!r} has no video stream (streams: {streams})", audio_codec=audio_codec)
    if video["codec"] in ("none", "unknown", ""):
        raise InvalidArgument(f"{label!r} uses a video codec this ffmpeg cannot decode", field="video")
    duration = re.search(r"Duration: (\d+:\d+:[\d.]+)", header)
    packets = _packet_facts(ffmpeg, path, video["index"], audio["index"] if audio else None, label, container)
    fps = _fallback_fps(packets, header)
    if fps is None:
        raise InvalidArgument(f"{label!r} has no frame rate in its video stream", field="video")
    width, height = display_size(video["width"], video["height"], video["rotation"])
    return VideoInfo(
        duration=clock_seconds(duration.group(1)) if duration else packets["video_duration"],
        fps=fps,
        frame_count=packets["count"],
        width=width,
        height=height,
        rotation=video["rotation"],
        video_codec=video["codec"],
        audio_codec=audio["codec"] if audio else "",
        has_audio=audio is not None,
        pixel_format=video["pix_fmt"],
        container=container,
        audio_duration=packets["audio_duration"],
        video_duration=packets["video_duration"],
        video_stream_index=video["index"],
    )


def _fallback_fps(packets: dict, header: str) -> Fraction | None:
    """The exact rate from packet timing when the time base is fine enough, else the header's."""
    exact, average = packets["fps"], packets["average_fps"]
    if exact and average and abs(exact - average) / average < Fraction(1, 1000):
        return exact  # e.g. 2997/100 from a 1/11988 time base: exact
    match = re.search(r"([\d.]+k?) (?:fps|tbr)", header)
    stated = parse_rate(match.group(1).replace("k", "000")) if match else None
    # Millisecond time bases (Matroska) blur the rate: trust the stated rate when it fits the timing.
    if stated and (not average or abs(stated - average) / average < Fraction(5, 1000)):
        return stated
    return average.limit_denominator(1001) if average else (exact or stated)


def _header_rotation(following: list[str]) -> int:
    for line in following:
        if _STREAM.match(line):
            break
        m = re.search(r"rotation of (-?[\d.]+) degrees", line)
        if m:
            return round(-float(m.group(1))) % 360
        m = re.match(r"^\s*rotate\s*:\s*(-?\d+)", line)
        if m:
            return int(m.group(1)) % 360
    return 0


def _packet_facts(
    ffmpeg: str, path: str, video_index: int, audio_index: int | None, label: str, container: str
) -> dict:
    """Frame count, exact fps and stream durations from a stream-copy packet listing (no decoding)."""
    maps = ["-map", f"0:{video_index}"] + (["-map", f"0:{audio_index}"] if audio_index is not None else [])
    proc = run_tool(
        [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            *input_args(path, container),
            *maps,
            "-c",
            "copy",
            "-f",
            "framecrc",
            "-",
        ]
    )
    if proc.returncode != 0:
        raise unreadable(label, proc.stderr, path)
    timebase: dict[int, Fraction] = {}
    spans: dict[int, list[int]] = {}
    video_pts: list[int] = []
    for line in proc.stdout.splitlines():
        if line.startswith("#tb "):
            m = re.match(r"#tb (\d+): (\d+)/(\d+)", line)
            if m:
                timebase[int(m.group(1))] = Fraction(int(m.group(2)), int(m.group(3)))
            continue
        if line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            continue
        stream, pts, dur = int(fields[0]), int(fields[2]), int(fields[3])
        flags = next((int(f[2:], 16) for f in fields[6:] if f.startswith("F=")), 1)
        if flags & 0x4:
            continue  # AV_PKT_FLAG_DISCARD: cut away by an edit list, never output by the decoder
        if stream == 0:
            video_pts.append(pts)
        else:
            lo_hi = spans.setdefault(stream, [pts, pts + dur])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], pts), max(lo_hi[1], pts + dur)

    video_pts.sort()
    tb = timebase.get(0)
    # The typical gap between presentation times is one frame (packet durations can be off at the
    # ends of a cut, and millisecond time bases alternate 33/34: the average catches that).
    gaps = Counter(b - a for a, b in itertools.pairwise(video_pts))
    common = gaps.most_common(1)[0][0] if gaps else 0
    fps = 1 / (common * tb) if tb and common > 0 else None
    span = video_pts[-1] - video_pts[0] if len(video_pts) > 1 else 0
    average = Fraction(len(video_pts) - 1) / (span * tb) if tb and span > 0 else None
    video_seconds = float((span + common) * tb) if tb and video_pts else 0.0
    audio_seconds = 0.0
    if 1 in spans and 1 in timebase:
        audio_seconds = float((spans[1][1] - spans[1][0]) * timebase[1])
    return {
        "count": len(video_pts),
        "fps": fps,
        "average_fps": average,
        "video_duration": video_seconds,
        "audio_duration": audio_seconds,
    }
