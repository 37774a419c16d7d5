"""`faceswap extract`: aligned faces + alignments.json from frames, photos or a video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceswap.face.alignments import FrameRecord
from faceswap.face.detect import DETECTORS
from faceswap.face.extract import DetectOptions, extract_from_path
from faceswap.face.frame_worker import FALLBACKS

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
    p.add_argument("--detector", default="hog", help=f"face detector: {' | '.join(DETECTORS)} (default hog)")
    p.add_argument(
        "--upsample", type=int, default=1, help="detector upsampling, finds smaller faces (default 1)"
    )
    p.add_argument("--size", type=int, default=64, help="aligned face size in px, 64..512 (default 64)")
    p.add_argument(
        "--coverage", type=float, default=0.75, help="share of the crop the face spans (default 0.75)"
    )
    p.add_argument(
        "--ref", nargs="+", default=[], metavar="PHOTO", help="reference photo(s): keep only this person"
    )
    p.add_argument("--threshold", type=float, default=0.6, help="identity distance threshold (default 0.6)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per core)")
    p.add_argument(
        "--detect-max-side",
        type=int,
        default=DEFAULT_DETECT_MAX_SIDE,
        help="video fast path: detect on a copy N px on the long side where the faces seen so far are "
        f"large enough there, 0 = always the full frame; photos: always full (default {DEFAULT_DETECT_MAX_SIDE})",
    )
    p.add_argument(
        "--min-face",
        type=int,
        default=0,
        metavar="PX",
        help="smallest face to find (box width, frame px); sets the detection scale "
        "(default 0: full resolution until faces are seen, then by the smallest seen)",
    )
    p.add_argument(
        "--recover-frames",
        type=int,
        default=5,
        metavar="N",
        help="video: fill runs of up to N frames the detector missed between frames with a face, "
        "by tracking (verified) or interpolation; 0 = off (default 5)",
    )
    p.add_argument(
        "--fallback",
        choices=FALLBACKS,
        default="auto",
        help="when nothing is found, retry on the frame turned 90/270/180 degrees and with the cnn "
        "detector: auto = photos only, on = every frame, off (default auto)",
    )
    p.add_argument(
        "--track-interval", type=int, default=0, help="re-detect every N frames, track between (0 = off)"
    )
    p.add_argument(
        "--min-sharpness", type=float, default=0.0, help="drop faces blurrier than this (Laplacian var)"
    )
    p.add_argument(
        "--dedupe", type=int, default=0, metavar="BITS", help="drop near-duplicate faces (pHash distance)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = DetectOptions(
        detector=args.detector,
        upsample=args.upsample,
        size=args.size,
        coverage=args.coverage,
        reference_photos=[str(p) for p in args.ref],
        identity_threshold=args.threshold,
        detect_max_side=args.detect_max_side,
        min_sharpness=args.min_sharpness,
        dedupe_distance=args.dedupe,
        track_interval=args.track_interval,
        jobs=args.jobs,
        min_face=args.min_face,
        recover_frames=args.recover_frames,
        fallback=args.fallback,
    )
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
