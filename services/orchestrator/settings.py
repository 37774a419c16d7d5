"""The orchestrator's own configuration variables (the shared ones live in faceswap.config)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from faceswap.config import env

ORCHESTRATOR_ENV_DOCS: dict[str, tuple[str, str]] = {
    "FACESWAP_MAX_RUNNING_JOBS": ("1", "jobs running at once across all orchestrators; the rest wait QUEUED"),
    "FACESWAP_JOB_LEASE_SECONDS": ("30", "a job whose orchestrator stops renewing for this long is resumed"),
    "FACESWAP_STAGE_RETRY_SECONDS": ("300", "how long a stage retries UNAVAILABLE/DEADLINE_EXCEEDED"),
    "FACESWAP_CONVERT_CHUNK_FRAMES": ("0", "frames per conversion chunk (0 = about 10 chunks per video)"),
    "FACESWAP_WORKER_ID": ("", "stable orchestrator id (a restart reclaims its own jobs at once)"),
    "FACESWAP_MAX_UPLOAD_MB": ("2048", "largest file UploadFile accepts, MiB (see faceswap.limits)"),
    "FACESWAP_POLL_SECONDS": ("1.0", "how often idle workers and SQLite watchers poll the database"),
    "FACESWAP_FAILED_RETENTION_S": (
        "0",
        "seconds a FAILED/CANCELLED job's temporary objects are kept (debugging) before the sweep removes them",
    ),
    "FACESWAP_CLEANUP_SWEEP_S": (
        "30",
        "how often ended jobs whose clean-up failed (storage down) or is postponed are cleaned up again",
    ),
}


def orch_env(name: str) -> str:
    return env(name, ORCHESTRATOR_ENV_DOCS)


@dataclass(frozen=True)
class OrchestratorSettings:
    max_running_jobs: int
    lease_seconds: float
    stage_retry_seconds: float
    convert_chunk_frames: int
    worker_id: str
    max_upload_bytes: int
    poll_seconds: float
    failed_retention_seconds: float = 0.0
    cleanup_sweep_seconds: float = 30.0


def load_orchestrator_settings() -> OrchestratorSettings:
    worker = orch_env("FACESWAP_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return OrchestratorSettings(
        max_running_jobs=max(1, int(orch_env("FACESWAP_MAX_RUNNING_JOBS"))),
        lease_seconds=max(1.0, float(orch_env("FACESWAP_JOB_LEASE_SECONDS"))),
        stage_retry_seconds=max(0.0, float(orch_env("FACESWAP_STAGE_RETRY_SECONDS"))),
        convert_chunk_frames=max(0, int(orch_env("FACESWAP_CONVERT_CHUNK_FRAMES"))),
        worker_id=worker,
        max_upload_bytes=int(float(orch_env("FACESWAP_MAX_UPLOAD_MB")) * 1024 * 1024),
        poll_seconds=max(0.05, float(orch_env("FACESWAP_POLL_SECONDS"))),
        failed_retention_seconds=max(0.0, float(orch_env("FACESWAP_FAILED_RETENTION_S"))),
        cleanup_sweep_seconds=max(0.2, float(orch_env("FACESWAP_CLEANUP_SWEEP_S"))),
    )
