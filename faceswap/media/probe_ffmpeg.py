"""probe() without ffprobe (imageio-ffmpeg ships only ffmpeg): parse `ffmpeg -i`, list packets.

`ffmpeg -i` gives the container, codecs, size and rotation; a stream-copy `framecrc` listing (no
decoding) gives the exact frame count, the rate from the presentation-time gaps, and stream durations.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from fractions import Fraction
from typing import Any

from faceswap.errors import InvalidArgument
from faceswap.media.ffmpeg import demuxer_for, input_args
from faceswap.media.probe import (
    IMAGE_DEMUXERS,
    NoVideoStream,
    VideoInfo,
    clock_seconds,
    display_size,
    parse_rate,
    run_tool,
    unreadable,
)

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
