"""What a Kubernetes Job runs: one training run, or one chunk of a conversion.

    python -m services.k8s_worker train --faces-a P --faces-b P --model P [--options JSON]
    python -m services.k8s_worker convert --frames P --alignments K --model P --output P \
        --total-frames N --chunk-size N [--index I] [--options JSON]

Objects come from the configured store (FACESWAP_STORAGE / S3_ENDPOINT, as for the services).
A conversion pod picks its frame range from JOB_COMPLETION_INDEX, which Kubernetes sets in every pod
of an Indexed Job. Options are a JSON object whose keys are fields of TrainOptions / ConvertOptions
(from --options or $FACESWAP_WORKER_OPTIONS). The last stdout line is a JSON summary.

Exit codes: 0 done, 2 bad input (the Job's pod failure policy does not retry it), 1 anything else
(retried up to the Job's backoff limit), 143 stopped by SIGTERM after saving what it could.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from faceswap.jsonsafe import json_safe
from faceswap.options import validate
from services.common.logging import setup_logging

log = logging.getLogger("faceswap.worker")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_TERMINATED = 0, 1, 2, 143
METRICS_PORT_ENV = "FACESWAP_WORKER_METRICS_PORT"


def frame_range(index: int, chunk_size: int, total_frames: int) -> tuple[int, int]:
    """[start, end) frames of completion index `index` (same split as k8s_jobs.chunk_ranges)."""
    if chunk_size <= 0:
        raise InvalidArgument("chunk size must be positive", field="chunk_size")
    if total_frames <= 0:
        raise InvalidArgument("total frames must be positive", field="total_frames")
    start = index * chunk_size
    if index < 0 or start >= total_frames:
        raise InvalidArgument(
            f"completion index {index} is outside {total_frames} frames in chunks of {chunk_size}",
            field="index",
        )
    return start, min(start + chunk_size, total_frames)


def completion_index(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    raw = os.environ.get("JOB_COMPLETION_INDEX", "")
    if not raw:
        raise InvalidArgument("no --index and JOB_COMPLETION_INDEX is not set", field="index")
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidArgument(f"JOB_COMPLETION_INDEX={raw!r} is not an integer", field="index") from exc


def parse_options(raw: str | None) -> dict[str, Any]:
    raw = raw if raw is not None else os.environ.get("FACESWAP_WORKER_OPTIONS", "")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"options are not JSON: {exc}", field="options") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("options must be a JSON object", field="options")
    return data


def build_options(cls: type, data: dict[str, Any]) -> Any:
    """An options dataclass (faceswap/options/) from a dict, validated with its definition: an
    unknown key or a value out of its range is an error naming the field."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidArgument(
            f"unknown option(s) {', '.join(unknown)} for {cls.__name__}", field=f"options.{unknown[0]}"
        )
    try:
        options = cls(**data)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"bad options for {cls.__name__}: {exc}", field="options") from exc
    return validate(options)


def _progress_logger(stage: str, every: float = 10.0) -> Callable[..., None]:
    """A throttled progress log; takes train's TrainProgress or convert's (done, total)."""
    last = [0.0]

    def on_progress(*progress: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            value = json_safe(progress[0]) if len(progress) == 1 else list(progress)
            log.info("progress", extra={"stage": stage, "progress": value})

    return on_progress


def _stop_on_sigterm() -> threading.Event:
    # Kubernetes sends SIGTERM on preemption or drain: let the loop save a checkpoint and stop.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    return stop


def _start_metrics() -> None:
    port = int(os.environ.get(METRICS_PORT_ENV, "0") or 0)
    if port:
        from services.common.metrics import start_metrics_server

        start_metrics_server(port)


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    from faceswap.options.train import TrainOptions
    from faceswap.storage import open_store
    from services.trainer.loop import train

    options = build_options(TrainOptions, parse_options(args.options))
    stop = _stop_on_sigterm()
    result = train(
        open_store(),
        args.faces_a,
        args.faces_b,
        args.model,
        options,
        on_progress=_progress_logger("train"),
        stop=stop,
    )
    return {"stage": "train", "model": args.model, "stopped": stop.is_set(), "result": json_safe(result)}


def run_convert(args: argparse.Namespace) -> dict[str, Any]:
    index = completion_index(args.index)
    start, end = frame_range(index, args.chunk_size, args.total_frames)
    from faceswap.options.convert import ConvertOptions
    from faceswap.storage import open_store
    from services.converter.swap import convert_frames

    options = build_options(ConvertOptions, parse_options(args.options))
    summary = convert_frames(
        open_store(),
        args.frames,
        args.alignments,
        args.model,
        args.output,
        options,
        start=start,
        end=end,
        on_progress=_progress_logger("convert"),
        faces_b=args.faces_b or "",
    )
    return {"stage": "convert", "index": index, "start": start, "end": end, "result": json_safe(summary)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.k8s_worker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    train = sub.add_parser("train", help="one training run (a batch/v1 Job on a GPU node)")
    train.add_argument("--faces-a", required=True, help="face set prefix of person A")
    train.add_argument("--faces-b", required=True, help="face set prefix of person B")
    train.add_argument("--model", required=True, help="model prefix (checkpoints written here)")
    train.add_argument("--options", help="TrainOptions as JSON (else $FACESWAP_WORKER_OPTIONS)")
    train.set_defaults(func=run_train)
    convert = sub.add_parser("convert", help="one frame range of a conversion (an Indexed Job pod)")
    convert.add_argument("--frames", required=True, help="prefix of the extracted frames")
    convert.add_argument("--alignments", required=True, help="alignments.json key")
    convert.add_argument("--model", default="", help="model prefix (not needed by method retrieval)")
    convert.add_argument("--faces-b", default="", help="B's face set alignments key (real-face methods)")
    convert.add_argument("--output", required=True, help="prefix for converted frames")
    convert.add_argument("--total-frames", type=int, required=True, help="frames in the whole video")
    convert.add_argument("--chunk-size", type=int, required=True, help="frames per completion index")
    convert.add_argument("--index", type=int, help="completion index (default $JOB_COMPLETION_INDEX)")
    convert.add_argument("--options", help="ConvertOptions as JSON (else $FACESWAP_WORKER_OPTIONS)")
    convert.set_defaults(func=run_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging("worker")
    args = build_parser().parse_args(argv)
    try:
        _start_metrics()
        summary = args.func(args)
    except (InvalidArgument, NotFound, FailedPrecondition) as exc:
        log.error("bad input: %s", exc.message, extra={"error": type(exc).__name__})
        print(json.dumps({"stage": args.stage, "error": type(exc).__name__, "message": exc.message}))
        return EXIT_BAD_INPUT
    except ServiceError as exc:
        log.error("failed: %s", exc.message, extra={"error": type(exc).__name__})
        print(json.dumps({"stage": args.stage, "error": type(exc).__name__, "message": exc.message}))
        return EXIT_FAILED
    print(json.dumps(summary, default=str))
    return EXIT_TERMINATED if summary.get("stopped") else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
