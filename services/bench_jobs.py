"""Orchestrator benchmarks (``make bench``): the job API and store, and a whole job through the services
against the same work done in one process.

Rows:
- ``job_store_claims_per_s``: submit + claim + finish cycles per second on SQLite (embedded store);
  baseline: bare INSERT + UPDATE of the same rows in one SQLite connection (the store's overhead).
- ``job_api_submit_watch_ms`` (full run only): milliseconds from SubmitSwapJob to the first WatchJob
  event over gRPC; baseline: GetJob round trip.
- ``job_end_to_end_fps`` (full run only): frames of A per second through every service (gRPC,
  object storage, job store, subprocesses), against the same stages called in one process on the
  same 1.2 s clip; the ratio is the platform's overhead (1.0 = none).
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_store(workdir: Path, n: int) -> dict[str, Any]:
    from services.orchestrator.store import SUCCEEDED, SQLiteJobStore

    store = SQLiteJobStore(workdir / "bench-jobs.sqlite3")
    store.migrate()
    start = time.perf_counter()
    for i in range(n):
        job, _ = store.create_job(request_id=f"r{i}", request_hash="h", spec=b"x")
        claimed = store.claim_job("bench", 30, max_running=1)
        assert claimed is not None and claimed.id == job.id
        store.finish_job(job.id, "bench", SUCCEEDED)
    ours = n / (time.perf_counter() - start)
    store.close()
    conn = sqlite3.connect(workdir / "bench-bare.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # as the store
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, state TEXT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("INSERT INTO t (state) VALUES ('QUEUED')")
        conn.execute("UPDATE t SET state = 'RUNNING' WHERE id = ?", (i + 1,))
        conn.execute("UPDATE t SET state = 'SUCCEEDED' WHERE id = ?", (i + 1,))
    bare = n / (time.perf_counter() - start)
    conn.close()
    return {
        "stage": "orchestrator",
        "metric": "job_store_claims_per_s",
        "value": round(ours, 1),
        "unit": "jobs/s",
        "baseline_name": "bare SQLite insert + 2 updates (3 transactions, as ours)",
        "baseline": round(bare, 1),
        "ratio": round(ours / bare, 3) if bare else 0.0,
        "peak_rss_mb": _rss_mb(),
        "notes": f"{n} jobs: create (with event), claim (lease, limit check), finish; WAL, synchronous=NORMAL",
    }


def _cut_clips(workdir: Path) -> tuple[Path, Path]:
    from faceswap.media.store import find_ffmpeg

    out = []
    for src, name, start, secs, scale in (
        ("liveportrait_s18.mp4", "a.mp4", 1.0, 1.2, "640:360"),
        ("liveportrait_d10.mp4", "b.mp4", 2.0, 1.5, "256:256"),
    ):
        dst = workdir / name
        subprocess.run(
            [
                *(find_ffmpeg(), "-v", "error", "-y", "-ss", str(start), "-i", str(ROOT / "samples" / src)),
                *("-t", str(secs), "-vf", f"scale={scale}", "-c:v", "libx264", "-preset", "veryfast"),
                *("-c:a", "aac", str(dst)),
            ],
            check=True,
        )
        out.append(dst)
    return out[0], out[1]


def in_process_job(workdir: Path, video_a: Path, video_b: Path) -> tuple[float, int]:
    """The same stages as a job, called directly on a LocalStore (no gRPC, no job store)."""
    from faceswap.face.alignments import alignments_key
    from faceswap.face.extract import DetectOptions, extract_face_set
    from faceswap.media.store import encode_video, extract_frames
    from faceswap.storage import LocalStore
    from services.converter.swap import convert_frames
    from services.trainer.loop import TrainOptions, train

    store = LocalStore(workdir / "inproc", "bench")
    store.put_file("in/a.mp4", video_a)
    store.put_file("in/b.mp4", video_b)
    start = time.perf_counter()
    frames = extract_frames(store, "in/a.mp4", "j/frames").frame_count
    extract_frames(store, "in/b.mp4", "j/b_frames")
    a = extract_face_set(store, "j/frames", "j/faces_a", DetectOptions())
    extract_face_set(store, "j/b_frames", "j/faces_b", DetectOptions())
    train(store, "j/faces_a", "j/faces_b", "j/model", TrainOptions(preset="lite", steps=STEPS, batch_size=4))
    convert_frames(
        store, "j/frames", a.alignments_key or alignments_key("j/faces_a"), "j/model", "j/converted"
    )
    encode_video(store, "j/converted", "j/output.mp4", audio_from_key="in/a.mp4")
    return time.perf_counter() - start, frames


def services_job(workdir: Path, video_a: Path, video_b: Path) -> tuple[float, int, float, float]:
    from services.common.pb.faceswap.v1 import jobs_pb2
    from services.orchestrator.client import JobClient
    from services.orchestrator.launcher import ServiceGroup

    env = {"FACESWAP_DATA_DIR": str(workdir / "svc"), "FACESWAP_STORAGE": "local", "FACESWAP_DB_URL": ""}
    env["FACESWAP_POLL_SECONDS"] = "0.2"
    with (
        ServiceGroup(env=env, log_dir=workdir / "svc-logs") as group,
        JobClient(group.jobs_address) as client,
    ):
        spec = jobs_pb2.SwapJobSpec(video=client.upload(video_a), faces_b=[client.upload(video_b)])
        spec.options.train.preset, spec.options.train.steps, spec.options.train.batch_size = "lite", STEPS, 4
        spec.options.skip_evaluate = True
        t0 = time.perf_counter()
        job, _ = client.submit(spec)
        first_event_ms = 0.0
        for _ in client.watch(job.name):
            if not first_event_ms:
                first_event_ms = (time.perf_counter() - t0) * 1000
        seconds = time.perf_counter() - t0
        final = client.get(job.name)
        assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
        t1 = time.perf_counter()
        for _ in range(20):
            client.get(job.name)
        get_ms = (time.perf_counter() - t1) * 1000 / 20
        frames = int(final.progress.total) or 0
    return seconds, frames, first_event_ms, get_ms


def run(quick: bool, workdir: Path) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    rows = [bench_store(workdir, 100 if quick else 500)]
    if quick:
        return rows
    video_a, video_b = _cut_clips(workdir)
    svc_seconds, frames, first_ms, get_ms = services_job(workdir, video_a, video_b)
    inproc_seconds, frames_inproc = in_process_job(workdir, video_a, video_b)
    frames = frames or frames_inproc
    rows.append(
        {
            "stage": "orchestrator",
            "metric": "job_api_submit_watch_ms",
            "value": round(first_ms, 1),
            "unit": "ms",
            "baseline_name": "GetJob round trip",
            "baseline": round(get_ms, 2),
            "ratio": round(first_ms / get_ms, 2) if get_ms else 0.0,
            "peak_rss_mb": _rss_mb(),
            "notes": "SubmitSwapJob -> first WatchJob event, gRPC on localhost, SQLite",
        }
    )
    rows.append(
        {
            "stage": "orchestrator",
            "metric": "job_end_to_end_fps",
            "value": round(frames_inproc / svc_seconds, 3),
            "unit": "frames/s",
            "baseline_name": "same stages in one process",
            "baseline": round(frames_inproc / inproc_seconds, 3),
            "ratio": round(inproc_seconds / svc_seconds, 3),
            "peak_rss_mb": _rss_mb(),
            "notes": (
                f"{frames_inproc} frames 640x360 + 1.5 s of B, lite {STEPS} steps, no report; "
                f"services {svc_seconds:.1f} s vs one process {inproc_seconds:.1f} s"
            ),
        }
    )
    return rows


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run("--quick" in sys.argv, Path(tmp)), indent=1))
