"""Detector benchmark: face-set extraction frames/s against a naive loop, same frames, same run.

Naive baseline: one process, full-frame HOG (upsample 1) + 68 landmarks for every frame, as a
straightforward dlib script does it. Ours: ``extract_face_set`` with its defaults for video
(one worker process per core, the 640 px fast path where the faces seen are large enough there,
landmarks on the full frame, re-detection every 5th frame with tracking in between, temporal
recovery of missed frames), and it also aligns and writes every face and the alignments file, which
the baseline does not. Recall against the naive loop: the share of the faces it finds (per frame,
box IoU > 0.5) that ours finds too; "missed" counts those ours does not (must be 0).

The worker pool is started before timing (a running service keeps it warm); the time to start it
is reported as its own row.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import cv2
import numpy as np

from faceswap.face.alignments import alignments_key
from faceswap.face.detect import box_iou, to_gray
from faceswap.face.extract import DetectOptions, extract_face_set, get_pool, resolve_jobs
from faceswap.face.models import get_model
from faceswap.media.frames import read_frames
from faceswap.storage import LocalStore

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "liveportrait_s18.mp4"
OURS = DetectOptions(detect_max_side=640, track_interval=5)
BASELINE = "naive single-process loop: full-frame HOG (upsample 1) + landmarks per frame"


def _rss_mb(pids: list[int]) -> float:
    """Peak RSS of this process plus the current peak of the worker processes (VmHWM)."""
    total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def write_frames(folder: Path, limit: int | None) -> int:
    """Decodes the sample clip into numbered PNGs, as the media service writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    frames = read_frames(str(CLIP), 0, limit)
    for index, frame in frames:
        cv2.imwrite(str(folder / f"{index:08d}.png"), frame)
        count += 1
    return count


def naive_loop(frames: list[Path]) -> tuple[float, dict[int, np.ndarray], dict[int, list[tuple]]]:
    """Seconds, the first face's landmarks per frame with a face and every face box per frame, the
    simple way: everything at full size, one process."""
    detector, predictor = get_model("hog"), get_model("landmarks")
    import dlib

    with_face: dict[int, np.ndarray] = {}
    boxes: dict[int, list[tuple]] = {}
    start = time.perf_counter()
    for index, path in enumerate(frames):
        gray = to_gray(cv2.imread(str(path)))
        rects = detector(gray, 1)
        boxes[index] = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        for n, rect in enumerate(rects):
            shape = predictor(gray, dlib.rectangle(rect.left(), rect.top(), rect.right(), rect.bottom()))
            if n == 0:
                with_face[index] = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return time.perf_counter() - start, with_face, boxes


def recall(naive_boxes: dict[int, list[tuple]], frames: list) -> tuple[int, int]:
    """(faces the naive loop found, of those the ones ours missed): per frame, box IoU > 0.5."""
    total = missed = 0
    for index, boxes in naive_boxes.items():
        ours = [f.box for f in frames[index].faces] if index < len(frames) else []
        for box in boxes:
            total += 1
            missed += not any(box_iou(box, b) > 0.5 for b in ours)
    return total, missed


def run(quick: bool, workdir: Path) -> list[dict]:
    limit = 30 if quick else None
    frames_dir = workdir / "detector_bench" / "frames"
    n = write_frames(frames_dir, limit)
    frames = sorted(frames_dir.glob("*.png"))
    store = LocalStore(workdir / "detector_bench", "")

    # Start (and time) the pool outside the measured run: a service keeps it warm.
    jobs = resolve_jobs(OURS.jobs)
    start = time.perf_counter()
    if jobs > 1:
        for future in [get_pool(jobs).submit(time.sleep, 0.2) for _ in range(jobs)]:
            future.result()
    pool_seconds = time.perf_counter() - start
    pool = get_pool(jobs) if jobs > 1 else None
    worker_pids = list(getattr(pool, "_processes", {}) or {}) if pool else []

    start = time.perf_counter()
    summary = extract_face_set(store, "frames", "faces", OURS)
    ours_seconds = time.perf_counter() - start
    all_frames = summary_frames(store)
    ours_frames = {i: f for i, f in enumerate(all_frames) if f.faces}
    ours_with_face = set(ours_frames)

    # The same without tracking (the CLI's defaults): the fast path + processes + recovery alone.
    untracked = DetectOptions(detect_max_side=OURS.detect_max_side, jobs=OURS.jobs)
    start = time.perf_counter()
    untracked_summary = extract_face_set(store, "frames", "faces_untracked", untracked)
    untracked_fps = n / (time.perf_counter() - start)
    untracked_frames = summary_frames(store, "faces_untracked")

    naive_seconds, naive_landmarks, naive_boxes = naive_loop(frames)
    naive_with_face = set(naive_landmarks)
    lost = len(naive_with_face - ours_with_face)
    ours_fps, naive_fps = n / ours_seconds, n / naive_seconds
    naive_faces, missed = recall(naive_boxes, all_frames)
    _, untracked_missed = recall(naive_boxes, untracked_frames)
    ours_recall = (naive_faces - missed) / max(1, naive_faces)
    untracked_recall = (naive_faces - untracked_missed) / max(1, naive_faces)
    # Same results: mean landmark distance (px, full frame) between ours and the naive loop.
    diffs = [
        float(np.linalg.norm(ours_frames[i].faces[0].landmarks_array - lm, axis=1).mean())
        for i, lm in naive_landmarks.items()
        if i in ours_frames
    ]
    landmark_diff = float(np.mean(diffs)) if diffs else float("nan")
    rss = _rss_mb(worker_pids)
    note = f"{jobs} workers, detect_max_side={OURS.detect_max_side}, track_interval={OURS.track_interval}"
    rows = [
        {
            "stage": "detector.extract",
            "metric": "frames_per_second",
            "value": round(ours_fps, 3),
            "unit": f"frames/s (recall {ours_recall:.3f} vs naive, {missed} missed)",
            "baseline_name": BASELINE,
            "baseline": round(naive_fps, 3),
            "ratio": round(ours_fps / naive_fps, 3),
            "peak_rss_mb": round(rss, 1),
            "frames": n,
            "config": note,
            "recall": round(ours_recall, 4),
            "naive_faces_missed": missed,
        },
        {
            "stage": "detector.extract",
            "metric": "recall_vs_naive",
            "value": round(ours_recall, 4),
            "unit": f"share of the naive loop's {naive_faces} faces ({missed} missed)",
            "baseline_name": "naive full-resolution loop",
            "baseline": 1.0,
            "ratio": round(ours_recall, 4),
            "peak_rss_mb": round(rss, 1),
            "naive_faces": naive_faces,
            "naive_faces_missed": missed,
            "faces_tracked": summary.faces_tracked,
            "faces_interpolated": summary.faces_interpolated,
        },
        {
            "stage": "detector.extract",
            "metric": "face_frame_share",
            "value": round(len(ours_with_face) / n, 4),
            "unit": "share of frames",
            "baseline_name": BASELINE,
            "baseline": round(len(naive_with_face) / n, 4),
            "ratio": round(len(ours_with_face) / max(1, len(naive_with_face)), 4),
            "peak_rss_mb": round(rss, 1),
            "frames_lost": lost,
            "faces": summary.faces_total,
        },
        {
            "stage": "detector.extract_untracked",
            "metric": "frames_per_second",
            "value": round(untracked_fps, 3),
            "unit": f"frames/s (recall {untracked_recall:.3f} vs naive, {untracked_missed} missed)",
            "baseline_name": BASELINE,
            "baseline": round(naive_fps, 3),
            "ratio": round(untracked_fps / naive_fps, 3),
            "peak_rss_mb": round(rss, 1),
            "config": f"{jobs} workers, detect_max_side={OURS.detect_max_side}, detect every frame",
            "recall": round(untracked_recall, 4),
            "naive_faces_missed": untracked_missed,
            "faces_tracked": untracked_summary.faces_tracked,
            "faces_interpolated": untracked_summary.faces_interpolated,
        },
        {
            "stage": "detector.extract",
            "metric": "landmark_mean_diff_px",
            "value": round(landmark_diff, 3),
            "unit": "px (1280x720 frame)",
            "baseline_name": BASELINE,
            "baseline": 0.0,
            "ratio": 0.0,
            "peak_rss_mb": round(rss, 1),
        },
        {
            "stage": "detector.pool_start",
            "metric": "seconds",
            "value": round(pool_seconds, 3),
            "unit": "s",
            "baseline_name": "none (one-off per process)",
            "baseline": 0.0,
            "ratio": 0.0,
            "peak_rss_mb": round(rss, 1),
        },
    ]
    return rows


def summary_frames(store: LocalStore, prefix: str = "faces"):  # type: ignore[no-untyped-def]
    from faceswap.face.alignments import Alignments

    return Alignments.loads(store.get_bytes(alignments_key(prefix))).frames


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description="detector benchmark")
    parser.add_argument("--full", action="store_true", help="whole clip (default: quick, 30 frames)")
    cli = parser.parse_args()
    os.environ.setdefault("FACESWAP_LOG_FORMAT", "text")
    with tempfile.TemporaryDirectory() as tmp:
        for result in run(quick=not cli.full, workdir=Path(tmp)):
            print(json.dumps(result))
