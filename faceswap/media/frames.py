"""Streaming frames through one ffmpeg process each way: decode to raw BGR, encode from raw BGR.

Memory stays bounded by a few frames whatever the video's length: frames are read from / written to a
pipe one at a time, and the OS pipe gives back-pressure.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from faceswap.errors import InvalidArgument, NotFound, ServiceError
from faceswap.media import events
from faceswap.media.ffmpeg import (
    StderrTail,
    encoder_names,
    find_ffmpeg,
    find_ffprobe,
    input_args,
    passthrough_args,
    summarize_stderr,
)
from faceswap.media.probe import NoVideoStream, VideoInfo, parse_rate, probe, run_tool

_PIPE_BYTES = 1 << 20  # a bigger pipe means fewer context switches per frame
_F_SETPIPE_SZ = 1031


def _widen_pipe(stream: object) -> None:
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[attr-defined]


def validate_range(start: int, end: int | None, step: int) -> None:
    if start < 0:
        raise InvalidArgument(f"start must be >= 0, got {start}", field="range.start")
    if step < 1:
        raise InvalidArgument(f"step must be >= 1, got {step}", field="range.step")
    if end is not None and end <= start:
        raise InvalidArgument(f"end ({end}) must be greater than start ({start})", field="range.end")


def selected_indices(frame_count: int, start: int = 0, end: int | None = None, step: int = 1) -> range:
    stop = frame_count if end is None else min(end, frame_count)
    return range(start, max(start, stop), step)


def read_frames(
    path: str | Path,
    start: int = 0,
    end: int | None = None,
    step: int = 1,
    *,
    info: VideoInfo | None = None,
    label: str | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (frame_number, BGR uint8 HxWx3) for frames start, start+step, ... < end.

    One ffmpeg process decodes and pipes raw frames; rotation metadata is applied (frames come out
    the way the video is displayed). Closing the iterator early stops ffmpeg.
    """
    validate_range(start, end, step)
    label = label or os.path.basename(str(path))
    info = info or probe(path, label=label)
    wanted = selected_indices(info.frame_count, start, end, step) if end is not None else None
    ffmpeg = find_ffmpeg()
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error"]
    # A late start seeks to the keyframe before it instead of decoding from frame 0; the select
    # filter then counts frames from that keyframe's number.
    seek = seek_point(path, info, start)
    first = 0
    if seek is not None:
        seconds, first = seek
        cmd += ["-ss", f"{seconds:.6f}"]
    cmd += [*input_args(path, info.container), "-map", f"0:{info.video_stream_index}", "-an", "-sn", "-dn"]
    conditions = []
    if start > first:
        conditions.append(f"gte(n,{start - first})")
    if end is not None:
        conditions.append(f"lt(n,{end - first})")
    if step > 1:
        conditions.append(f"not(mod(n-{start - first},{step}))")
    # The select filter drops unwanted frames before colour conversion and the pipe; the scale pins
    # the frame size (a no-op normally) so a mid-stream size change cannot misalign the raw pipe.
    filters = ["select='" + "*".join(conditions) + "'"] if conditions else []
    cmd += ["-vf", ",".join([*filters, f"scale={info.width}:{info.height}"])]
    if wanted is not None:
        cmd += ["-frames:v", str(len(wanted))]  # stop decoding once the range is done
    # passthrough: exactly the decoded frames, no duplicates/drops to force a constant rate.
    cmd += [*passthrough_args(ffmpeg), "-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    frame_bytes = info.width * info.height * 3
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    _widen_pipe(proc.stdout)
    tail = StderrTail(proc.stderr)
    number = start
    produced = 0
    try:
        while True:
            buf = bytearray(frame_bytes)
            view = memoryview(buf)
            got = 0
            while got < frame_bytes:
                n = proc.stdout.readinto(view[got:])
                if not n:
                    break
                got += n
            if got == 0:
                break
            if got < frame_bytes:
                proc.wait()
                raise InvalidArgument(
                    f"{label!r}: frame {number} is incomplete: {summarize_stderr(tail.text(), str(path))}",
                    field="video",
                )
            events.count("frames_decoded")
            events.count("bytes", frame_bytes, "decoded")
            yield number, np.frombuffer(buf, dtype=np.uint8).reshape(info.height, info.width, 3)
            produced += 1
            number += step
        rc = proc.wait()
        expected = len(
            wanted if wanted is not None else selected_indices(info.frame_count, start, None, step)
        )
        errors = tail.text() if rc != 0 or produced < expected else ""
        # A non-zero exit, or fewer frames than the header promised *with* decoder errors (a file cut
        # short), is a failure; a short count without errors is just a header that over-counts.
        if rc != 0 or errors.strip():
            raise InvalidArgument(
                f"{label!r}: decoding failed after {produced} of {expected} frames: "
                f"{summarize_stderr(errors, str(path))}",
                field="video",
            )
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


SEEK_MIN_SECONDS = 2.0  # below this, decoding from frame 0 costs less than listing the packets


def seek_point(path: str | Path, info: VideoInfo, start: int) -> tuple[float, int] | None:
    """(-ss seconds, number of the first frame ffmpeg then outputs) for starting near frame start.

    Frame numbers are positions in presentation order of the video packets (what probe counts), so
    the keyframe's number is exact; the seek lands half a frame before the keyframe's timestamp so
    rounding cannot skip it. None when seeking is not worth it or the packets cannot be mapped.
    """
    ffprobe = find_ffprobe()
    if ffprobe is None or start < SEEK_MIN_SECONDS * float(info.fps) or start >= info.frame_count:
        return None
    cmd = [ffprobe, "-v", "error", "-select_streams", str(info.video_stream_index)]
    cmd += ["-show_entries", "packet=pts,flags:stream=time_base:format=start_time", "-of", "json"]
    cmd += input_args(path, info.container)
    proc = run_tool(cmd)
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout)
        tb_num, tb_den = (int(x) for x in data["streams"][0]["time_base"].split("/"))
        origin = float(data.get("format", {}).get("start_time", 0.0) or 0.0)
        # Packets an edit list discards (flag D) are never output: they get no frame number.
        packets = sorted(
            (int(p["pts"]), "K" in p.get("flags", ""))
            for p in data["packets"]
            if "D" not in p.get("flags", "")
        )
    except (KeyError, ValueError, IndexError, TypeError):
        return None  # e.g. packets without pts
    if len(packets) != info.frame_count:
        return None
    key = max((i for i, (_, is_key) in enumerate(packets[: start + 1]) if is_key), default=0)
    if key == 0:
        return None
    gap = packets[key][0] - packets[key - 1][0]
    seconds = (packets[key][0] - gap / 2) * tb_num / tb_den - origin
    return (seconds, key) if seconds > 0 else None


# Audio codecs a container takes as a stream copy; anything else is re-encoded.
_COPYABLE_AUDIO = {
    ".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus"},
    ".m4v": {"aac", "mp3", "alac", "ac3", "eac3"},
    ".mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": None,  # Matroska takes anything
    ".webm": {"opus", "vorbis"},
    ".avi": {"mp3", "ac3", "pcm_s16le"},
}
_REENCODE_AUDIO = {".webm": ["-c:a", "libopus", "-b:a", "128k"]}
_CRF_CODECS = ("libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1")
_PRESET_CODECS = ("libx264", "libx264rgb", "libx265")


def audio_args(output_suffix: str, audio_codec: str) -> list[str]:
    """Stream copy where the container allows the codec, else a re-encode the container takes."""
    allowed = _COPYABLE_AUDIO.get(output_suffix.lower(), set())
    if allowed is None or audio_codec in allowed:
        return ["-c:a", "copy"]
    return _REENCODE_AUDIO.get(output_suffix.lower(), ["-c:a", "aac", "-b:a", "192k"])


class VideoWriter:
    """Encodes BGR frames through one ffmpeg process; muxes audio_from's audio; publishes atomically.

    Use as a context manager. The file appears at path only after a successful close; an error (or an
    exception inside the with-block) leaves nothing behind.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | str | float,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int | None = 18,
        preset: str | None = "medium",
        pix_fmt: str = "yuv420p",
        audio_from: str | Path | None = None,
        *,
        audio_label: str | None = None,
        audio_info: VideoInfo | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = parse_rate(fps)
        if width <= 0 or height <= 0:
            raise InvalidArgument(f"frame size {width}x{height} is not valid", field="size")
        self.width, self.height = int(width), int(height)
        ffmpeg = find_ffmpeg()
        if codec not in encoder_names(ffmpeg):
            raise InvalidArgument(f"unknown or unavailable encoder {codec!r}", field="codec")
        if crf is not None and not 0 <= crf <= 63:
            raise InvalidArgument(f"crf must be within 0..63, got {crf}", field="crf")
        suffix = self.path.suffix.lower()
        if not suffix:
            raise InvalidArgument(
                f"output {self.path.name!r} needs an extension (.mp4, .mkv)", field="output"
            )
        self.frames_written = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._tail: StderrTail | None = None
        self._closed = False

        # 4:2:0 output of an even size: frames go down the pipe as I420, converted by OpenCV
        # (~0.6 ms for 720p, and as exact as swscale) instead of bgr24 converted by ffmpeg,
        # which cost more than the MPEG-4 encode itself; half the bytes through the pipe too.
        self._i420 = pix_fmt == "yuv420p" and self.width % 2 == 0 and self.height % 2 == 0
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "yuv420p" if self._i420 else "bgr24"]
        cmd += ["-s", f"{self.width}x{self.height}"]
        cmd += ["-framerate", f"{self.fps.numerator}/{self.fps.denominator}"]
        cmd += ["-protocol_whitelist", "pipe", "-i", "pipe:0"]
        maps = ["-map", "0:v:0"]
        audio: list[str] = []
        if audio_from is not None:
            source = audio_info or probe_audio_source(audio_from, audio_label)
            if source.has_audio:
                cmd += input_args(audio_from, source.container or None)
                maps += ["-map", "1:a?"]
                audio = audio_args(suffix, source.audio_codec)
        cmd += [*maps, "-c:v", codec]
        if crf is not None and codec in _CRF_CODECS:
            cmd += ["-crf", str(crf)]
            if codec in ("libvpx-vp9", "libvpx"):
                cmd += ["-b:v", "0"]  # constant quality mode
        if preset and codec in _PRESET_CODECS:
            cmd += ["-preset", preset]
        if pix_fmt:
            cmd += ["-pix_fmt", pix_fmt]
        if pix_fmt.endswith(("420p", "420p10le")) and (self.width % 2 or self.height % 2):
            # 4:2:0 needs even sizes: pad one pixel rather than fail.
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        cmd += audio
        if suffix in (".mp4", ".mov", ".m4v"):
            cmd += ["-movflags", "+faststart"]
        cmd += list(extra_args or [])
        self._cmd = cmd

    def open(self) -> VideoWriter:
        if self._proc is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix
        )
        os.close(fd)
        self._tmp = Path(tmp)
        self._proc = subprocess.Popen(
            [*self._cmd, str(self._tmp)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdin is not None and self._proc.stderr is not None
        _widen_pipe(self._proc.stdin)
        self._tail = StderrTail(self._proc.stderr)
        return self

    def __enter__(self) -> VideoWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise InvalidArgument(
                f"frame {self.frames_written} is {frame.shape} {frame.dtype}, "
                f"expected ({self.height}, {self.width}, 3) uint8 BGR",
                field="frame",
            )
        if self._proc is None:
            self.open()
        data = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420) if self._i420 else np.ascontiguousarray(frame)
        try:
            self._proc.stdin.write(memoryview(data).cast("B"))  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            self.abort()
            raise self._failure() from None
        self.frames_written += 1
        events.count("frames_encoded")
        events.count("bytes", data.nbytes, "encoded_input")

    def close(self) -> Path:
        """Finishes the file and moves it into place. Raises (and leaves nothing) when ffmpeg failed."""
        if self._closed:
            return self.path
        if self._proc is None:
            self.open()
        assert self._proc is not None and self._proc.stdin is not None and self._tmp is not None
        if self.frames_written == 0:
            self.abort()
            raise InvalidArgument("no frames were written", field="frames")
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self._proc.wait()
        if rc != 0:
            self.abort()
            raise self._failure()
        os.replace(self._tmp, self.path)
        self._closed = True
        events.count("bytes", self.path.stat().st_size, "encoded")
        return self.path

    def abort(self) -> None:
        """Stops ffmpeg and removes the partial output."""
        self._closed = True
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __del__(self) -> None:
        # Safety net for a writer dropped without close(): no ffmpeg left running, no temp file left.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.abort()

    def _failure(self) -> ServiceError:
        reason = summarize_stderr(self._tail.text() if self._tail else "", str(self._tmp))
        return InvalidArgument(f"encoding {self.path.name!r} failed: {reason}", field="output")


def probe_audio_source(path: str | Path, label: str | None = None) -> VideoInfo:
    """The audio source's facts; a plain audio file (no video stream) is fine here."""
    label = label or os.path.basename(str(path))
    try:
        return probe(path, label=label)
    except NotFound:
        raise NotFound(f"audio source {label!r} not found") from None
    except NoVideoStream as exc:
        if exc.audio_codec is None:
            raise InvalidArgument(exc.message.removeprefix("video: "), field="audio_from") from None
        # Only the audio codec matters here (stream copy or re-encode).
        return VideoInfo(0.0, Fraction(25), 0, 0, 0, audio_codec=exc.audio_codec, has_audio=True)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message.removeprefix("video: "), field="audio_from") from None
