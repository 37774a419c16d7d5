"""``faceswap evaluate``: score a swap and write the HTML/JSON quality report."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a swapped video (identity, expression, jitter, blending) and write a report",
        description="Scores SWAPPED against the original VIDEO_A and B's faces; writes a self-contained "
        "HTML report and/or JSON. With --check, exit status 1 when issue 11's thresholds fail.",
    )
    p.add_argument("--source", required=True, metavar="VIDEO_A", help="the original video of A")
    p.add_argument("--output", required=True, metavar="SWAPPED", help="the swapped video")
    p.add_argument(
        "--faces-b",
        required=True,
        nargs="+",
        metavar="DIR_OR_VIDEO",
        help="B's faces: a folder of photos/face crops, a video of B, or several such paths",
    )
    p.add_argument("--report", metavar="HTML", help="write the HTML report here")
    p.add_argument("--json", metavar="JSON", help="write the JSON report here")
    p.add_argument("--loss-log", metavar="FILE", help="training loss log (JSON, JSON lines or CSV)")
    p.add_argument("--sample-every", type=int, default=3, help="score every N-th frame (default 3)")
    p.add_argument("--max-frames", type=int, default=100, help="score at most N frames (default 100)")
    p.add_argument("--b-faces", type=int, default=20, help="B faces to embed (default 20)")
    p.add_argument("--check", action="store_true", help="exit 1 when a required threshold fails")
    p.set_defaults(func=run)


def _fmt(value: float | None, scale: float = 1.0, suffix: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * scale:.3g}{suffix}"


def run(args: argparse.Namespace) -> int:
    from services.evaluate.core import evaluate
    from services.evaluate.report import write_json, write_report

    faces_b = args.faces_b[0] if len(args.faces_b) == 1 else args.faces_b

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\revaluating frame {done}/{total}", end="", file=sys.stderr, flush=True)

    result = evaluate(
        Path(args.source),
        Path(args.output),
        faces_b,
        sample_every=args.sample_every,
        max_frames=args.max_frames,
        b_max_faces=args.b_faces,
        loss_log=args.loss_log,
        on_progress=progress,
    )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.report:
        write_report(result, args.report)
    if args.json:
        write_json(result, args.json)
    s = result.summary
    print(f"frames scored: {s['frames_sampled']} ({s['frames_with_face']} with a face), {s['seconds']} s")
    for check in result.checks:
        value = check["value"]
        shown = _fmt(value, 100, "%") if check["metric"].endswith("_share") else _fmt(value)
        status = ("PASS" if check["passed"] else "FAIL") if check["required"] else "info"
        print(f"  {status:4}  {check['label']}: {shown} ({check['op']} {check['threshold']})")
    for note in result.notes:
        print(f"  note: {note}")
    if args.report:
        print(f"report: {args.report}")
    if args.json:
        print(f"json: {args.json}")
    return 1 if args.check and not result.passed else 0
