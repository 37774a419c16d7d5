"""Media benchmark: our decode / extract / encode against plain ffmpeg doing the same job, same run.

ratio = our frames/s divided by plain ffmpeg's (1.0 = as fast; the goal is >= 1/1.3 = 0.77).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from faceswap.media.ffmpeg import encoder_names, passthrough_args
from faceswap.media.store import PNG_LEVEL, encode_video, extract_frames, find_ffmpeg, probe, read_frames
from faceswap.storage import LocalStore

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"


def _self_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (ours runs ffmpeg as a child too)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _plain_ffmpeg(args: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one ffmpeg run."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    _CPU["plain"] = usage.ru_utime + usage.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
    return seconds, usage.ru_maxrss / 1024


_CPU: dict[str, float] = {}


def _compare(
    repeats: int, ours: Callable[[], float], plain: Callable[[], float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Alternates ours and plain ffmpeg `repeats` times; the fastest (wall s, CPU s) of each.

    Alternating spreads a busy machine's noise over both; CPU time is the steadier figure.
    """
    mine, theirs = [], []
    for _ in range(repeats):
        cpu = _cpu_s()
        seconds = ours()
        mine.append((seconds, _cpu_s() - cpu))
        seconds = plain()
        theirs.append((seconds, _CPU.pop("plain")))
    return min(mine), min(theirs)


def _row(
    stage: str,
    frames: int,
    ours: tuple[float, float],
    base: tuple[float, float],
    baseline_name: str,
    rss: float,
) -> dict:
    value, baseline = frames / ours[0], frames / base[0]
    return {
        "stage": stage,
        "metric": "frames_per_second",
        "value": round(value, 2),
        "unit": "frames/s",
        "baseline_name": baseline_name,
        "baseline": round(baseline, 2),
        "ratio": round(value / baseline, 3),
        "peak_rss_mb": round(rss, 1),
        "cpu_s": round(ours[1], 2),
        "baseline_cpu_s": round(base[1], 2),
    }


def run(quick: bool, workdir: Path) -> list[dict]:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    info = probe(CLIP)
    # One-time lookups a running service caches (encoder list, ffmpeg options) are not per-call costs.
    encoder_names(find_ffmpeg())
    passthrough_args(find_ffmpeg())
    frames = 90 if quick else info.frame_count
    repeats = 1 if quick else 2
    rows: list[dict] = []
    ffmpeg_rss = 0.0

    # 1. decode to raw BGR frames in memory.
    def ours_decode() -> float:
        start = time.perf_counter()
        count = sum(1 for _ in read_frames(CLIP, end=frames, info=info))
        assert count == frames
        return time.perf_counter() - start

    def plain_decode() -> float:
        # The same raw BGR frames through a pipe into this process, drained as cheaply as possible
        # (ffmpeg into /dev/null skips the pipe copy that any consumer of frames pays; see docs).
        nonlocal ffmpeg_rss
        cmd = [find_ffmpeg(), "-nostdin", "-v", "error", "-i", str(CLIP), "-frames:v", str(frames)]
        start = time.perf_counter()
        proc = subprocess.Popen([*cmd, "-f", "rawvideo", "-pix_fmt", "bgr24", "-"], stdout=subprocess.PIPE)
        sink = bytearray(1 << 20)
        while proc.stdout.readinto(sink):  # type: ignore[union-attr]
            pass
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        _CPU["plain"] = usage.ru_utime + usage.ru_stime
        ffmpeg_rss = max(ffmpeg_rss, usage.ru_maxrss / 1024)
        return time.perf_counter() - start

    ours, base = _compare(3, ours_decode, plain_decode)  # under a second each: best of 3 is cheap
    rows.append(
        _row(
            "media.decode",
            frames,
            ours,
            base,
            "ffmpeg rawvideo bgr24 | pipe reader",
            _self_rss_mb(),
        )
    )

    # 2. extract: video -> PNG files (+ index) in a local store.
    store = LocalStore(workdir / "store", "bench")
    store.put_file("clip.mp4", CLIP)
    plain_dir = workdir / "plain_frames"

    def ours_extract() -> float:
        store.delete_prefix("frames")
        start = time.perf_counter()
        extract_frames(store, "clip.mp4", "frames", end=frames)
        return time.perf_counter() - start

    def plain_extract() -> float:
        nonlocal ffmpeg_rss
        shutil.rmtree(plain_dir, ignore_errors=True)
        plain_dir.mkdir()
        # Same PNG settings as ours (zlib level 1, "up" filter), so both write the same kind of file.
        png = ["-compression_level", str(PNG_LEVEL), "-pred", "up", "-start_number", "0"]
        seconds, rss = _plain_ffmpeg(
            ["-i", str(CLIP), "-frames:v", str(frames), *png, str(plain_dir / "%08d.png")]
        )
        ffmpeg_rss = max(ffmpeg_rss, rss)
        return seconds

    ours, base = _compare(repeats, ours_extract, plain_extract)
    rows.append(
        _row(
            "media.extract",
            frames,
            ours,
            base,
            "ffmpeg -i clip -compression_level 1 -pred up %08d.png",
            max(_self_rss_mb(), _children_rss_mb()),
        )
    )

    # 3. encode: the same PNG files -> H.264 mp4 (crf 18, medium, yuv420p), the clip's audio copied in.
    frames_dir = store.root / "frames"

    def ours_encode() -> float:
        start = time.perf_counter()
        encode_video(store, "frames", "out.mp4", audio_from_key="clip.mp4", fps=info.fps)
        return time.perf_counter() - start

    def plain_encode() -> float:
        nonlocal ffmpeg_rss
        fps = f"{info.fps.numerator}/{info.fps.denominator}"
        seconds, rss = _plain_ffmpeg(
            [
                "-framerate",
                fps,
                "-i",
                str(frames_dir / "%08d.png"),
                "-i",
                str(CLIP),
                "-map",
                "0:v",
                "-map",
                "1:a?",
                "-c:v",
                "libx264",
                "-crf",
                "18",
                "-preset",
                "medium",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "copy",
                "-movflags",
                "+faststart",
                str(workdir / "plain.mp4"),
            ]
        )
        ffmpeg_rss = max(ffmpeg_rss, rss)
        return seconds

    ours, base = _compare(repeats, ours_encode, plain_encode)
    rows.append(
        _row(
            "media.encode",
            frames,
            ours,
            base,
            "ffmpeg -i %08d.png -c:v libx264 -c:a copy",
            max(_self_rss_mb(), _children_rss_mb()),
        )
    )
    for row in rows:
        row["baseline_peak_rss_mb"] = round(ffmpeg_rss, 1)
    return rows


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description="media benchmark")
    parser.add_argument("--full", action="store_true", help="whole clip, best of 2 (default: quick)")
    cli = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for result in run(quick=not cli.full, workdir=Path(tmp)):
            print(json.dumps(result))
