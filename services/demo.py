"""`make demo`: one whole swap job on the bundled sample clips, through the services on localhost.

Person A (whose face is replaced, expression, head motion and audio kept): samples/liveportrait_s18.mp4.
Person B (whose face is put in): the faces of samples/liveportrait_d10.mp4. Both MIT, see
samples/LICENSE.md. The services (media, detector, trainer, converter, orchestrator) start as local
subprocesses with the embedded storage (a folder) and job database (SQLite) under demo-output/data;
the demo submits one job through the job API, shows per-stage progress and prints where the output
video and the quality report are.

Training fine-tunes the warm-start checkpoint in faceswap/model/warmstart/ when it is there (a short
time budget), or trains from zero with ``--from-scratch`` (or when there is no checkpoint).

    python -m services.demo [--from-scratch] [--max-seconds S] [--steps N] [-o demo-output]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from faceswap.model.checkpoint import BUILTIN_DIR
from faceswap.model.layout import CHECKPOINT
from faceswap.options.convert import METHODS, ConvertOptions

# ---- tune the demo here ------------------------------------------------------------------------
PRESET = "demo"  # trainer preset (faceswap/model/network.py PRESETS)
# Fine-tuning steps (about 180 s on 2 cores); the time budget below stops slower machines earlier.
STEPS = 600
MAX_SECONDS = 180.0  # fine-tuning budget with the warm start, s (the other stages take ~3 min on 2 cores)
STEPS_FROM_SCRATCH = 100_000  # from zero the time budget ends training
MAX_SECONDS_FROM_SCRATCH = 420.0  # training time budget with --from-scratch (or no warm start), seconds
BATCH_SIZE = 0  # 0 = the preset's
SIZE = 0  # aligned face size in pixels (0 = detector default, 64)
DETECT_MAX_SIDE = 640  # detect on a copy this size (landmarks on the full frame): 720p detection ~4x faster
SAVE_EVERY = 250  # checkpoint every N steps (a killed demo resumes from there)
ALLOW_FOREIGN_WARM_START = False  # the warm start records the face sets it was trained on
COLOR, BLEND, SMOOTH = (
    "histogram",
    "seamless",
    "",
)  # measured best for identity on the bundled pair (docs/converter.md)
# Mask erosion at the 64 px face: 3 measured 80 % read as B with 3.7 % landmark error; 4 gave
# 81 % / 4.9 %, 5 only 29 % (docs/converter.md).
MASK_ERODE = 3
EVALUATE_MAX_FRAMES = 0  # frames the quality report scores (0 = evaluator default)
# ------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
VIDEO_A = ROOT / "samples" / "liveportrait_s18.mp4"
VIDEO_B = ROOT / "samples" / "liveportrait_d10.mp4"
WARMSTART_DIR = BUILTIN_DIR  # the warm starts bundled with the library (faceswap/model/warmstart)


def find_warm_start() -> Path | None:
    """The warm-start checkpoint file (checkpoint.pt preferred), or None."""
    if not WARMSTART_DIR.is_dir():
        return None
    preferred = WARMSTART_DIR / CHECKPOINT
    if preferred.is_file():
        return preferred
    found = sorted(p for p in WARMSTART_DIR.glob("*.pt") if p.is_file())
    return found[0] if found else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out", type=Path, default=ROOT / "demo-output", help="output folder")
    p.add_argument("--from-scratch", action="store_true", help="ignore the warm start, train from zero")
    p.add_argument("--steps", type=int, default=0, help="training steps (0 = the demo's default)")
    p.add_argument("--max-seconds", type=float, default=None, help="training time budget")
    p.add_argument("--preset", default=PRESET)
    p.add_argument(
        "--method", default=ConvertOptions().method, choices=list(METHODS),
        help="retrieval (default): B's real faces, no training; hybrid / autoencoder fine-tune the "
        "warm start first",
    )  # fmt: skip
    p.add_argument("--size", type=int, default=SIZE)
    p.add_argument("--keep-data", action="store_true", help="keep the previous run's data folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    data = out / "data"
    if data.exists() and not args.keep_data:
        shutil.rmtree(data)  # a fresh store and job database for every demo run
    out.mkdir(parents=True, exist_ok=True)
    # Embedded storage and SQLite for the services we start (a configured S3/PostgreSQL is not used).
    os.environ.update({"FACESWAP_DATA_DIR": str(data), "FACESWAP_STORAGE": "local", "FACESWAP_DB_URL": ""})
    os.environ.setdefault("FACESWAP_LOG_FORMAT", "text")

    from services.common.pb.faceswap.v1 import jobs_pb2
    from services.orchestrator.cli import run_swap
    from services.orchestrator.client import JobClient
    from services.orchestrator.launcher import ServiceGroup

    warm = None if args.from_scratch else find_warm_start()
    budget = args.max_seconds
    if budget is None:
        budget = MAX_SECONDS if warm else MAX_SECONDS_FROM_SCRATCH
    print(f"demo: A = {VIDEO_A.name}, B = faces of {VIDEO_B.name}")
    trains = ConvertOptions(method=args.method).needs_model
    if trains:
        print(
            f"demo: method {args.method}, preset {args.preset}, training budget {budget:.0f} s, "
            + (f"warm start {warm.relative_to(ROOT)}" if warm else "training from scratch")
        )
    else:
        print(f"demo: method {args.method}: B's real faces from B's video, no training")
    started = time.monotonic()
    print(f"demo: starting the services (logs in {out / 'logs'})...")
    with ServiceGroup(log_dir=out / "logs", env={"FACESWAP_WORKER_ID": "demo"}) as group:
        print(f"demo: services up in {time.monotonic() - started:.0f} s; job API at {group.jobs_address}")
        with JobClient(group.jobs_address) as client:
            spec = jobs_pb2.SwapJobSpec(video=client.upload(VIDEO_A), faces_b=[client.upload(VIDEO_B)])
            o = spec.options
            steps = args.steps or (STEPS if warm else STEPS_FROM_SCRATCH)
            o.train.preset, o.train.steps, o.train.max_seconds = args.preset, steps, budget
            o.train.batch_size, o.train.save_every = BATCH_SIZE, SAVE_EVERY
            o.detect.size, o.detect.detect_max_side = args.size, DETECT_MAX_SIDE
            o.convert.color, o.convert.blend, o.convert.smooth = COLOR, BLEND, SMOOTH
            o.convert.mask_erode = MASK_ERODE
            o.convert.method = args.method
            o.evaluate_max_frames = EVALUATE_MAX_FRAMES
            if warm is not None:
                o.train.warm_start.CopyFrom(client.upload(warm))
                o.train.allow_foreign_warm_start = ALLOW_FOREIGN_WARM_START
            else:
                o.train.from_scratch = True
            output, report = out / "swap.mp4", out / "report.html"
            final = run_swap(client, spec, output, report, request_id=f"demo-{uuid.uuid4().hex}")
            if final.state != jobs_pb2.JOB_STATE_SUCCEEDED:
                print(f"demo: the job did not succeed; service logs are in {out / 'logs'}", file=sys.stderr)
                return 1
            summary = _summary(client, final, out)
    minutes = (time.monotonic() - started) / 60
    print()
    print(f"demo finished in {minutes:.1f} min")
    print(f"  swapped video : {output}")
    print(f"  quality report: {report if report.exists() else '(none: the evaluator is not installed)'}")
    if summary:
        print(f"  summary       : {summary}")
    return 0


def _summary(client, job, out: Path) -> str:
    """A line of the report's headline figures, when the JSON report exists."""
    from services.common.pb.faceswap.v1 import common_pb2

    if not job.report.key:
        return ""
    key = job.report.key.rsplit("/", 1)[0] + "/report.json"
    try:
        path = client.download(common_pb2.ObjectRef(key=key), out / "report.json")
        data = json.loads(path.read_text())
    except Exception:
        return ""
    summary = data.get("summary", data)
    picked = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v:.3g}" for k, v in list(picked.items())[:6])


if __name__ == "__main__":
    sys.exit(main())
