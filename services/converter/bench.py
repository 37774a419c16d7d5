"""``make bench`` for the converter: frames/s of the pipelined converter against a naive loop.

Both convert the same real frames of samples/liveportrait_s18.mp4 (1280x720, one face per frame)
with the same model, alignments and options (mask, colour, blend, smoothing, PNG settings) in the
same run. The naive loop is what a first implementation does: read, decode, one face at a time
through the model, paste, encode, write, one frame after the other. The converter batches faces
for the model and overlaps reading/decoding, inference and pasting/encoding in threads.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from faceswap.face.alignments import ALIGNMENTS_NAME, Alignments, alignments_key
from faceswap.media.frames import read_frames
from faceswap.options.convert import ConvertOptions
from faceswap.storage import LocalStore, ObjectStore, join_key
from services.converter.compose import crop_face, paste_face
from services.converter.swap import PNG_PARAMS, build_plan, convert_frames, load_model, pick_device

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
CLIP_B = ROOT / "samples" / "liveportrait_d10.mp4"


def _read_clip(frames: int, clip: Path = CLIP) -> list[np.ndarray]:
    return [img for _, img in read_frames(clip, 0, frames)]


def _prepare(store: ObjectStore, frames: int, cache: Path) -> None:
    images = _read_clip(frames)
    for i, img in enumerate(images):
        buf = cv2.imencode(".png", img, PNG_PARAMS)[1]
        store.put_bytes(f"frames/{i:08d}.png", buf.tobytes())
    if cache.is_file():
        raw = cache.read_bytes()
    else:
        from faceswap.face.extract import DetectOptions, detect_images

        records = detect_images(images, DetectOptions(detect_max_side=640))
        for rec in records:
            rec.key = f"{rec.index:08d}.png"
        raw = Alignments(frames=records).dumps()
        cache.write_bytes(raw)
    store.put_bytes(ALIGNMENTS_NAME, raw)
    _save_model(store, "model")


def _save_model(store: ObjectStore, prefix: str, preset: str = "lite") -> None:
    from faceswap.model.checkpoint import FORMAT_FULL, Checkpoint, save_checkpoint
    from faceswap.model.network import build_model

    torch.manual_seed(0)
    model = build_model(preset, 64)
    config = {"preset": preset, "size": 64, "coverage": 0.75, "model": model.config.to_dict()}
    save_checkpoint(store, prefix, Checkpoint(FORMAT_FULL, 0, config, model.state_dict(), None, {}, {}))


def naive_convert(store: ObjectStore, options: ConvertOptions, output_prefix: str, device: str) -> float:
    """The baseline: everything serial, one face per model call. Returns frames/s."""
    model, config = load_model(store, "model", options, device)
    dev = next(model.parameters()).device
    alignments = Alignments.loads(store.get_bytes(ALIGNMENTS_NAME))
    plan = build_plan(alignments, options, config["size"], config["coverage"])
    keys = sorted(store.list("frames"))
    start = time.perf_counter()
    for index, key in enumerate(keys):
        raw = store.get_bytes(key)
        faces = plan.get(index, [])
        if faces:
            frame = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            for face in faces:
                crop = crop_face(frame, face.matrix, config["size"])
                with torch.inference_mode():
                    x = torch.from_numpy(crop).to(dev).permute(2, 0, 1)[None].float() / 255
                    image, mask = model(x, options.identity)
                out = image[0].permute(1, 2, 0).cpu().numpy() * 255
                paste_face(frame, face, out, None if mask is None else mask[0, 0].cpu().numpy(), options)
            raw = cv2.imencode(".png", frame, PNG_PARAMS)[1].tobytes()
        store.put_bytes(join_key(output_prefix, key.split("/")[-1]), raw)
    return len(keys) / (time.perf_counter() - start)


def run(quick: bool, workdir: Path) -> list[dict]:
    frames = 24 if quick else 120
    store = LocalStore(workdir / "converter", "bench")
    _prepare(store, frames, workdir / f"converter-alignments-{frames}.json")
    device = str(pick_device("auto"))
    rows = []
    for blend in ("seamless",) if quick else ("seamless", "alpha"):
        options = ConvertOptions(blend=blend, method="autoencoder")
        # Warm up both paths (model load, first-call allocations) outside the timing.
        convert_frames(store, "frames", ALIGNMENTS_NAME, "model", "warm", options, end=4, device=device)
        # Best of two, interleaved: the shared CPU's load swings, and both paths see the same swings.
        naive, fast, summary = 0.0, 0.0, None
        for _ in range(2):
            naive = max(naive, naive_convert(store, options, "naive", device))
            run_summary = convert_frames(
                store, "frames", ALIGNMENTS_NAME, "model", "fast", options, device=device
            )
            if run_summary.frames_per_second > fast:
                fast, summary = run_summary.frames_per_second, run_summary
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(summary.stage_seconds.items()))
        rows.append(
            {
                "stage": "converter",
                "metric": f"convert_fps_{blend}_{device.split(':')[0]}",
                "value": round(fast, 2),
                "unit": "frames/s",
                "baseline_name": "naive serial loop, batch 1",
                "baseline": round(naive, 2),
                "ratio": round(fast / naive, 2) if naive else 0.0,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "notes": f"{frames} frames 1280x720, lite model, batch {options.batch_size}; {stages}",
            }
        )
    rows.append(_retrieval_row(store, frames, device))
    return rows


def _prepare_b(store: ObjectStore) -> str:
    """B's face set for the retrieval method: 30 frames spread over B's clip, with alignments."""
    from faceswap.face.extract import DetectOptions, detect_images

    images = _read_clip(180, CLIP_B)[::6]
    records = detect_images(images, DetectOptions(detect_max_side=640), sequence=True)
    for rec, img in zip(records, images, strict=True):
        rec.key = f"b_frames/{rec.index:08d}.png"
        store.put_bytes(rec.key, cv2.imencode(".png", img, PNG_PARAMS)[1].tobytes())
    alignments = Alignments(size=64, coverage=0.75, detector="hog", frames=records)
    store.put_bytes(alignments_key("faces_b"), alignments.dumps())
    return alignments_key("faces_b")


def _retrieval_row(store: ObjectStore, frames: int, device: str) -> dict:
    """The default method (B's real faces): the pipelined converter against the same work on one
    worker thread, both after the face bank is built (it is cached beside B's alignments)."""
    faces_b = _prepare_b(store)
    options = ConvertOptions(method="retrieval")
    convert_frames(store, "frames", ALIGNMENTS_NAME, "", "warm_r", options, end=2, faces_b=faces_b)
    serial, fast, summary = 0.0, 0.0, None
    for _ in range(2):
        one = convert_frames(
            store, "frames", ALIGNMENTS_NAME, "", "serial_r", options, faces_b=faces_b, workers=1
        )
        serial = max(serial, one.frames_per_second)
        run_summary = convert_frames(store, "frames", ALIGNMENTS_NAME, "", "fast_r", options, faces_b=faces_b)
        if run_summary.frames_per_second > fast:
            fast, summary = run_summary.frames_per_second, run_summary
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(summary.stage_seconds.items()))
    return {
        "stage": "converter",
        "metric": f"convert_fps_retrieval_{device.split(':')[0]}",
        "value": round(fast, 2),
        "unit": "frames/s",
        "baseline_name": "same conversion on one worker thread",
        "baseline": round(serial, 2),
        "ratio": round(fast / serial, 2) if serial else 0.0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "notes": f"{frames} frames 1280x720, B bank of 30 faces; {stages}",
    }


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run("--full" not in sys.argv, Path(tmp)), indent=1))
