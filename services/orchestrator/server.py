"""JobService: the product's front door. Each RPC is a few lines over the job store and object store.

Run: ``python -m services.orchestrator.server --port 50050``. The same process runs the scheduler
that claims queued jobs and drives them through the other services (worker.py, runner.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from faceswap.config import load_settings
from faceswap.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted, echo
from faceswap.storage import CHUNK, ObjectStore, open_store, validate_key
from services.common.auth import current_client
from services.common.pb.faceswap.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from services.common.server import ServiceSpec, serve
from services.orchestrator.claim_loop import Scheduler
from services.orchestrator.cleanup import cleanup_due, run_cleanup
from services.orchestrator.jobs import (
    PROTO_TO_STATE,
    STATE_TO_PROTO,
    check_ref_access,
    event_to_proto,
    extension,
    job_to_proto,
    known_presets,
    owns_upload,
    parse_job_name,
    scoped_request_id,
    spec_hash,
    upload_tag,
    validate_spec,
)
from services.orchestrator.runner import JobRunner
from services.orchestrator.settings import OrchestratorSettings, load_orchestrator_settings
from services.orchestrator.store import CANCELLED, JobRecord, JobStore, open_job_store

MAX_PAGE_SIZE = 500
DOWNLOADABLE_PREFIXES = ("jobs/", "uploads/")


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        jobs: JobStore,
        objects: ObjectStore,
        settings: OrchestratorSettings,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.jobs = jobs
        self.objects = objects
        self.settings = settings
        self.scheduler = scheduler
        self.closing = threading.Event()  # ends watch streams on shutdown

    def _job(self, name: str) -> JobRecord:
        job = self.jobs.get_job(parse_job_name(name))
        if job.owner and job.owner != current_client():
            raise NotFound(f"job {name!r} not found")  # another client's job: do not reveal it
        return job

    def _owns_job(self, job_id: str) -> bool:
        try:
            return self.jobs.get_job(job_id).owner in ("", current_client())
        except NotFound:
            return False

    def _proto(self, job: JobRecord) -> jobs_pb2.Job:
        return job_to_proto(job, self.objects.bucket)

    def SubmitSwapJob(self, request, context):  # noqa: N802
        if len(request.request_id) > 200:
            raise InvalidArgument("longer than 200 characters", field="request_id")
        if not request.HasField("spec"):
            raise InvalidArgument("is required", field="spec")
        client = current_client()
        rhash = spec_hash(request.spec)
        # Idempotency keys are per client: two clients may both use request_id "1".
        request_id = scoped_request_id(client, request.request_id)
        existing = self.jobs.find_by_request_id(request_id) if request_id else None
        if existing is not None and existing.request_hash == rhash and existing.owner == client:
            # A retried submit: the same job, even if its uploads were cleaned up since.
            return jobs_pb2.SubmitSwapJobResponse(job=self._proto(existing), created=False)
        check_ref_access(request.spec, self._owns_job)
        validate_spec(request.spec, self.objects)
        job, created = self.jobs.create_job(
            request_id=request_id,
            request_hash=rhash,
            spec=request.spec.SerializeToString(deterministic=True),
            owner=client,
        )
        if not created and job.owner != client:
            raise AlreadyExists(f"request_id {echo(request.request_id)} belongs to another client")
        return jobs_pb2.SubmitSwapJobResponse(job=self._proto(job), created=created)

    def GetJob(self, request, context):  # noqa: N802
        return jobs_pb2.GetJobResponse(job=self._proto(self._job(request.name)))

    def ListJobs(self, request, context):  # noqa: N802
        if request.page_size < 0:
            raise InvalidArgument("must be >= 0", field="page_size")
        if request.state and request.state not in PROTO_TO_STATE:
            raise InvalidArgument(f"unknown state {request.state}", field="state")
        size = min(request.page_size or 50, MAX_PAGE_SIZE)
        jobs, token = self.jobs.list_jobs(
            state=PROTO_TO_STATE.get(request.state),
            page_size=size,
            page_token=request.page_token,
            owner=current_client(),
        )
        return jobs_pb2.ListJobsResponse(jobs=[self._proto(j) for j in jobs], next_page_token=token)

    def WatchJob(self, request, context) -> Iterator[jobs_pb2.WatchJobResponse]:  # noqa: N802
        if request.after_sequence < 0:
            raise InvalidArgument("must be >= 0", field="after_sequence")
        job = self._job(request.name)
        snapshot = jobs_pb2.JobEvent(
            sequence=0,
            time=self._proto(job).update_time,
            state=STATE_TO_PROTO[job.state],
            progress=self._proto(job).progress,
            message="snapshot",
        )
        yield jobs_pb2.WatchJobResponse(job=self._proto(job), event=snapshot)
        cursor = request.after_sequence
        while context.is_active() and not self.closing.is_set():
            token = self.jobs.change_token()
            events = self.jobs.list_events(job.id, cursor)
            if events:
                job = self.jobs.get_job(job.id)
                for event in events:
                    yield jobs_pb2.WatchJobResponse(
                        job=self._proto(job), event=event_to_proto(event, self.objects.bucket)
                    )
                    cursor = event.sequence
                continue
            job = self.jobs.get_job(job.id)
            if job.terminal and job.last_sequence <= cursor:
                return  # the job is over and the client has every event
            self.jobs.wait_for_change(token, 2.0)

    def CancelJob(self, request, context):  # noqa: N802
        job = self._job(request.name)
        job = self.jobs.request_cancel(job.id)
        if job.state == CANCELLED and job.cleanup_after:  # cancelled while queued: no worker cleans up
            if self.settings.failed_retention_seconds:
                self.jobs.set_cleanup(job.id, cleanup_due(CANCELLED, self.settings))
            else:
                run_cleanup(self.objects, self.jobs, job.id, self.settings)
        if self.scheduler is not None:
            self.scheduler.cancel_local(job.id)
        return jobs_pb2.CancelJobResponse(job=self._proto(job))

    def UploadFile(self, request_iterator, context):  # noqa: N802
        tmp_dir = load_settings().data_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".part")
        ext, size, last = "", 0, False
        try:
            with os.fdopen(fd, "wb") as out:
                for i, msg in enumerate(request_iterator):
                    if last:
                        raise InvalidArgument("a message came after the one marked last", field="last")
                    if i == 0:
                        ext = extension(msg.filename)
                    size += len(msg.chunk)
                    if size > self.settings.max_upload_bytes:
                        raise ResourceExhausted(
                            f"upload is larger than FACESWAP_MAX_UPLOAD_MB "
                            f"({self.settings.max_upload_bytes // (1024 * 1024)} MiB)"
                        )
                    out.write(msg.chunk)
                    last = msg.last
            if not last:
                _cut_off(context)
            if size == 0:
                raise InvalidArgument("the uploaded file is empty", field="chunk")
            # The key comes from a fresh id, never from the client's file name (only its extension).
            key = f"uploads/{upload_tag(current_client())}{uuid.uuid4().hex}{ext}"
            info = self.objects.put_file(key, tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return jobs_pb2.UploadFileResponse(
            object=common_pb2.ObjectRef(
                bucket=self.objects.bucket, key=key, size_bytes=info.size, sha256=info.sha256
            )
        )

    def DownloadFile(self, request, context) -> Iterator[jobs_pb2.DownloadFileResponse]:  # noqa: N802
        ref = request.object
        if ref.bucket and ref.bucket != self.objects.bucket:
            raise InvalidArgument(f"unknown bucket {echo(ref.bucket)}", field="object.bucket")
        try:
            key = validate_key(ref.key)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field="object.key") from None
        if not key.startswith(DOWNLOADABLE_PREFIXES):
            raise NotFound(f"object {key!r} not found")
        if key.startswith("jobs/"):
            self._job(key.split("/")[1])  # only the owner of the job may read its files
        elif not owns_upload(key, current_client()):
            raise NotFound(f"object {key[:200]!r} not found")  # another client's upload: not revealed
        with self.objects.open(key) as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                if not context.is_active():
                    return
                yield jobs_pb2.DownloadFileResponse(chunk=block)


def _cut_off(context: grpc.ServicerContext) -> None:
    """An upload stream ended without its last message: nothing is stored. grpc can end a
    cancelled client's request stream like a finished one, a moment before the call itself reads
    as cancelled, so that moment is waited for: then it counts as CANCELLED, not a client error."""
    deadline = time.monotonic() + 1.0
    while context.is_active() and time.monotonic() < deadline:
        time.sleep(0.01)
    raise InvalidArgument(
        "the upload ended without a message marked last: it was cut off, so nothing was stored",
        field="last",
    )


def make_runner(objects: ObjectStore, settings: OrchestratorSettings | None = None) -> JobRunner:
    """The runner FACESWAP_RUNNER selects: '' = every stage through the services over gRPC,
    'kubernetes' = training and conversion as Kubernetes Jobs (k8s_runner.py)."""
    if os.environ.get("FACESWAP_RUNNER", "") == "kubernetes":
        # Imported only here: the kubernetes client takes a second to load and is optional.
        from services.orchestrator.k8s_runner import KubernetesJobRunner

        return KubernetesJobRunner(objects, settings=settings)
    return JobRunner(objects, settings=settings)


def build_spec(
    store: ObjectStore | None = None,
    job_store: JobStore | None = None,
    run_jobs: bool = True,
) -> ServiceSpec:
    """The JobService and, unless run_jobs is False (an API-only replica), the job scheduler."""
    objects = store or open_store()
    jobs = job_store or open_job_store()
    settings = load_orchestrator_settings()
    scheduler = Scheduler(jobs, make_runner(objects, settings), settings) if run_jobs else None
    servicer = JobServicer(jobs, objects, settings, scheduler)

    def register(server: grpc.Server) -> None:
        # Validation reads the trainer's preset list (imports torch): load it before we answer health
        # checks, not on the first submit.
        known_presets()
        jobs_pb2_grpc.add_JobServiceServicer_to_server(servicer, server)
        if scheduler is not None:
            scheduler.start()

    def on_stop() -> None:
        servicer.closing.set()
        if scheduler is not None:
            scheduler.stop()
        if job_store is None:
            jobs.close()

    spec = ServiceSpec(
        name="orchestrator",
        register=register,
        service_names=[jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name],
        on_stop=on_stop,
        public=True,
    )
    spec.servicer = servicer  # type: ignore[attr-defined]  # for in-process tests
    spec.scheduler = scheduler  # type: ignore[attr-defined]
    return spec


def default_port() -> int:
    return int(load_settings().addresses["jobs"].rsplit(":", 1)[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faceswap job API (orchestrator)")
    parser.add_argument("--port", type=int, default=None, help="gRPC port (default: FACESWAP_JOBS_ADDR's)")
    args = parser.parse_args(argv)
    serve(build_spec(), args.port if args.port is not None else default_port())


if __name__ == "__main__":
    main()
