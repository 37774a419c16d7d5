"""The scheduler: claims jobs from the store up to the concurrency limit and runs each in a thread.

Each running job holds a lease in the database that a heartbeat renews; the heartbeat also notices
a cancel request (state CANCELLING) and a lost lease (another replica took over: stop, write nothing).
On shutdown the scheduler stops its jobs at the next safe point and releases their leases, so a
restarted (or another) orchestrator resumes them at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc
from prometheus_client import Counter, Gauge

from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator.cleanup import cleanup_due, run_cleanup, sweep
from services.orchestrator.runner import JobCancelled, JobRunner, StageFailed
from services.orchestrator.settings import OrchestratorSettings, load_orchestrator_settings
from services.orchestrator.store import (
    CANCELLED,
    CANCELLING,
    FAILED,
    QUEUED,
    SUCCEEDED,
    JobRecord,
    JobStore,
    LeaseLost,
)

log = logging.getLogger("faceswap.orchestrator.worker")

JOBS_RUNNING = Gauge("faceswap_orchestrator_jobs_running", "Jobs this orchestrator is running")
JOBS_FINISHED = Counter("faceswap_orchestrator_jobs_finished_total", "Jobs finished", ["state"])
# The database's backlog, the same on every replica (aggregate with max): alerts and autoscaling.
JOBS_QUEUED = Gauge("faceswap_orchestrator_jobs_queued", "Jobs waiting for a free slot on any replica")
PROGRESS_INTERVAL = 1.0  # seconds between progress events of one job (stage changes always go out)


class _Stopping(Exception):
    """The orchestrator is shutting down (or lost the lease): leave the job for another worker."""


class JobContext:
    """The runner's handle on one leased job: progress, recorded outputs, cancellation."""

    def __init__(self, store: JobStore, job: JobRecord, worker: str) -> None:
        self.store = store
        self.job_id = job.id
        self.worker = worker
        self.outputs: dict[str, Any] = dict(job.outputs)
        self.cancelled = threading.Event()  # set on cancel, shutdown or lost lease
        self.stopping = threading.Event()  # shutdown or lost lease (not a user cancel)
        self._last_emit = 0.0
        self._stage = job.stage
        self._done, self._total = job.progress_done, job.progress_total

    def _write(self, **kwargs: Any) -> None:
        try:
            self.store.update_job(self.job_id, self.worker, **kwargs)
        except LeaseLost:
            self.stopping.set()
            self.cancelled.set()
            raise _Stopping() from None

    def progress(
        self,
        stage: str,
        done: int,
        total: int,
        eta: float = 0.0,
        message: str | None = None,
        preview: str | None = None,
        force: bool = False,
    ) -> None:
        """Negative done/total keep the current figures (for a log line)."""
        if done >= 0:
            self._done = done
        if total >= 0:
            self._total = total
        now = time.monotonic()
        changed = stage != self._stage
        self._stage = stage
        if not (force or changed or message or preview) and now - self._last_emit < PROGRESS_INTERVAL:
            return
        self._last_emit = now
        self._write(
            stage=stage,
            done=self._done,
            total=self._total,
            eta_seconds=max(0.0, eta),
            message=message,
            preview_key=preview,
        )

    def record(self, outputs: dict[str, Any], stage: str, message: str) -> None:
        self.outputs.update(outputs)
        self._stage = stage
        self._write(stage=stage, done=self._done, total=self._total, outputs=outputs, message=message)


class Scheduler:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        settings: OrchestratorSettings | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.settings = settings or load_orchestrator_settings()
        self.worker_id = self.settings.worker_id
        self._stop = threading.Event()
        self._running: dict[str, tuple[threading.Thread, JobContext]] = {}
        self._lock = threading.Lock()
        self._loop: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self._sweeper: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        reclaimed = self.store.release_worker(self.worker_id)
        if reclaimed:
            log.info("resuming %d job(s) of this worker id", reclaimed)
        self._loop = threading.Thread(target=self._claim_loop, name="job-claims", daemon=True)
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="job-leases", daemon=True)
        self._sweeper = threading.Thread(target=self._sweep_loop, name="job-cleanup", daemon=True)
        self._loop.start()
        self._heartbeat.start()
        self._sweeper.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stops claiming, interrupts running jobs and releases their leases for another worker."""
        self._stop.set()
        with self._lock:
            running = list(self._running.values())
        for _thread, ctx in running:
            ctx.stopping.set()
            ctx.cancelled.set()
        deadline = time.monotonic() + timeout
        for thread, _ctx in running:
            thread.join(max(0.1, deadline - time.monotonic()))
        for thread in (self._loop, self._heartbeat, self._sweeper):
            if thread is not None:
                thread.join(2)

    def cancel_local(self, job_id: str) -> None:
        """CancelJob reached the replica running the job: stop it now rather than at the heartbeat."""
        with self._lock:
            entry = self._running.get(job_id)
        if entry is not None:
            entry[1].cancelled.set()

    def running_jobs(self) -> list[str]:
        with self._lock:
            return list(self._running)

    # ---- loops ----------------------------------------------------------------------------------
    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            token = self.store.change_token()
            job = None
            try:
                with self._lock:
                    free = len(self._running) < self.settings.max_running_jobs
                if free:
                    job = self.store.claim_job(
                        self.worker_id, self.settings.lease_seconds, self.settings.max_running_jobs
                    )
            except Exception as exc:  # database briefly unreachable: try again later
                log.warning("claiming a job failed: %s", exc)
            if job is not None:
                self._start_job(job)
                continue
            self._count_queued()
            self.store.wait_for_change(token, self.settings.poll_seconds)

    def _count_queued(self) -> None:
        try:
            with self.store._read() as cur:
                row = cur.execute(
                    self.store._sql("SELECT COUNT(*) AS n FROM jobs WHERE state = ?"), (QUEUED,)
                ).fetchone()
            JOBS_QUEUED.set(int(row["n"]))
        except Exception as exc:  # a metric must never stop the claim loop
            log.debug("counting queued jobs failed: %s", exc)

    def _heartbeat_loop(self) -> None:
        # Often enough that another replica's CancelJob is noticed within ~2 s.
        interval = max(0.2, min(2.0, self.settings.lease_seconds / 3))
        while not self._stop.wait(interval):
            with self._lock:
                running = list(self._running.items())
            for job_id, (_thread, ctx) in running:
                try:
                    job = self.store.renew_lease(job_id, self.worker_id, self.settings.lease_seconds)
                    if job.state == CANCELLING:
                        ctx.cancelled.set()
                except LeaseLost:
                    log.warning("lost the lease of job %s; leaving it to its new owner", job_id)
                    ctx.stopping.set()
                    ctx.cancelled.set()
                except Exception as exc:
                    log.warning("renewing the lease of job %s failed: %s", job_id, exc)

    def _sweep_loop(self) -> None:
        """Ended jobs whose clean-up failed (storage down) or was postponed (retention) are cleaned
        up once it is due and storage answers again."""
        objects = getattr(self.runner, "objects", None)
        if objects is None:
            return
        while not self._stop.wait(self.settings.cleanup_sweep_seconds):
            try:
                sweep(objects, self.store, self.settings)
            except Exception as exc:  # database briefly unreachable: next round
                log.warning("cleanup sweep failed: %s", exc)

    def _start_job(self, job: JobRecord) -> None:
        ctx = JobContext(self.store, job, self.worker_id)
        if job.state == CANCELLING:
            ctx.cancelled.set()
        thread = threading.Thread(
            target=self._run_job, args=(job, ctx), name=f"job-{job.id[:8]}", daemon=True
        )
        with self._lock:
            self._running[job.id] = (thread, ctx)
            JOBS_RUNNING.set(len(self._running))
        thread.start()

    def _run_job(self, job: JobRecord, ctx: JobContext) -> None:
        try:
            self._execute(job, ctx)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                JOBS_RUNNING.set(len(self._running))
            self.store._wake()  # a slot is free: let the claim loop look again

    def _execute(self, job: JobRecord, ctx: JobContext) -> None:
        spec = jobs_pb2.SwapJobSpec()
        spec.ParseFromString(job.spec)
        log.info("running job %s (attempt %d)", job.id, job.attempts, extra={"job": job.id})
        try:
            result = self.runner.run(ctx, spec)
        except (_Stopping, JobCancelled):
            if ctx.stopping.is_set():
                self._release(job.id, "orchestrator stopping; the job resumes elsewhere")
            else:
                self._finish(job.id, CANCELLED, message="job cancelled")
            return
        except StageFailed as exc:
            if ctx.stopping.is_set():
                self._release(job.id, "orchestrator stopping; the job resumes elsewhere")
                return
            if exc.code == grpc.StatusCode.CANCELLED and ctx.cancelled.is_set():
                self._finish(job.id, CANCELLED, message="job cancelled")
                return
            self._finish(
                job.id,
                FAILED,
                message=f"failed at {exc.stage}",
                error_code=exc.code.value[0],
                error_message=exc.message,
                error_where=exc.stage,
            )
            return
        except Exception as exc:  # a bug: fail the job with a reason, never leave it hanging
            log.exception("job %s crashed", job.id)
            if ctx.stopping.is_set():
                self._release(job.id, "orchestrator stopping; the job resumes elsewhere")
                return
            self._finish(
                job.id,
                FAILED,
                message="internal error",
                error_code=grpc.StatusCode.INTERNAL.value[0],
                error_message=f"{type(exc).__name__}: {exc}",
                error_where=ctx._stage,
            )
            return
        self._finish(
            job.id,
            SUCCEEDED,
            message="job succeeded",
            output_key=result.output_key,
            report_key=result.report_key,
        )

    def _finish(self, job_id: str, state: str, **kwargs: Any) -> None:
        try:
            due = cleanup_due(state, self.settings)
            self.store.finish_job(job_id, self.worker_id, state, cleanup_after=due, **kwargs)
            JOBS_FINISHED.labels(state).inc()
            log.info("job %s %s", job_id, state, extra={"job": job_id})
        except LeaseLost:
            log.warning("job %s was taken over before it could be marked %s", job_id, state)
            return
        objects = getattr(self.runner, "objects", None)
        if objects is not None:  # frames, crops and uploads are scratch once the job is over
            run_cleanup(objects, self.store, job_id, self.settings)  # if it fails: the sweep retries

    def _release(self, job_id: str, message: str) -> None:
        try:
            self.store.release_job(job_id, self.worker_id, message)
        except Exception as exc:
            log.warning("releasing job %s failed: %s", job_id, exc)
