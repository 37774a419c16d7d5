"""``make bench`` for the live service: frames/s, latency, drops and realism of a live stream,
against the batch converter on the same clip in the same run.

Pairs: samples/liveportrait_s18.mp4 (1280x720, 30 fps) with B's face set samples/liveportrait_d10.mp4,
and, where ../shared/data is on this machine, retalking_face3.mp4 (590x590, 25 fps) with
retalking_face4.mp4. Live: an in-process LiveService on a loopback port; the client streams the
clip at its real rate as ``faceswap live`` does (decoded frames JPEG-encoded by the client, the
swapped region back as a JPEG patch), and for the first pair also as raw frames both ways and with
the bundled demo model (hybrid, trained on that pair). Client and server share this machine's
cores. Baseline: ``faceswap convert --method retrieval`` (the batch path with the same appearance
method: detection, whole-sequence choice, compose, encode) on the same frames, its frames/s over the
whole command. Realism, live against batch on the frames both swapped: Laplacian sharpness and mean
L* inside A's inner face, and the share of frames that read as B by the evaluator's rule
(within dlib's same-person distance of B and nearer B than the face replaced).
Sharpness is compared on what each path writes (live through ``faceswap live --output``'s encoder,
after the timed run; batch through the converter's), and the batch reads a stream copy of the clip,
never a re-encode. Writes live_<pair>_faces.png (input | live | batch face crops) in the work folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from faceswap.media.frames import read_frames
from faceswap.media.probe import probe

if TYPE_CHECKING:
    from services.live.client import StreamStats
    from services.live.compose_processes import ComposeProcesses

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
FACES_B = ROOT / "samples" / "liveportrait_d10.mp4"
SHARED = ROOT.parent / "shared" / "data" / "videos"
PAIRS = [
    ("liveportrait", CLIP, FACES_B),
    ("retalking", SHARED / "retalking_face3.mp4", SHARED / "retalking_face4.mp4"),
]


def _frames(clip: Path, n: int) -> tuple[list[np.ndarray], float]:
    info = probe(clip)
    frames = [np.array(img) for _, img in read_frames(clip, end=min(n, info.frame_count), info=info)]
    return frames, float(info.fps)


def _cut_clip(clip: Path, n: int, path: Path) -> Path:
    """The clip's first ``n`` frames as a stream copy: the batch path reads the very frames the
    live client sends (a re-encode would blur its input and its sharpness figure)."""
    from faceswap.media.store import find_ffmpeg

    cmd = [find_ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v:0", "-frames:v", str(n),
           "-c", "copy", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def _as_recorded(
    frames: dict[int, np.ndarray], fps: float, path: Path, want: set[int]
) -> dict[int, np.ndarray]:
    """The live frames as ``faceswap live --output`` writes them (its Recorder's encoder), read back,
    so live and batch are measured on what each writes to disk (done after the timed run)."""
    from services.live.cli import Recorder

    recorder = Recorder(str(path), fps, None)
    order = sorted(frames)
    for s in order:
        recorder.put(frames[s], 0)
    recorder.close()
    images = enumerate(read_frames(path))
    return {order[i]: np.array(img) for i, (_n, img) in images if i < len(order) and order[i] in want}


def live_run(
    frames: list[np.ndarray] | list[bytes],
    fps: float,
    faces_b: Path,
    keep: set[int] | None,
    raw: bool,
    model: str = "",
) -> tuple[object, dict, float]:
    """One stream through an in-process server: (client stats, the swapped frames of ``keep``'s
    sequences (None: all), process CPU per frame)."""
    os.environ["FACESWAP_LIVE_FACES_DIRS"] = str(faces_b.parent)
    from services.common.pb.faceswap.v1 import live_pb2
    from services.common.server import start_server
    from services.live import client as lc
    from services.live import compose_processes
    from services.live.bank import bank_from_path
    from services.live.server import build_spec

    bank_from_path(str(faces_b), 150)  # built before the clock starts (streams reuse it)
    pool = compose_processes.shared()  # started before it too (a server's first stream starts them)
    server = start_server(build_spec(), port=0, host="127.0.0.1", metrics_port=0)
    kept: dict[int, np.ndarray] = {}

    def on_frame(msg: live_pb2.LiveFrame, image: np.ndarray | None) -> None:
        if image is not None and (keep is None or msg.sequence in keep):
            kept[msg.sequence] = image  # a fresh array (the patch pasted on a copy) or the frame sent

    encoding = live_pb2.FRAME_ENCODING_RAW_BGR if raw else live_pb2.FRAME_ENCODING_JPEG
    # As faceswap live asks: only the swapped region comes back.
    options = live_pb2.LiveOptions(output_encoding=encoding, reply_patch=True)
    config = lc.config_message(str(faces_b), options=options, model=model)
    channel, stub = lc.connect(f"127.0.0.1:{server.port}")
    try:
        cpu0 = _cpu_seconds(pool)
        stats = lc.stream(stub, config, frames, fps, on_frame=on_frame, timeout=600, raw=raw)
        cpu = (_cpu_seconds(pool) - cpu0) / max(1, stats.received)
    finally:
        channel.close()
        server.stop(1)
    return stats, kept, cpu


def _cpu_seconds(pool: ComposeProcesses | None) -> float:
    """This process's CPU and its live compose workers' (they are children that stay)."""
    return time.process_time() + (pool.cpu_seconds() if pool is not None else 0.0)


def batch_run(
    source: Path, frames: list[np.ndarray], faces_b: Path, workdir: Path
) -> tuple[float, dict[int, np.ndarray], str]:
    clip = _cut_clip(source, len(frames), workdir / f"clip{source.suffix}")
    out = workdir / "batch.mp4"
    cmd = [sys.executable, "-m", "services.cli", "convert", "-i", str(clip), "-o", str(out),
           "--method", "retrieval", "--faces-b", str(faces_b)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return 0.0, {}, (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]
    images = {number + 1: np.array(img) for number, img in read_frames(out)}
    return len(frames) / seconds, images, ""


def _variant_rows(
    prefix: str, stats: StreamStats, cpu: float, baseline_name: str, baseline: float, note: str
) -> list[dict]:
    """frames/s (against ``baseline``), p95, drops and CPU of one more stream of the same clip."""
    return [
        {"metric": f"{prefix}_fps", "value": stats.fps, "unit": "frames/s", "baseline_name": baseline_name,
         "baseline": baseline, "note": note},
        {"metric": f"{prefix}_latency_p95", "value": stats.percentile(95) * 1000, "unit": "ms"},
        {"metric": f"{prefix}_dropped", "value": len(stats.dropped), "unit": "frames"},
        {"metric": f"{prefix}_cpu_per_frame", "value": cpu * 1000, "unit": "ms CPU"},
    ]  # fmt: skip


def _face_stats(image: np.ndarray, lm: np.ndarray) -> tuple[float, float]:
    """Laplacian variance and mean L* inside the inner face (hull of the jaw and brows)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[:27]).astype(np.int32)), 255)
    mask = cv2.erode(mask, np.ones((9, 9), np.uint8))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    lap = cv2.Laplacian(gray, cv2.CV_64F)[mask > 0]
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0][mask > 0].astype(np.float64) * 100 / 255
    return float(lap.var()), float(lab.mean())


def _reads_as_b(image: np.ndarray, source: np.ndarray | None, ref_b: np.ndarray) -> bool | None:
    """The evaluator's rule (``metrics.reads_as_b``): within dlib's same-person distance of B and
    nearer B than the face it replaced (``source``: that face's embedding)."""
    from faceswap.evaluate.metrics import reads_as_b

    e = _reference(image)
    if e is None or source is None:
        return None
    return reads_as_b(
        float(np.linalg.norm(e - ref_b)),
        float(np.linalg.norm(e - source)),
        float(np.linalg.norm(source - ref_b)),
    )


def _reference(image: np.ndarray) -> np.ndarray | None:
    from faceswap.face.identity import face_embedding
    from services.live.bank import largest_face

    lm = largest_face(image)
    return None if lm is None else face_embedding(image, lm)


def _pair(name: str, clip: Path, faces_b: Path, n: int, workdir: Path, raw_too: bool) -> list[dict]:
    from faceswap.face.identity import face_embedding
    from services.live.bank import largest_face

    frames, fps = _frames(clip, n)
    probe = sorted({1, *range(10, len(frames) + 1, max(1, len(frames) // 8))})
    note = (f"{len(frames)} frames of {clip.name} ({frames[0].shape[1]}x{frames[0].shape[0]}) at {fps:g} fps, "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    stats, live_frames, cpu = live_run(frames, fps, faces_b, None, raw=False)
    (workdir / name).mkdir(parents=True, exist_ok=True)
    recorded = _as_recorded(live_frames, fps, workdir / name / "live.mp4", set(probe))
    batch_fps, batch_frames, batch_error = batch_run(clip, frames, faces_b, workdir / name)
    p = f"live_{name}"
    rows = [
        {"metric": f"{p}_fps", "value": stats.fps, "unit": "frames/s", "baseline_name": "batch convert",
         "baseline": batch_fps or None, "note": note + f"; source {fps:g} fps (25 wanted)", "error": batch_error},
        {"metric": f"{p}_latency_p50", "value": stats.percentile(50) * 1000, "unit": "ms"},
        {"metric": f"{p}_latency_p95", "value": stats.percentile(95) * 1000, "unit": "ms",
         "baseline_name": "target", "baseline": 150.0},
        {"metric": f"{p}_dropped", "value": len(stats.dropped), "unit": "frames", "sent": stats.sent},
        {"metric": f"{p}_cpu_per_frame", "value": cpu * 1000, "unit": "ms CPU",
         "note": "client, server and compose-worker CPU per frame back (2 cores at 25 fps allow 80)"},
    ]  # fmt: skip
    if raw_too:
        rstats, _, rcpu = live_run(frames, fps, faces_b, set(), raw=True)
        rows += _variant_rows(f"{p}_raw", rstats, rcpu, "JPEG", stats.fps, "raw BGR frames both ways")
        # Hybrid with the bundled model (trained on this pair only): what the decoder costs live.
        hstats, _, hcpu = live_run(frames, fps, faces_b, set(), raw=False, model="builtin:demo")
        rows += _variant_rows(f"{p}_hybrid", hstats, hcpu, "retrieval", stats.fps,
                              "faceswap live --model builtin:demo")  # fmt: skip
        rows.append({"metric": f"{p}_hybrid_stage_model", "unit": "ms",
                     "value": hstats.stage_means().get("model", 0.0) * 1000})  # fmt: skip
    for stage, seconds in stats.stage_means().items():
        rows.append({"metric": f"{p}_stage_{stage}", "value": seconds * 1000, "unit": "ms"})
    both = [s for s in probe if s in live_frames and s in batch_frames]
    ref_b = _reference(_frames(faces_b, 1)[0][0])
    sharp_live, sharp_rec, sharp_batch, light_diff, as_b_live, as_b_batch = [], [], [], [], [], []
    for s in both:
        lm = largest_face(frames[s - 1])
        if lm is None or s not in recorded:
            continue
        sl, ll = _face_stats(live_frames[s], lm)
        sr, _ = _face_stats(recorded[s], lm)
        sb, lb = _face_stats(batch_frames[s], lm)
        sharp_live.append(sl)
        sharp_rec.append(sr)
        sharp_batch.append(sb)
        light_diff.append(ll - lb)
        if ref_b is not None:
            source = face_embedding(frames[s - 1], lm)  # lm: the source face found above
            as_b_live.append(_reads_as_b(live_frames[s], source, ref_b))
            as_b_batch.append(_reads_as_b(batch_frames[s], source, ref_b))
    if sharp_live:
        # Both as written to disk (live through --output's encoder, batch through the converter's),
        # and live as the client receives it (one JPEG, no video encode) beside it.
        rows.append({"metric": f"{p}_sharpness", "value": float(np.mean(sharp_rec)), "unit": "lap var",
                     "baseline_name": "batch (within 10 % wanted)", "baseline": float(np.mean(sharp_batch)),
                     "note": "both decoded from the videos they write"})  # fmt: skip
        rows.append({"metric": f"{p}_sharpness_received", "value": float(np.mean(sharp_live)), "unit": "lap var",
                     "baseline_name": "batch", "baseline": float(np.mean(sharp_batch)),
                     "note": "live frames as the client receives them (before any video encode)"})  # fmt: skip
        rows.append({"metric": f"{p}_light_shift", "value": float(np.mean(light_diff)), "unit": "L*",
                     "baseline_name": "batch (|x| <= 3 wanted)", "baseline": 0.0})  # fmt: skip
    if as_b_live:
        share = lambda v: float(np.mean([x is True for x in v]))  # noqa: E731
        rows.append({"metric": f"{p}_reads_as_b", "value": share(as_b_live), "unit": "share of probed frames",
                     "baseline_name": "batch", "baseline": share(as_b_batch)})  # fmt: skip
    if both:
        x0, y0, x1, y1 = _face_box(frames[0])
        faces = [np.hstack([frames[s - 1][y0:y1, x0:x1], live_frames[s][y0:y1, x0:x1],
                            batch_frames[s][y0:y1, x0:x1]]) for s in both[:4]]  # fmt: skip
        cv2.imwrite(str(workdir / f"{p}_faces.png"), np.vstack(faces))
    return rows


def _face_box(image: np.ndarray) -> tuple[int, int, int, int]:
    from faceswap.composite.appearance import roi_box
    from services.live.bank import largest_face

    h, w = image.shape[:2]
    lm = largest_face(image)
    return (0, 0, w, h) if lm is None else roi_box(lm, w, h, 0.4)


def run(quick: bool, workdir: Path) -> list[dict]:
    rows: list[dict] = []
    for i, (name, clip, faces_b) in enumerate(PAIRS):
        if not (clip.exists() and faces_b.exists()):
            continue
        if quick and i:
            break
        rows += _pair(name, clip, faces_b, 60 if quick else 100_000, workdir, raw_too=i == 0)
    return rows


if __name__ == "__main__":
    import json

    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/live-bench")
    work.mkdir(parents=True, exist_ok=True)
    for row in run("--full" not in sys.argv, work):
        print(json.dumps(row))
