"""Removes a job's temporary objects when it ends, so storage holds results, not scratch.

SUCCEEDED keeps the output video, the quality report, the model, the loss log and the alignments files
(small, and what a user inspects); frames, face crops, converted frames, the job's input copies and its
uploads go. FAILED and CANCELLED keep only the model (a resubmit can warm-start from it) and the job
record. FACESWAP_KEEP_INTERMEDIATE=1 keeps everything (debugging).

An upload still named by another queued or running job is kept: clients may reuse one upload.

Durable: a job's ``cleanup_after`` (set when it ends) says when its clean-up is due, and is cleared
only once the clean-up succeeded. A clean-up that failed (storage read-only or unreachable when the
job ended, which is often why it failed) or that FACESWAP_FAILED_RETENTION_S postponed is done by
``sweep``, which every orchestrator runs every FACESWAP_CLEANUP_SWEEP_S.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import Counter

from faceswap.face.alignments import alignments_key
from faceswap.storage import ObjectStore, join_key
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.jobs import JobKeys
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.store import CANCELLING, QUEUED, RUNNING, SUCCEEDED, JobStore

log = logging.getLogger("faceswap.orchestrator.cleanup")

OBJECTS_DELETED = Counter(
    "faceswap_orchestrator_cleanup_objects_total", "Temporary objects deleted when jobs ended"
)


def keep_intermediate() -> bool:
    return os.environ.get("FACESWAP_KEEP_INTERMEDIATE", "0").strip().lower() in ("1", "true", "yes")


def upload_keys(spec: jobs_pb2.SwapJobSpec) -> set[str]:
    refs = [spec.video, *spec.faces_b, *spec.reference_photos, spec.options.train.warm_start]
    return {r.key for r in refs if r.key.startswith("uploads/")}


def _uploads_in_use(jobs: JobStore, exclude: str) -> set[str]:
    used: set[str] = set()
    for state in (QUEUED, RUNNING, CANCELLING):
        token = ""
        while True:
            page, token = jobs.list_jobs(state=state, page_size=500, page_token=token)
            for job in page:
                if job.id != exclude:
                    spec = jobs_pb2.SwapJobSpec()
                    spec.ParseFromString(job.spec)
                    used |= upload_keys(spec)
            if not token:
                break
    return used


def _delete_prefix_except(store: ObjectStore, prefix: str, keep: tuple[str, ...]) -> int:
    n = 0
    for key in list(store.list(prefix)):
        if not key.startswith(keep):
            store.delete(key)
            n += 1
    return n


def cleanup_job(
    objects: ObjectStore, jobs: JobStore, job_id: str, state: str, spec_bytes: bytes
) -> int | None:
    """Deletes the temporary objects of an ended job; returns how many, None when it failed (it is
    retried by the sweep). Never raises."""
    if keep_intermediate():
        return 0
    keys = JobKeys(job_id)
    try:
        if state == SUCCEEDED:
            keep = (
                keys.output,
                keys.report,
                keys.report_dir + "/",
                keys.model + "/",
                keys.loss_log,
                join_key(keys.root, "report.json"),
                alignments_key(keys.faces_a),
                alignments_key(keys.faces_b),
            )
        else:
            keep = (keys.model + "/",)
        n = _delete_prefix_except(objects, keys.root, keep)
        objects.prune(keys.root)  # empty folders, orphan sidecars, unfinished writes
        spec = jobs_pb2.SwapJobSpec()
        spec.ParseFromString(spec_bytes)
        for key in upload_keys(spec) - _uploads_in_use(jobs, job_id):
            if objects.exists(key):
                objects.delete(key)
                n += 1
    except Exception as exc:  # cleanup is housekeeping: a storage hiccup must not change the job's outcome
        log.warning("cleanup of job %s failed (retried later): %s", job_id, exc)
        return None
    OBJECTS_DELETED.inc(n)
    log.info("job %s %s: %d temporary objects deleted", job_id, state, n)
    return n


def cleanup_due(state: str, settings: OrchestratorSettings, now: float | None = None) -> float:
    """When an ending job's clean-up is due: at once, or after FACESWAP_FAILED_RETENTION_S for a
    FAILED/CANCELLED job (its scratch kept to look into)."""
    now = time.time() if now is None else now
    return now if state == SUCCEEDED else now + settings.failed_retention_seconds


def run_cleanup(
    objects: ObjectStore, jobs: JobStore, job_id: str, settings: OrchestratorSettings
) -> int | None:
    """Cleans up an ended job if its clean-up is due, and records the outcome: done (cleared), or
    failed (due again after one sweep interval). Returns what cleanup_job returned (None: not done)."""
    job = jobs.get_job(job_id)
    now = time.time()
    if not job.cleanup_after or job.cleanup_after > now or not job.terminal:
        return None
    n = cleanup_job(objects, jobs, job.id, job.state, job.spec)
    try:
        jobs.set_cleanup(job.id, 0.0 if n is not None else now + settings.cleanup_sweep_seconds)
    except Exception as exc:  # the database is down: the sweep sees the job again later
        log.warning("recording the cleanup of job %s failed: %s", job_id, exc)
    return n


def sweep(objects: ObjectStore, jobs: JobStore, settings: OrchestratorSettings, limit: int = 100) -> int:
    """Cleans up every ended job whose clean-up is due; returns how many jobs were cleaned up."""
    done = 0
    for job in jobs.due_cleanups(time.time(), limit):
        if run_cleanup(objects, jobs, job.id, settings) is not None:
            done += 1
    return done
