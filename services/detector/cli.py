"""`faceswap extract`: aligned faces + alignments.json from frames, photos or a video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceswap.face.alignments import FrameRecord
from faceswap.face.extract import extract_from_path
from faceswap.options import add_arguments, from_args
from faceswap.options.detect import DetectOptions

DEFAULT_DETECT_MAX_SIDE = 640


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="detect, align and save faces (a face set) from frames, photos or a video",
        description="Detects faces (dlib HOG or CNN), fits 68 landmarks, aligns them to the mean face "
        "and writes FACES_DIR/faces/*.png plus FACES_DIR/alignments.json.",
    )
    p.add_argument(
        "-i", "--input", required=True, type=Path, help="frames folder, photos folder or video file"
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, help="output folder (faces/ + alignments.json)"
    )
    p.add_argument(
        "--ref", nargs="+", default=[], metavar="PHOTO", help="reference photo(s): keep only this person"
    )
    # One flag per option of the library's definition (ranges and choices in the help).
    add_arguments(p, DetectOptions, base=DetectOptions(detect_max_side=DEFAULT_DETECT_MAX_SIDE))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = from_args(DetectOptions, args, reference_photos=[str(p) for p in args.ref])
    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="frame", desc="extract")

    def progress(_done: int, record: FrameRecord) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(faces=len(record.faces))

    try:
        summary = extract_from_path(args.input, args.output, options, on_progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(
        f"{summary.frames_total} frames, {summary.faces_total} faces "
        f"({summary.faces_tracked} tracked, {summary.faces_interpolated} interpolated, "
        f"{summary.faces_rotated} rotated), "
        f"{summary.frames_without_face} without a face ({summary.frames_filtered} filtered), "
        f"{summary.frames_unreadable} unreadable, {summary.frames_per_second:.2f} frames/s"
    )
    print(f"wrote {args.output / 'faces'} and {args.output / summary.alignments_key}")
    return 0
