"""Removes a job's temporary objects when it ends, so storage holds results, not scratch.

SUCCEEDED keeps the output video, the quality report, the model, the loss log and the alignments files
(small, and what a user inspects); frames, face crops, converted frames, the job's input copies and its
uploads go. FAILED and CANCELLED keep only the model (a resubmit can warm-start from it) and the job
record. FACESWAP_KEEP_INTERMEDIATE=1 keeps everything (debugging).

An upload still named by another queued or running job is kept: clients may reuse one upload.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import Counter

from services.common.pb.faceswap.v1 import jobs_pb2
from services.common.storage import ObjectStore, join_key
from services.orchestrator.jobs import JobKeys
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


def cleanup_job(objects: ObjectStore, jobs: JobStore, job_id: str, state: str, spec_bytes: bytes) -> int:
    """Deletes the temporary objects of an ended job; returns how many. Never raises."""
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
                join_key(keys.faces_a, "alignments.json"),
                join_key(keys.faces_b, "alignments.json"),
            )
        else:
            keep = (keys.model + "/",)
        n = _delete_prefix_except(objects, keys.root, keep)
        spec = jobs_pb2.SwapJobSpec()
        spec.ParseFromString(spec_bytes)
        for key in upload_keys(spec) - _uploads_in_use(jobs, job_id):
            if objects.exists(key):
                objects.delete(key)
                n += 1
    except Exception as exc:  # cleanup is housekeeping: a storage hiccup must not change the job's outcome
        log.warning("cleanup of job %s failed: %s", job_id, exc)
        return 0
    OBJECTS_DELETED.inc(n)
    log.info("job %s %s: %d temporary objects deleted", job_id, state, n)
    return n
