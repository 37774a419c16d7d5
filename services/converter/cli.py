"""`faceswap convert`: swap faces in a frames folder or a video, into a folder or a video."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from faceswap.composite.face_bank import FaceBank
from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.face.alignments import ALIGNMENTS_NAME
from faceswap.options import add_arguments, from_args
from faceswap.options.convert import METHODS, ConvertOptions
from faceswap.storage import LocalStore


def register(sub: argparse._SubParsersAction) -> None:
    defaults = ConvertOptions()
    p = sub.add_parser(
        "convert",
        help="swap faces in frames or a video with a trained model",
        description="Swap A's face for B's in a frames folder or a video. With a video input and no "
        "--alignments the detector runs first; with a video output (.mp4/.mkv/...) the source's audio "
        "is copied in.",
    )
    p.add_argument("-i", "--input", required=True, help="frames folder or video file")
    p.add_argument("-o", "--output", required=True, help="output folder or video file (.mp4, .mkv, ...)")
    p.add_argument(
        "-m", "--model", default=None,
        help="model folder (checkpoint.pt) or a .pt file (methods hybrid and autoencoder)",
    )  # fmt: skip
    p.add_argument(
        "--method", choices=list(METHODS), default=None,
        help=f"retrieval: B's real faces from --faces-b, relit with A's light (no model); hybrid: "
        "B's real faces, and the model's face where B's footage lacks A's expression; autoencoder: "
        f"the model's face (default: {defaults.method} with --faces-b, autoencoder with only -m)",
    )  # fmt: skip
    p.add_argument(
        "--faces-b", default=None,
        help="B's footage for the retrieval/hybrid methods: a video, a photos folder, or a frames "
        "folder with its alignments.json",
    )  # fmt: skip
    p.add_argument("--alignments", help="alignments.json (default: INPUT/alignments.json for folders)")
    # --mask, --mask-erode, --mask-blur, --color, --blend, --smooth, --direction, --batch-size,
    # --geometry: from the one definition (faceswap/options/convert.py), with its ranges and choices.
    add_arguments(p, ConvertOptions)
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--end", type=int, default=None, help="frame index to stop before")
    p.add_argument("--fps", default=None, help="output frame rate for frames -> video (default: index.json)")
    p.add_argument("--audio-from", default=None, help="audio source for frames -> video")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> ConvertOptions:
    return from_args(ConvertOptions, args, method=_method(args))


def _method(args: argparse.Namespace) -> str:
    """An explicit --method wins; a model without B's footage means the classic autoencoder."""
    if args.method:
        return args.method
    if args.model and not args.faces_b:
        return "autoencoder"
    return ConvertOptions().method


def _file_store(path: Path) -> tuple[LocalStore, str]:
    """A single file as (folder store, key)."""
    return LocalStore(path.parent, ""), path.name


def _model_store(model: Path) -> tuple[LocalStore, str]:
    if model.is_file():
        return _file_store(model)
    if not model.is_dir():
        raise NotFound(f"model {str(model)!r} not found")
    return LocalStore(model, ""), ""


class _Progress:
    def __init__(self, desc: str, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, done: int, total: int | None = None) -> None:
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _bank(path_arg: str) -> FaceBank:
    """B's face bank from a video, a photos folder or a frames folder with alignments.json."""
    from faceswap.composite.face_bank import bank_from_alignments, build_bank
    from faceswap.face.extract import detect_images, list_dir_images
    from faceswap.face.images import decode_image
    from faceswap.media.store import read_frames
    from services.converter.video import detect_video, is_video_path

    path = Path(path_arg)
    if not path.exists():
        raise NotFound(f"--faces-b {path_arg!r} not found")
    if path.is_file():
        if not is_video_path(path):
            raise InvalidArgument("--faces-b must be a video or a folder", field="faces_b")
        bar = _Progress("faces of B", None)
        alignments = detect_video(path, 0, None, lambda n: bar(n))
        bar.close()
        records = alignments.by_index()
        return build_bank(
            (
                (i, f"{i:08d}", frame, [f.landmarks_array for f in records[i].faces])
                for i, frame in read_frames(path)
                if i in records and records[i].status == "ok"
            ),
            str(path),
        )
    store = LocalStore(path, "")
    if (path / ALIGNMENTS_NAME).is_file():
        try:
            return bank_from_alignments(store, ALIGNMENTS_NAME)
        except FailedPrecondition:
            pass  # alignments of a video's crops only: detect on the images instead
    items = list_dir_images(path)
    images = [decode_image(p.read_bytes()) for _, p in items]
    records = detect_images(images)
    return build_bank(
        (
            (i, p.name, img, [f.landmarks_array for f in rec.faces])
            for (i, p), img, rec in zip(items, images, records, strict=True)
            if img is not None and rec.status == "ok"
        ),
        str(path),
    )


def run(args: argparse.Namespace) -> int:
    from faceswap.face.alignments import Alignments
    from services.converter.swap import convert_frames, load_model
    from services.converter.video import convert_video, detect_video, is_video_path

    options = _options(args)
    source, output = Path(args.input), Path(args.output)
    if options.needs_model and not args.model:
        raise InvalidArgument(f"method {options.method!r} needs a trained model (-m)", field="model")
    if options.needs_faces_b and not args.faces_b:
        raise InvalidArgument(
            f"method {options.method!r} renders B from B's own footage: give --faces-b", field="faces_b"
        )
    model_store, model_prefix = (
        _model_store(Path(args.model)) if args.model else (LocalStore(Path("."), ""), "")
    )
    if not source.exists():
        raise NotFound(f"input {str(source)!r} not found")
    if output.resolve() == source.resolve():
        raise InvalidArgument("output must differ from the input", field="output")
    video_out = is_video_path(output)

    if source.is_file():  # a video
        from faceswap.media.store import probe

        info = probe(source)  # a bad video fails here, before the detector or the model load
        total = max(0, min(args.end or info.frame_count, info.frame_count) - args.start)
        model, config = load_model(model_store, model_prefix, options, args.device)
        bank = _bank(args.faces_b) if options.needs_faces_b else None
        if args.alignments:
            store, key = _file_store(Path(args.alignments))
            alignments = Alignments.loads(store.get_bytes(key))
        else:
            bar = _Progress("detect", total)
            alignments = detect_video(source, args.start, args.end, lambda n: bar(n))
            bar.close()
        out_store = None if video_out else LocalStore(output, "")
        bar = _Progress("convert", total)
        summary = convert_video(
            source, output, model, config, alignments, options, args.start, args.end, bar, out_store,
            bank=bank,
        )  # fmt: skip
        bar.close()
    else:  # a frames folder
        frames_store = LocalStore(source, "")
        align_path = Path(args.alignments) if args.alignments else source / ALIGNMENTS_NAME
        if not align_path.is_file():
            raise NotFound(
                f"alignments {str(align_path)!r} not found: run `faceswap extract -i {source}` first "
                "or pass --alignments"
            )
        a_store, a_key = _file_store(align_path)
        tmp = Path(tempfile.mkdtemp(prefix="faceswap-convert-")) if video_out else None
        try:
            out_dir = tmp if tmp is not None else output
            bar = _Progress("convert", None)
            summary = convert_frames(
                frames_store,
                "",
                a_key,
                model_prefix,
                "",
                options,
                start=args.start,
                end=args.end,
                on_progress=lambda done, total: (setattr(bar.bar, "total", total), bar(done)),
                output_store=LocalStore(out_dir, ""),
                model_store=model_store,
                alignments_store=a_store,
                device=args.device,
                bank=_bank(args.faces_b) if options.needs_faces_b else None,
            )
            bar.close()
            if tmp is not None:
                from faceswap.media.store import encode_frames_file

                if (source / "index.json").is_file():
                    shutil.copy(source / "index.json", tmp / "index.json")
                encode_frames_file(LocalStore(tmp, ""), "", output, audio_from=args.audio_from, fps=args.fps)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return _report(summary, output, args.json)


def _report(summary, output: Path, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    import json

    if as_json:
        print(json.dumps(summary.to_dict(), indent=1))
    else:
        print(
            f"{summary.frames_total} frames -> {output} ({summary.frames_converted} with a swapped face, "
            f"{summary.faces_swapped} faces, {summary.frames_per_second:.1f} frames/s)"
        )
        for err in summary.frame_errors[:10]:
            print(f"  frame {err.index} ({err.name}): {err.code.name}: {err.message}", file=sys.stderr)
        if len(summary.frame_errors) > 10:
            print(f"  ... and {len(summary.frame_errors) - 10} more frame errors", file=sys.stderr)
    return 0
