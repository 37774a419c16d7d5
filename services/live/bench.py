"""``make bench`` for the live service: frames/s, latency and drops of a live stream, against the batch
converter on the same clip in the same run.

Live: an in-process LiveService on a loopback port; the client streams samples/liveportrait_s18.mp4
(1280x720, 30 fps) as JPEG frames at the clip's real rate (pre-encoded, as a camera's MJPEG would
come) and B's face set is samples/liveportrait_d10.mp4. Client and server share this machine's
cores. Baseline: ``faceswap convert --method retrieval`` (the batch path with the same appearance
method: detection, whole-sequence choice, compose, encode) on the same frames, its frames/s over the
whole command. Realism: Laplacian sharpness and mean L* inside A's inner face, live against batch,
on the frames both swapped. Writes live_sheet.png (input | live | batch) in the work folder.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
FACES_B = ROOT / "samples" / "liveportrait_d10.mp4"


def _frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    out = [img for ok, img in itertools.takewhile(lambda r: r[0], (cap.read() for _ in range(n)))]
    cap.release()
    return out


def _write_clip(frames: list[np.ndarray], path: Path, fps: float) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def live_run(jpegs: list[bytes], fps: float, workdir: Path, keep: set[int]) -> tuple[object, dict, float]:
    os.environ["FACESWAP_LIVE_FACES_DIRS"] = str(FACES_B.parent)
    from services.common.pb.faceswap.v1 import live_pb2
    from services.common.server import start_server
    from services.live import client as lc
    from services.live.bank import bank_from_path
    from services.live.server import build_spec

    bank_from_path(str(FACES_B), 150)  # built before the clock starts (streams reuse it)
    server = start_server(build_spec(), port=0, host="127.0.0.1", metrics_port=0)
    kept: dict[int, np.ndarray] = {}

    def on_reply(msg: live_pb2.LiveFrame) -> None:
        if msg.sequence in keep and msg.image.data:
            kept[msg.sequence] = lc.decode_reply(msg)

    channel, stub = lc.connect(f"127.0.0.1:{server.port}")
    try:
        cpu0 = time.process_time()
        stats = lc.stream(stub, lc.config_message(str(FACES_B)), jpegs, fps, on_reply=on_reply, timeout=600)
        cpu = (time.process_time() - cpu0) / max(1, stats.received)
    finally:
        channel.close()
        server.stop(1)
    return stats, kept, cpu


def batch_run(
    frames: list[np.ndarray], fps: float, workdir: Path
) -> tuple[float, dict[int, np.ndarray], str]:
    clip = workdir / "clip.mp4"
    _write_clip(frames, clip, fps)
    out = workdir / "batch.mp4"
    cmd = [sys.executable, "-m", "services.cli", "convert", "-i", str(clip), "-o", str(out),
           "--method", "retrieval", "--faces-b", str(FACES_B)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return 0.0, {}, (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]
    cap = cv2.VideoCapture(str(out))
    images = {i + 1: img for i, (ok, img) in enumerate(iter(cap.read, (False, None))) if ok}
    cap.release()
    return len(frames) / seconds, images, ""


def _face_stats(image: np.ndarray, lm: np.ndarray) -> tuple[float, float]:
    """Laplacian variance and mean L* inside the inner face (hull of the jaw and brows)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[:27]).astype(np.int32)), 255)
    mask = cv2.erode(mask, np.ones((9, 9), np.uint8))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    lap = cv2.Laplacian(gray, cv2.CV_64F)[mask > 0]
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0][mask > 0].astype(np.float64) * 100 / 255
    return float(lap.var()), float(lab.mean())


def run(quick: bool, workdir: Path) -> list[dict]:
    from services.live.bank import largest_face
    from services.live.cli import contact_sheet

    n = 24 if quick else 282
    frames = _frames(n)
    fps = 30.0
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    probe = sorted({1, *range(10, len(frames) + 1, max(1, len(frames) // 8))})
    stats, live_frames, cpu = live_run(jpegs, fps, workdir, set(probe))
    batch_fps, batch_frames, batch_error = batch_run(frames, fps, workdir)
    note = f"{len(frames)} frames of {CLIP.name} at {fps:g} fps, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    rows = [
        {"metric": "live_fps", "value": stats.fps, "unit": "frames/s", "baseline_name": "batch convert",
         "baseline": batch_fps or None, "note": note, "error": batch_error},
        {"metric": "live_latency_p50", "value": stats.percentile(50) * 1000, "unit": "ms"},
        {"metric": "live_latency_p95", "value": stats.percentile(95) * 1000, "unit": "ms",
         "baseline_name": "target", "baseline": 150.0},
        {"metric": "live_dropped", "value": len(stats.dropped), "unit": "frames", "sent": stats.sent},
        {"metric": "live_cpu_per_frame", "value": cpu * 1000, "unit": "ms CPU",
         "note": "client + server process CPU per frame back (2 cores at 25 fps allow 80)"},
    ]  # fmt: skip
    for stage, seconds in stats.stage_means().items():
        rows.append({"metric": f"live_stage_{stage}", "value": seconds * 1000, "unit": "ms"})
    both = [s for s in probe if s in live_frames and s in batch_frames]
    if both:
        sharp_live, sharp_batch, light_diff = [], [], []
        for s in both:
            lm = largest_face(frames[s - 1])
            if lm is None:
                continue
            sl, ll = _face_stats(live_frames[s], lm)
            sb, lb = _face_stats(batch_frames[s], lm)
            sharp_live.append(sl)
            sharp_batch.append(sb)
            light_diff.append(ll - lb)
        if sharp_live:
            rows.append({"metric": "live_sharpness", "value": float(np.mean(sharp_live)), "unit": "lap var",
                         "baseline_name": "batch", "baseline": float(np.mean(sharp_batch))})  # fmt: skip
            rows.append({"metric": "live_light_shift", "value": float(np.mean(light_diff)), "unit": "L*",
                         "baseline_name": "batch (|x| <= 3 wanted)", "baseline": None})  # fmt: skip
        sheet = contact_sheet(
            [frames[s - 1] for s in both[:4]],
            [np.hstack([live_frames[s], batch_frames[s]]) for s in both[:4]],
        )
        cv2.imwrite(str(workdir / "live_sheet.png"), sheet)
        # The faces at full resolution: input | live | batch.
        x0, y0, x1, y1 = 520, 40, 1000, 520
        faces = [np.hstack([frames[s - 1][y0:y1, x0:x1], live_frames[s][y0:y1, x0:x1],
                            batch_frames[s][y0:y1, x0:x1]]) for s in both[:3]]  # fmt: skip
        cv2.imwrite(str(workdir / "live_faces.png"), np.vstack(faces))
    elif live_frames:
        sheet = contact_sheet([frames[s - 1] for s in sorted(live_frames)[:4]],
                              [live_frames[s] for s in sorted(live_frames)[:4]])  # fmt: skip
        cv2.imwrite(str(workdir / "live_sheet.png"), sheet)
    return rows


if __name__ == "__main__":
    import json

    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/live-bench")
    work.mkdir(parents=True, exist_ok=True)
    for row in run("--full" not in sys.argv, work):
        print(json.dumps(row))
