"""A small Python client of the job API: upload inputs, submit, watch (reconnecting), download.

Used by ``faceswap swap|jobs``, the demo and the tests; other programs can use it the same way::

    client = JobClient("127.0.0.1:50050")
    video = client.upload("a.mp4")
    job, _ = client.submit(jobs_pb2.SwapJobSpec(video=video, faces_b=[client.upload("b.mp4")]))
    final = client.wait(job.name, on_event=print)
    client.download(final.output, "out.mp4")
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from faceswap.config import load_settings
from services.common.auth import call_metadata
from services.common.client import make_channel
from services.common.pb.faceswap.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

UPLOAD_CHUNK = 1024 * 1024
TERMINAL = frozenset({jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED})


def state_name(state: int) -> str:
    return jobs_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


class JobClient:
    def __init__(self, address: str, timeout: float = 60.0, token: str | None = None) -> None:
        self.address = address
        self.timeout = timeout
        # The bearer token: given here, or FACESWAP_TOKEN (call_metadata) when None.
        self.token = token
        self.channel = make_channel(address, ["faceswap.v1.JobService"])
        self.stub = jobs_pb2_grpc.JobServiceStub(self.channel)

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token is not None else call_metadata()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload(self, path: str | Path, timeout: float = 3600.0) -> common_pb2.ObjectRef:
        path = Path(path)
        # Each message must fit FACESWAP_MAX_MESSAGE_MB with room for the filename and framing.
        chunk = max(64 * 1024, min(UPLOAD_CHUNK, load_settings().max_message_bytes // 2))

        def chunks() -> Iterator[jobs_pb2.UploadFileRequest]:
            # One block read ahead, so the final message says it is the last (an empty file is
            # one message, so the server can say so).
            with open(path, "rb") as fh:
                block, name = fh.read(chunk), path.name
                while True:
                    ahead = fh.read(chunk) if block else b""
                    yield jobs_pb2.UploadFileRequest(filename=name, chunk=block, last=not ahead)
                    if not ahead:
                        return
                    block, name = ahead, ""

        return self.stub.UploadFile(chunks(), timeout=timeout, metadata=self._metadata()).object

    def submit(self, spec: jobs_pb2.SwapJobSpec, request_id: str = "") -> tuple[jobs_pb2.Job, bool]:
        resp = self.stub.SubmitSwapJob(
            jobs_pb2.SubmitSwapJobRequest(request_id=request_id or uuid.uuid4().hex, spec=spec),
            timeout=self.timeout,
            metadata=self._metadata(),
        )
        return resp.job, resp.created

    def get(self, name: str) -> jobs_pb2.Job:
        return self.stub.GetJob(
            jobs_pb2.GetJobRequest(name=name), timeout=self.timeout, metadata=self._metadata()
        ).job

    def list(self, state: int = 0, page_size: int = 50, page_token: str = "") -> jobs_pb2.ListJobsResponse:
        return self.stub.ListJobs(
            jobs_pb2.ListJobsRequest(state=state, page_size=page_size, page_token=page_token),
            timeout=self.timeout,
            metadata=self._metadata(),
        )

    def cancel(self, name: str) -> jobs_pb2.Job:
        return self.stub.CancelJob(
            jobs_pb2.CancelJobRequest(name=name), timeout=self.timeout, metadata=self._metadata()
        ).job

    def watch(
        self, name: str, after_sequence: int = 0, reconnect_seconds: float = 120.0
    ) -> Iterator[jobs_pb2.WatchJobResponse]:
        """Every event after after_sequence until the job ends; reconnects (resuming) on UNAVAILABLE."""
        cursor, failing_since = after_sequence, None
        while True:
            try:
                for resp in self.stub.WatchJob(
                    jobs_pb2.WatchJobRequest(name=name, after_sequence=cursor),
                    timeout=7 * 86400,
                    metadata=self._metadata(),
                ):
                    failing_since = None
                    cursor = max(cursor, resp.event.sequence)
                    yield resp
                return
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > reconnect_seconds:
                    raise
                time.sleep(1.0)

    def wait(
        self, name: str, on_event: Callable[[jobs_pb2.WatchJobResponse], None] | None = None
    ) -> jobs_pb2.Job:
        """Follows the job to its end and returns it."""
        job = None
        for resp in self.watch(name):
            job = resp.job
            if on_event is not None:
                on_event(resp)
        final = self.get(name)
        return final if final.state in TERMINAL or job is None else job

    def download(self, ref: common_pb2.ObjectRef, path: str | Path, timeout: float = 3600.0) -> Path:
        """Streams an object to path atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with open(tmp, "wb") as out:
                for resp in self.stub.DownloadFile(
                    jobs_pb2.DownloadFileRequest(object=ref), timeout=timeout, metadata=self._metadata()
                ):
                    out.write(resp.chunk)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
