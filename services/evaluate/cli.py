"""``faceswap evaluate``: score a swap (or compare several) and write the HTML/JSON quality report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceswap.errors import InvalidArgument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a swapped video (identity, realism, expression, jitter, blending) and write a report",
        description="Scores SWAPPED against the original VIDEO_A and B's faces: does the face read as B, "
        "is it as sharp and as lit as the source's, no clipped highlights, no frame left unswapped, does "
        "the mouth follow the source's. Writes a self-contained HTML report (opening with a contact sheet "
        "of source and output face crops, also saved as <report>_sheet.png) and/or JSON. --compare "
        "NAME=VIDEO ... scores several outputs of the same source into one side-by-side report. With "
        "--check, exit status 1 when a required threshold fails (for any compared output).",
    )
    p.add_argument("--source", required=True, metavar="VIDEO_A", help="the original video of A")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", metavar="SWAPPED", help="the swapped video")
    target.add_argument(
        "--compare",
        nargs="+",
        metavar="NAME=VIDEO",
        help="several swapped videos of the same source, each named (e.g. autoencoder=a.mp4 hybrid=h.mp4)",
    )
    p.add_argument(
        "--faces-b",
        required=True,
        nargs="+",
        metavar="DIR_OR_VIDEO",
        help="B's faces: a folder of photos/face crops, a video of B, or several such paths",
    )
    p.add_argument(
        "--report", metavar="HTML", help="write the HTML report here (and <name>_sheet.png beside it)"
    )
    p.add_argument("--json", metavar="JSON", help="write the JSON report here")
    p.add_argument("--sheet", metavar="PNG", help="write the contact sheet here (default: beside --report)")
    p.add_argument("--loss-log", metavar="FILE", help="training loss log (JSON, JSON lines or CSV)")
    p.add_argument("--sample-every", type=int, default=3, help="score every N-th frame (default 3)")
    p.add_argument("--max-frames", type=int, default=100, help="score at most N frames (default 100)")
    p.add_argument("--b-faces", type=int, default=20, help="B faces to embed (default 20)")
    p.add_argument("--check", action="store_true", help="exit 1 when a required threshold fails")
    p.set_defaults(func=run)


def _parse_compare(items: list[str]) -> list[tuple[str, Path]]:
    pairs = []
    for item in items:
        name, sep, video = item.partition("=")
        if not sep or not name or not video:
            raise InvalidArgument(f"expected NAME=VIDEO, got {item!r}", field="compare")
        pairs.append((name, Path(video)))
    return pairs


def _print_checks(checks: list[dict], indent: str = "  ") -> None:
    from faceswap.evaluate.core import format_threshold, format_value

    for check in checks:
        shown = format_value(check["value"], check.get("unit", ""))
        status = ("PASS" if check["passed"] else "FAIL") if check["required"] else "info"
        print(f"{indent}{status:4}  {check['label']}: {shown} ({format_threshold(check)})")


def run(args: argparse.Namespace) -> int:
    from faceswap.evaluate.core import evaluate, evaluate_many
    from faceswap.evaluate.report import (
        write_compare_json,
        write_compare_report,
        write_json,
        write_report,
    )
    from faceswap.evaluate.sheet import encode_png

    faces_b = args.faces_b[0] if len(args.faces_b) == 1 else args.faces_b

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\revaluating frame {done}/{total}", end="", file=sys.stderr, flush=True)

    options = {
        "sample_every": args.sample_every,
        "max_frames": args.max_frames,
        "loss_log": args.loss_log,
        "on_progress": progress,
    }
    if args.compare:
        comparison = evaluate_many(
            Path(args.source), _parse_compare(args.compare), faces_b, b_max_faces=args.b_faces, **options
        )
        if sys.stderr.isatty():
            print(file=sys.stderr)
        sheet_path = None
        if args.report:
            sheet_path = write_compare_report(comparison, args.report, args.sheet)
        elif args.sheet:
            Path(args.sheet).write_bytes(encode_png(comparison.contact_sheet()))
            sheet_path = args.sheet
        if args.json:
            write_compare_json(comparison, args.json)
        for name, result in comparison.results.items():
            s = result.summary
            verdict = "PASS" if result.passed else "FAIL"
            print(f"{name}: {verdict}, {s['frames_sampled']} frames ({s['frames_with_face']} with a face)")
            _print_checks(result.checks, "    ")
        failed = not all(comparison.passed.values())
    else:
        result = evaluate(Path(args.source), Path(args.output), faces_b, b_max_faces=args.b_faces, **options)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        sheet_path = None
        if args.report:
            sheet_path = write_report(result, args.report, args.sheet)
        elif args.sheet:
            Path(args.sheet).write_bytes(encode_png(result.contact_sheet()))
            sheet_path = args.sheet
        if args.json:
            write_json(result, args.json)
        s = result.summary
        print(f"frames scored: {s['frames_sampled']} ({s['frames_with_face']} with a face), {s['seconds']} s")
        _print_checks(result.checks)
        for note in result.notes:
            print(f"  note: {note}")
        failed = not result.passed
    if args.report:
        print(f"report: {args.report}")
    if sheet_path:
        print(f"contact sheet: {sheet_path}")
    if args.json:
        print(f"json: {args.json}")
    return 1 if args.check and failed else 0
