"""`faceswap media extract|encode|probe`: the media core on local files and folders, in process."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from faceswap.errors import InvalidArgument, NotFound
from faceswap.media import store as core
from faceswap.storage import LocalStore
from services.common.cli import dispatch


def register(sub: argparse._SubParsersAction) -> None:
    media = sub.add_parser("media", help="video <-> frames with ffmpeg (extract, encode, probe)")
    msub = media.add_subparsers(dest="media_command", metavar="ACTION")
    msub.required = True

    p = msub.add_parser("extract", help="decode a video into numbered images + index.json")
    p.add_argument("video", type=Path, help="input video file")
    p.add_argument("-o", "--output", type=Path, required=True, help="frames folder (created)")
    p.add_argument("--format", default="png", choices=["png", "jpg", "webp"], help="image format (png)")
    p.add_argument("--quality", type=int, default=95, help="jpg/webp quality 1-100 (95)")
    p.add_argument("--start", type=int, default=0, help="first frame number (0)")
    p.add_argument("--end", type=int, default=None, help="stop before this frame number (end of video)")
    p.add_argument("--step", type=int, default=1, help="keep every n-th frame (1)")
    p.set_defaults(func=cmd_extract)

    p = msub.add_parser("encode", help="encode a folder of frames into a video with the source's audio")
    p.add_argument("frames", type=Path, help="folder of .png/.jpg/.webp frames (name order)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output video (.mp4, .mkv, ...)")
    p.add_argument("--audio-from", type=Path, default=None, help="video/audio whose audio is copied in")
    p.add_argument(
        "--fps", default=None, help="frame rate, e.g. 30000/1001 (default: --audio-from's, else 25)"
    )
    p.add_argument("--codec", default="libx264", help="ffmpeg video encoder (libx264)")
    p.add_argument("--crf", type=int, default=18, help="constant rate factor (18; 0 = lossless x264)")
    p.add_argument("--preset", default="medium", help="encoder preset (medium)")
    p.add_argument("--pix-fmt", default="yuv420p", help="output pixel format (yuv420p)")
    p.set_defaults(func=cmd_encode)

    p = msub.add_parser("probe", help="show a video's duration, exact fps, frame count, codecs")
    p.add_argument("video", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_probe)


def _existing_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise NotFound(f"{what} {str(path)!r} not found")
    if not path.is_file():
        raise InvalidArgument(f"{what} {str(path)!r} is not a file", field=what.replace(" ", "_"))
    return path


def _guard(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """OS errors become one-line messages (services.cli already handles ServiceError)."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except OSError as exc:
            print(
                f"faceswap: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr
            )
            return 2

    return wrapped


@_guard
def cmd_extract(args: argparse.Namespace) -> int:
    video = _existing_file(args.video, "video")
    core.probe(video, label=str(args.video))  # a bad input fails before the output folder exists
    args.output.mkdir(parents=True, exist_ok=True)
    store = LocalStore(args.output, "")
    result = core.extract_video_file(
        video, store, "", args.format, args.start, args.end, args.step, args.quality, label=str(args.video)
    )
    print(f"extracted {result.frame_count} frames at {_fps(result.info)} fps to {args.output}")
    return 0


@_guard
def cmd_encode(args: argparse.Namespace) -> int:
    if not args.frames.is_dir():
        raise NotFound(f"frames folder {str(args.frames)!r} not found")
    audio = _existing_file(args.audio_from, "audio source") if args.audio_from else None
    store = LocalStore(args.frames, "")
    count, info = core.encode_frames_file(
        store,
        "",
        args.output,
        audio,
        args.fps,
        args.codec,
        args.crf,
        args.preset,
        args.pix_fmt,
        audio_label=str(args.audio_from) if args.audio_from else None,
    )
    audio_note = f", audio {info.audio_codec}" if info.has_audio else ", no audio"
    print(f"encoded {count} frames at {_fps(info)} fps to {args.output} ({info.duration:.3f} s{audio_note})")
    return 0


@_guard
def cmd_probe(args: argparse.Namespace) -> int:
    info = core.probe(_existing_file(args.video, "video"), label=str(args.video))
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    rows = [
        ("file", str(args.video)),
        ("container", info.container),
        ("duration", f"{info.duration:.3f} s (video {info.video_duration:.3f} s)"),
        ("fps", f"{_fps(info)} ({float(info.fps):.3f})"),
        ("frames", str(info.frame_count)),
        ("size", f"{info.width}x{info.height}" + (f" (rotated {info.rotation})" if info.rotation else "")),
        ("video", f"{info.video_codec} {info.pixel_format}"),
        ("audio", f"{info.audio_codec} {info.audio_duration:.3f} s" if info.has_audio else "none"),
    ]
    for name, value in rows:
        print(f"{name:<10} {value}")
    return 0


def _fps(info: core.VideoInfo) -> str:
    return (
        f"{info.fps.numerator}/{info.fps.denominator}"
        if info.fps.denominator != 1
        else str(info.fps.numerator)
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m services.media.cli ...`: the media commands alone, without loading other services."""
    parser = argparse.ArgumentParser(prog="faceswap")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
