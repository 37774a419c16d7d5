"""Converter core (no gRPC): swap the faces of stored frames with a trained model.

``convert_frames`` checks everything it can before writing a single output (options, frames,
alignments against the frames, the model), plans every face (temporal smoothing over the whole
alignments, so a video split into ranges converts the same as in one piece), then runs the
pipelined engine (services/converter/pipeline.py) over the requested frame range.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import cv2
import grpc
import numpy as np
import torch
from prometheus_client import Counter, Gauge

from faceswap.composite import appearance
from faceswap.composite.face_bank import FaceBank, bank_from_alignments, require_faces_b
from faceswap.composite.smooth import build_tracks, smooth_tracks, smoothed_matrix
from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.face.alignments import Alignments
from faceswap.face.images import decode_image
from faceswap.media.store import list_frame_keys, select_range
from faceswap.options.convert import ConvertOptions
from faceswap.storage import ObjectStore, join_key, validate_prefix
from services.common.metrics import StageTimer
from services.converter.compose import FacePlan, refit_matrix
from services.converter.pipeline import Engine, FrameError, FrameTask, RunStats

log = logging.getLogger("faceswap.converter")

__all__ = [
    "ConvertOptions",
    "ConvertSummary",
    "FrameError",
    "build_plan",
    "convert_frames",
    "load_model",
    "run_engine",
]

FRAMES_TOTAL = Counter(
    "faceswap_converter_frames_total", "Frames written by the converter", ["result"]
)  # result: swapped | passed | error
FACES_SWAPPED = Counter("faceswap_converter_faces_swapped_total", "Faces swapped into frames")
STAGE_SECONDS = Counter(
    "faceswap_converter_stage_seconds_total",
    "Seconds spent per converter stage (summed over threads)",
    ["stage"],
)
FRAMES_PER_SECOND = Gauge("faceswap_converter_frames_per_second", "Throughput of the last conversion")
BATCHES = Counter("faceswap_converter_batches_total", "Inference batches run")

PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # lossless; level 1 is ~3x faster than the default 3
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 95]


@dataclass
class ConvertSummary:
    frames_total: int = 0  # frames written (swapped + passed through)
    frames_converted: int = 0  # frames with at least one face swapped
    faces_swapped: int = 0
    frame_errors: list[FrameError] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    frames_per_second: float = 0.0
    output_prefix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_total": self.frames_total,
            "frames_converted": self.frames_converted,
            "faces_swapped": self.faces_swapped,
            "frame_errors": [
                {"index": e.index, "name": e.name, "code": e.code.name, "message": e.message}
                for e in self.frame_errors
            ],
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "wall_seconds": round(self.wall_seconds, 3),
            "frames_per_second": round(self.frames_per_second, 2),
            "output_prefix": self.output_prefix,
        }


# -- model ---------------------------------------------------------------------------------------
def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(
    store: ObjectStore, model_prefix: str, options: ConvertOptions, device: str = "auto"
) -> tuple[torch.nn.Module | None, dict[str, Any]]:
    """The trained model for inference. NotFound / FailedPrecondition when missing or unusable.

    The retrieval method needs none: (None, {}) then, whatever model_prefix says."""
    if not options.needs_model:
        return None, {}
    from faceswap.model.checkpoint import load_for_inference

    model, config = load_for_inference(store, model_prefix.strip("/"), device=pick_device(device))
    size = int(getattr(model, "size", config.get("size", 0)) or 0)
    decoders = getattr(model, "decoders", {})
    if not size or options.identity not in decoders:
        raise FailedPrecondition(
            f"model at {model_prefix!r} is not a two-decoder face swap model (no decoder {options.identity!r})"
        )
    if options.mask == "predicted" and not config.get("model", {}).get("mask", False):
        raise FailedPrecondition(
            f"mask 'predicted' needs a model that predicts a mask; preset {config.get('preset')!r} does not"
        )
    config = {**config, "size": size, "coverage": float(config.get("coverage", 0.75) or 0.75)}
    return model, config


# -- planning ------------------------------------------------------------------------------------
def build_plan(
    alignments: Alignments,
    options: ConvertOptions,
    model_size: int,
    model_coverage: float,
    fps: float = 30.0,
    cuts: tuple[int, ...] = (),
) -> dict[int, list[FacePlan]]:
    """Faces to swap per frame index, with smoothed landmarks and matrices on the model's square.

    Frames whose status is not "ok" (no_face, filtered, unreadable) get no faces: they pass through.
    Smoothing runs over the whole alignments, so any frame range gets the same result."""
    frames = sorted(alignments.frames, key=lambda f: f.index)
    for f in frames:
        for face in f.faces if f.status == "ok" else []:
            lm, m = np.asarray(face.landmarks, dtype=object), np.asarray(face.matrix, dtype=object)
            if lm.shape != (68, 2) or m.shape != (2, 3):
                raise InvalidArgument(
                    f"frame {f.index}: a face needs 68 x 2 landmarks and a 2 x 3 matrix, got "
                    f"{lm.shape} and {m.shape}",
                    field="alignments",
                )
    faces = [
        (f.index, [face.landmarks_array for face in f.faces] if f.status == "ok" else []) for f in frames
    ]
    smoothed = smooth_tracks(build_tracks(faces, cuts=cuts), options.smooth, fps)
    plan: dict[int, list[FacePlan]] = {}
    for f in frames:
        if f.status != "ok" or not f.faces:
            continue
        items = []
        for slot, face in enumerate(f.faces):
            raw = face.landmarks_array
            lm = smoothed.get((f.index, slot), raw)
            matrix = smoothed_matrix(face.matrix_array, raw, lm)
            matrix = refit_matrix(matrix, alignments.size, alignments.coverage, model_size, model_coverage)
            items.append(FacePlan(slot=slot, matrix=matrix, landmarks=lm))
        plan[f.index] = items
    return plan


def attach_sources(plan: dict[int, list[FacePlan]], bank: FaceBank, cuts: tuple[int, ...] = ()) -> None:
    """Chooses B's faces for every planned face: one whole-sequence choice per face slot, so a
    still face keeps one face of B and a change of expression switches (with a cross-fade)."""
    order = sorted(plan)
    slots = {p.slot for i in order for p in plan[i]}
    for slot in slots:
        faces = [(i, p) for i in order for p in plan[i] if p.slot == slot]
        queries = appearance.normalise(appearance.describe(np.stack([p.landmarks for _, p in faces])))
        # A cut in A's video lets the choice jump freely there (sequence positions, not indices).
        positions = {i: n for n, (i, _) in enumerate(faces)}
        cut_steps = tuple(positions[c] for c in cuts if c in positions)
        # A gap in A's frames (no face) also lets the choice start afresh.
        gaps = tuple(n for n in range(1, len(faces)) if faces[n][0] - faces[n - 1][0] > 1)
        chosen = appearance.plan_sources(queries, bank.index, cuts=cut_steps + gaps)
        for (_, p), sources in zip(faces, chosen, strict=True):
            p.sources = sources


def match_alignments(alignments: Alignments, frames: list[tuple[int, str]]) -> None:
    """FailedPrecondition unless every frame has a record and the records name these frames."""
    records = alignments.by_index()
    missing = [(i, k) for i, k in frames if i not in records]
    if missing:
        i, k = missing[0]
        raise FailedPrecondition(
            f"alignments do not match the frames: {len(missing)} of {len(frames)} frames have no record "
            f"(first: frame {i}, {k!r}); run the detector on these frames"
        )
    for i, k in frames:
        rec_name = PurePosixPath(records[i].key).name if records[i].key else ""
        if rec_name and rec_name != PurePosixPath(k).name:
            raise FailedPrecondition(
                f"alignments do not match the frames: frame {i} is {k!r} but the alignments name "
                f"{records[i].key!r}"
            )


def check_frame_size(image: np.ndarray | None, key: str, width: int, height: int) -> None:
    if image is None:
        raise InvalidArgument(f"frame {key!r} cannot be decoded as an image", field="frames_prefix")
    h, w = image.shape[:2]
    if width and height and (w, h) != (width, height):
        raise FailedPrecondition(
            f"frames do not match the alignments: {key!r} is {w}x{h}, the alignments were made on "
            f"{width}x{height} frames"
        )


# -- running -------------------------------------------------------------------------------------
class StoreSink:
    """Writes each frame under output_prefix with its input name; untouched frames byte for byte."""

    def __init__(self, store: ObjectStore, frames_prefix: str, output_prefix: str) -> None:
        self.store, self.frames_prefix, self.output_prefix = store, frames_prefix, output_prefix

    def output_key(self, key: str) -> str:
        rel = key[len(self.frames_prefix) + 1 :] if self.frames_prefix else key
        return join_key(self.output_prefix, rel)

    def encode(self, task: FrameTask, image: np.ndarray | None) -> bytes | None:
        if image is None:
            if task.raw is not None:
                return task.raw  # untouched: the input's bytes, not a re-encode
            image = task.image
            if image is None:
                return None
        ext = PurePosixPath(task.name).suffix.lower() or ".png"
        params = PNG_PARAMS if ext == ".png" else JPEG_PARAMS if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext, image, params)
        if not ok:
            raise RuntimeError(f"cannot encode {task.name} as {ext}")
        return buf.tobytes()

    def write(self, task: FrameTask, payload: bytes) -> None:
        self.store.put_bytes(self.output_key(task.name), payload)


def run_engine(
    model: torch.nn.Module | None,
    config: dict[str, Any],
    options: ConvertOptions,
    tasks: Iterator[FrameTask] | list[FrameTask],
    load: Callable[[FrameTask], None],
    sink: Any,
    total: int,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int = 0,
    bank: FaceBank | None = None,
) -> ConvertSummary:
    """Runs the engine and turns its stats into a summary (and Prometheus metrics)."""
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    engine = Engine(model, int(config.get("size", 64)), options, device=device, workers=workers, bank=bank)
    done = [0]

    def on_frame(task: FrameTask) -> None:
        done[0] += 1
        result = "error" if task.error else "swapped" if task.swapped else "passed"
        FRAMES_TOTAL.labels(result).inc()
        if task.swapped:
            FACES_SWAPPED.inc(task.swapped)
        if on_progress:
            on_progress(done[0], total)

    with StageTimer("convert"):
        stats = engine.run(tasks, load, sink, on_frame)
    return summarize(stats)


def summarize(stats: RunStats) -> ConvertSummary:
    for stage, seconds in stats.stage_seconds.items():
        STAGE_SECONDS.labels(stage).inc(seconds)
    BATCHES.inc(stats.batches)
    fps = stats.frames / stats.wall_seconds if stats.wall_seconds > 0 else 0.0
    FRAMES_PER_SECOND.set(fps)
    return ConvertSummary(
        frames_total=stats.frames,
        frames_converted=stats.frames_swapped,
        faces_swapped=stats.faces_swapped,
        frame_errors=list(stats.errors),
        stage_seconds=dict(stats.stage_seconds),
        wall_seconds=stats.wall_seconds,
        frames_per_second=fps,
    )


def convert_frames(
    store: ObjectStore,
    frames_prefix: str,
    alignments_key: str,
    model_prefix: str,
    output_prefix: str,
    options: ConvertOptions | None = None,
    start: int = 0,
    end: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    *,
    step: int = 1,
    output_store: ObjectStore | None = None,
    model_store: ObjectStore | None = None,
    alignments_store: ObjectStore | None = None,
    device: str = "auto",
    workers: int = 0,
    fps: float = 30.0,
    faces_b: str = "",
    faces_b_store: ObjectStore | None = None,
    bank: FaceBank | None = None,
) -> ConvertSummary:
    """Converts frames [start, end) (step) under frames_prefix into output_prefix.

    ``store`` holds the frames; output, model and alignments default to the same store (the CLI
    passes separate folder stores). ``on_progress(done, total)`` is called per frame written.
    ``faces_b`` is B's alignments key (in ``faces_b_store``, default ``store``) for the methods
    that render B from B's own frames.
    Raises InvalidArgument / NotFound / FailedPrecondition before any output is written."""
    options = (options or ConvertOptions()).validate()
    if options.needs_faces_b and bank is None:
        require_faces_b(options.method, faces_b)
    out_store = output_store or store
    frames_prefix = validate_prefix(frames_prefix)
    try:
        output_prefix = validate_prefix(output_prefix)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field="output_prefix") from None
    if out_store is store and output_prefix == frames_prefix:
        raise InvalidArgument(
            "must differ from frames_prefix (inputs are never overwritten)", field="output_prefix"
        )
    if not alignments_key:
        raise InvalidArgument("is required", field="alignments")

    frames = list_frame_keys(store, frames_prefix)
    if not frames:
        raise NotFound(f"no frames (png/jpg/webp) under {frames_prefix!r}")
    selected = select_range(frames, start, end, step)
    if not selected:
        raise InvalidArgument(
            f"no frames in range [{start}, {end if end is not None else 'end'}) "
            f"(frames {frames[0][0]}..{frames[-1][0]})",
            field="range",
        )
    a_store = alignments_store or store
    try:
        raw_alignments = a_store.get_bytes(alignments_key)
    except NotFound:
        raise NotFound(f"alignments {alignments_key!r} not found: run the detector first") from None
    alignments = Alignments.loads(raw_alignments)
    match_alignments(alignments, selected)
    model, config = load_model(model_store or store, model_prefix, options, device)
    config = config or {"size": alignments.size, "coverage": alignments.coverage}
    plan = build_plan(alignments, options, int(config["size"]), float(config["coverage"]), fps=fps)
    if options.needs_faces_b:
        bank = bank or bank_from_alignments(faces_b_store or store, faces_b)
        attach_sources(plan, bank)
    records = alignments.by_index()

    # One frame decoded up front: a video of another size fails now, not once per frame.
    first = next(((i, k) for i, k in selected if plan.get(i)), None)
    if first is not None:
        rec = records[first[0]]
        check_frame_size(decode_image(store.get_bytes(first[1])), first[1], rec.width, rec.height)

    tasks = [
        FrameTask(index=i, name=k, faces=plan.get(i, []), width=records[i].width, height=records[i].height)
        for i, k in selected
    ]

    def load(task: FrameTask) -> None:
        task.raw = store.get_bytes(task.name)

    sink = StoreSink(out_store, frames_prefix, output_prefix)
    summary = run_engine(
        model, config, options, tasks, load, sink, len(tasks), on_progress, workers, bank=bank
    )
    summary.output_prefix = output_prefix
    log.info("converted frames", extra=summary.to_dict() | {"frame_errors": len(summary.frame_errors)})
    return summary


def error_codes(summary: ConvertSummary) -> list[tuple[grpc.StatusCode, str, str]]:
    return [(e.code, e.message, e.name) for e in summary.frame_errors]
