"""Runs a job's stages through the media, detector, trainer and converter services over gRPC.

Every stage is idempotent and keyed by the job id only (``JobKeys``), so a resumed job may re-issue
the stage in hand safely. A stage's outputs are recorded when it completes; a resumed job skips the
stages that have them. Conversion runs in frame-range chunks, each recorded when done. Training is
resumed by the trainer itself from the checkpoint under the job's model prefix.

Transient errors (UNAVAILABLE, DEADLINE_EXCEEDED) are retried with exponential backoff for up to
FACESWAP_STAGE_RETRY_SECONDS of no progress; anything else fails the job with the stage and reason.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from prometheus_client import Counter

from faceswap.config import Settings, env, load_settings
from faceswap.errors import ServiceError
from faceswap.face.alignments import alignments_key
from faceswap.jsonsafe import json_safe
from faceswap.limits import check_video
from faceswap.media.kinds import IMAGE_EXTENSIONS
from faceswap.options.convert import ConvertOptions
from faceswap.storage import ChecksumMismatch, ObjectStore, join_key
from services.common.auth import call_metadata
from services.common.client import make_channel
from services.common.operations import SERVICE_NAME as OPERATIONS_SERVICE
from services.common.pb.faceswap.v1 import (
    common_pb2,
    common_pb2_grpc,
    converter_pb2,
    converter_pb2_grpc,
    detector_pb2,
    detector_pb2_grpc,
    jobs_pb2,
    media_pb2,
    media_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.orchestrator import evaluate_metrics  # noqa: F401  (the evaluation's Prometheus sink)
from services.orchestrator.jobs import STAGES, JobKeys, extension
from services.orchestrator.settings import OrchestratorSettings, load_orchestrator_settings

log = logging.getLogger("faceswap.orchestrator.runner")

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
STAGE_RETRIES = Counter(
    "faceswap_orchestrator_stage_retries_total", "Transient stage failures retried", ["stage"]
)
SHORT_TIMEOUT = 30.0
STOP_GRACE_SECONDS = 60.0  # how long a cancelled job waits for the trainer to checkpoint and stop
B_VIDEO_MAX_FRAMES = 300  # frames of B's video scanned for faces: more adds detection time, little variety


class JobCancelled(Exception):
    """The job was cancelled while a stage ran."""


class StageFailed(Exception):
    def __init__(self, stage: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage, self.code, self.message = stage, code, message


class Context(Protocol):
    """What the runner needs from the worker that holds the job's lease (see worker.JobContext)."""

    job_id: str
    outputs: dict[str, Any]
    cancelled: threading.Event  # set on cancel and on shutdown / lost lease
    stopping: threading.Event  # set on shutdown / lost lease only: the job continues elsewhere

    def progress(
        self,
        stage: str,
        done: int,
        total: int,
        eta: float = 0.0,
        message: str | None = None,
        preview: str | None = None,
        force: bool = False,
    ) -> None: ...

    def record(self, outputs: dict[str, Any], stage: str, message: str) -> None: ...


@dataclass
class RunResult:
    output_key: str
    report_key: str


class ServiceClients:
    """One channel per service, from the configured addresses, with its OperationService stub."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or load_settings()
        addr = settings.addresses
        self.addresses = addr
        names = {
            "media": "faceswap.v1.MediaService",
            "detector": "faceswap.v1.DetectorService",
            "trainer": "faceswap.v1.TrainerService",
            "converter": "faceswap.v1.ConverterService",
        }
        channels = {svc: make_channel(addr[svc], [name, OPERATIONS_SERVICE]) for svc, name in names.items()}
        self.media = media_pb2_grpc.MediaServiceStub(channels["media"])
        self.detector = detector_pb2_grpc.DetectorServiceStub(channels["detector"])
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(channels["trainer"])
        self.converter = converter_pb2_grpc.ConverterServiceStub(channels["converter"])
        self.operations = {svc: common_pb2_grpc.OperationServiceStub(ch) for svc, ch in channels.items()}


def _copy_object(store: ObjectStore, src: str, dst: str) -> None:
    """Copies an input into the job's own space (once: a resumed job finds it there)."""
    if store.exists(dst):
        return
    expected = store.stat(src).sha256
    with store.open(src) as fh:
        info = store.put_stream(dst, fh)
    if expected and info.sha256 != expected:  # the upload was corrupted at rest: never process it
        store.delete(dst)
        raise ChecksumMismatch(f"object {src!r} is corrupt: sha256 mismatch")


class JobRunner:
    def __init__(
        self,
        objects: ObjectStore,
        clients: ServiceClients | None = None,
        settings: OrchestratorSettings | None = None,
        rpc_timeout: float | None = None,
    ) -> None:
        self.objects = objects
        self.clients = clients or ServiceClients()
        self.settings = settings or load_orchestrator_settings()
        self.rpc_timeout = rpc_timeout or load_settings().rpc_timeout
        self.stage_deadline = max(0.0, float(env("FACESWAP_STAGE_DEADLINE_S")))

    # ---- calls --------------------------------------------------------------------------------
    def _sleep(self, ctx: Context, seconds: float) -> None:
        if ctx.cancelled.wait(seconds):
            raise JobCancelled()

    def _call(
        self, ctx: Context, stage: str, method: Callable[..., Any], request: Any, timeout: float
    ) -> Any:
        """A unary call with a deadline, cancel-aware, retrying transient failures with backoff."""
        started, attempt = time.monotonic(), 0
        while True:
            if ctx.cancelled.is_set():
                raise JobCancelled()
            future = method.future(request, timeout=timeout, metadata=call_metadata())
            while not future.done():
                if ctx.cancelled.wait(0.25):
                    future.cancel()
                    raise JobCancelled()
            try:
                return future.result()
            except grpc.RpcError as exc:
                attempt = self._retry_or_raise(ctx, stage, exc, started, attempt)

    def _operation(
        self,
        ctx: Context,
        stage: str,
        service: str,
        method: str,
        request: Any,
        response_type: type,
        name: str,
        total: int = 0,
    ) -> Any:
        """A long stage as an operation: started at once, followed over WatchOperation.

        The watch carries FACESWAP_RPC_TIMEOUT as its deadline and is simply re-opened from the last
        sequence when it ends; a service restarted meanwhile has forgotten the operation (NOT_FOUND)
        and it is started again (stages are idempotent). Transient errors are retried for
        FACESWAP_STAGE_RETRY_SECONDS counted from the last sign of life, and the whole stage has its
        own deadline, FACESWAP_STAGE_DEADLINE_S (0 = none).
        """
        stub = self.clients.operations[service]
        stage_started = time.monotonic()
        attempt = 0
        op: common_pb2.Operation | None = None
        seen = _Seen(alive=stage_started)
        # Since when the operation keeps failing transiently (a storage fault, say) without progress:
        # its restarts then do not reset the retry window or the backoff.
        failing_since: float | None = None
        start = common_pb2.StartOperationRequest(
            name=name, method=method, request=request.SerializeToString()
        )
        while True:
            if ctx.cancelled.is_set():
                self._cancel_operation(ctx, stub, name)
                raise JobCancelled()
            if self.stage_deadline and time.monotonic() - stage_started > self.stage_deadline:
                self._cancel_operation(ctx, stub, name, force=True)
                raise StageFailed(
                    stage,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"{stage} ran longer than FACESWAP_STAGE_DEADLINE_S ({self.stage_deadline:g} s)",
                )
            try:
                if op is None:
                    seen.received = False
                    op = self._unary(ctx, stub.StartOperation, start, SHORT_TIMEOUT).operation
                    if failing_since is None:
                        seen.alive, attempt = time.monotonic(), 0
                if not op.done:
                    op = self._watch_operation(ctx, stub, op, stage, total, seen)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.NOT_FOUND and op is not None:
                    op = None  # the service restarted and forgot it: start it again
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and seen.received:
                    continue  # only the watch's own deadline: re-open it from the last sequence
                if code == grpc.StatusCode.CANCELLED:
                    code = grpc.StatusCode.UNAVAILABLE  # not ours (ours raised JobCancelled)
                attempt = self._retry_or_raise(ctx, stage, exc, seen.alive, attempt, code=code)
                continue
            if not op.done:
                continue
            if op.error.code:
                code = _status_code(op.error.code)
                if code in TRANSIENT or (code == grpc.StatusCode.CANCELLED and not ctx.cancelled.is_set()):
                    err = _OperationError(code, op.error.message)
                    if failing_since is None or seen.progress_at > failing_since:
                        failing_since, attempt = time.monotonic(), 0
                    attempt = self._retry_or_raise(ctx, stage, err, failing_since, attempt)
                    op = None  # a transient failure: start it again after the backoff
                    continue
                if code == grpc.StatusCode.CANCELLED:
                    raise JobCancelled()
                raise StageFailed(stage, code, op.error.message)
            return response_type.FromString(op.response)

    def _unary(self, ctx: Context, method: Callable[..., Any], request: Any, timeout: float) -> Any:
        future = method.future(request, timeout=timeout, metadata=call_metadata())
        while not future.done():
            if ctx.cancelled.wait(0.25):
                future.cancel()
                raise JobCancelled()
        return future.result()

    def _watch_operation(
        self,
        ctx: Context,
        stub: common_pb2_grpc.OperationServiceStub,
        op: common_pb2.Operation,
        stage: str,
        total: int,
        seen: _Seen,
    ) -> common_pb2.Operation:
        call = stub.WatchOperation(
            common_pb2.WatchOperationRequest(name=op.name, after_sequence=op.sequence),
            timeout=self.rpc_timeout,
            metadata=call_metadata(),
        )
        finished = threading.Event()

        def on_cancel() -> None:
            while not finished.is_set():
                if ctx.cancelled.wait(0.25):
                    call.cancel()
                    return

        threading.Thread(target=on_cancel, daemon=True, name=f"opwatch-{ctx.job_id[:8]}").start()
        last = op
        seen.received = False
        try:
            for resp in call:
                last = resp.operation
                seen.alive, seen.received = time.monotonic(), True
                done, note = int(last.done_units), last.message
                if done > seen.shown[0] >= 0:
                    seen.progress_at = time.monotonic()
                if (done, note) != seen.shown and not last.done:
                    ctx.progress(
                        stage,
                        done,
                        int(last.total_units) or total,
                        message=note if note and note != seen.shown[1] else None,
                    )
                    seen.shown = (done, note)
                if last.done:
                    return last
        except grpc.RpcError:
            if ctx.cancelled.is_set():
                raise JobCancelled() from None
            raise
        finally:
            finished.set()
            call.cancel()
        return last

    def _cancel_operation(
        self, ctx: Context, stub: common_pb2_grpc.OperationServiceStub, name: str, force: bool = False
    ) -> None:
        if ctx.stopping.is_set() and not force:
            return  # orchestrator shutdown: the work goes on, the next owner follows it
        try:
            stub.CancelOperation(
                common_pb2.CancelOperationRequest(name=name), timeout=5.0, metadata=call_metadata()
            )
        except grpc.RpcError as exc:
            log.info("CancelOperation %s: %s", name, exc.code() if hasattr(exc, "code") else exc)

    def _retry_or_raise(
        self,
        ctx: Context,
        stage: str,
        exc: grpc.RpcError,
        started: float,
        attempt: int,
        code: grpc.StatusCode | None = None,
    ) -> int:
        code = code or (exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN)
        details = (exc.details() if hasattr(exc, "details") else "") or str(code)
        if code == grpc.StatusCode.CANCELLED and ctx.cancelled.is_set():
            raise JobCancelled()
        if code not in TRANSIENT or time.monotonic() - started > self.settings.stage_retry_seconds:
            if code in TRANSIENT:
                details = f"{details} (gave up after {self.settings.stage_retry_seconds:.0f} s of retries)"
            raise StageFailed(stage, code, details)
        delay = min(30.0, 0.5 * 2**attempt)
        STAGE_RETRIES.labels(stage).inc()
        ctx.progress(
            stage, -1, -1, message=f"{stage}: {code.name} ({details}); retrying in {delay:.1f} s", force=True
        )
        self._sleep(ctx, delay)
        return attempt + 1

    # ---- the pipeline -------------------------------------------------------------------------
    def run(self, ctx: Context, spec: jobs_pb2.SwapJobSpec) -> RunResult:
        keys = JobKeys(ctx.job_id)
        steps: dict[str, Callable[[Context, jobs_pb2.SwapJobSpec, JobKeys], dict[str, Any]]] = {
            "media_extract": self.media_extract,
            "detect_a": self.detect_a,
            "detect_b": self.detect_b,
            "train": self.train,
            "convert": self.convert,
            "encode": self.encode,
            "evaluate": self.evaluate,
        }
        for stage in STAGES:
            if stage in ctx.outputs:
                continue  # produced before a restart: never redone
            if ctx.cancelled.is_set():
                raise JobCancelled()
            ctx.progress(stage, 0, 0, message=f"{stage} started", force=True)
            outputs = steps[stage](ctx, spec, keys)
            ctx.record({stage: outputs}, stage, f"{stage} done")
        report = ctx.outputs.get("evaluate", {}).get("report", "")
        return RunResult(output_key=ctx.outputs["encode"]["output"], report_key=report)

    def media_extract(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        stage = "media_extract"
        video_key = keys.input_video(spec.video.key)
        _copy_object(self.objects, spec.video.key, video_key)
        # Limits first: a 3-hour 8K upload fails here in a second, not after filling the store with frames.
        probed = self._call(
            ctx,
            stage,
            self.clients.media.Probe,
            media_pb2.ProbeRequest(video=common_pb2.ObjectRef(key=video_key)),
            SHORT_TIMEOUT,
        ).info
        _check_limits(stage, probed, "spec.video")
        resp = self._operation(
            ctx,
            stage,
            "media",
            "/faceswap.v1.MediaService/ExtractFrames",
            media_pb2.ExtractFramesRequest(
                video=common_pb2.ObjectRef(key=video_key), output_prefix=keys.frames, image_format="png"
            ),
            media_pb2.ExtractFramesResponse,
            _op_name(keys, stage, "a"),
            total=int(probed.frame_count),
        )
        if resp.frame_count <= 0:
            raise StageFailed(stage, grpc.StatusCode.FAILED_PRECONDITION, f"{spec.video.key!r} has no frames")
        ctx.progress(stage, resp.frame_count, resp.frame_count, message=f"{resp.frame_count} frames of A")
        out: dict[str, Any] = {
            "video": video_key,
            "frames": keys.frames,
            "frame_count": int(resp.frame_count),
            "fps": [int(resp.info.fps.num), int(resp.info.fps.den)],
            "has_audio": bool(resp.info.has_audio),
        }
        b_keys: list[str] = []
        if len(spec.faces_b) == 1 and extension(spec.faces_b[0].key) not in IMAGE_EXTENSIONS:
            b_video = keys.input_b_video(spec.faces_b[0].key)
            _copy_object(self.objects, spec.faces_b[0].key, b_video)
            info = self._call(
                ctx,
                stage,
                self.clients.media.Probe,
                media_pb2.ProbeRequest(video=common_pb2.ObjectRef(key=b_video)),
                SHORT_TIMEOUT,
            ).info
            _check_limits(stage, info, "spec.faces_b[0]")
            step = max(1, math.ceil(info.frame_count / B_VIDEO_MAX_FRAMES))
            b_resp = self._operation(
                ctx,
                stage,
                "media",
                "/faceswap.v1.MediaService/ExtractFrames",
                media_pb2.ExtractFramesRequest(
                    video=common_pb2.ObjectRef(key=b_video),
                    output_prefix=keys.faces_b_source,
                    image_format="png",
                    range=common_pb2.FrameRange(step=step),
                ),
                media_pb2.ExtractFramesResponse,
                _op_name(keys, stage, "b"),
                total=math.ceil(info.frame_count / step),
            )
            out.update(b_video=b_video, b_frame_count=int(b_resp.frame_count))
            b_keys = [b_video]
        else:
            for i, ref in enumerate(spec.faces_b):
                dst = join_key(keys.faces_b_source, f"{i:05d}{extension(ref.key)}")
                _copy_object(self.objects, ref.key, dst)
                b_keys.append(dst)
        refs = []
        for i, ref in enumerate(spec.reference_photos):
            dst = join_key(keys.reference, f"{i:05d}{extension(ref.key)}")
            _copy_object(self.objects, ref.key, dst)
            refs.append(dst)
        out.update(b_source=keys.faces_b_source, b_inputs=b_keys, reference=refs)
        return out

    def _detect_options(
        self, spec: jobs_pb2.SwapJobSpec, references: list[str]
    ) -> detector_pb2.DetectOptions:
        opts = detector_pb2.DetectOptions()
        opts.CopyFrom(spec.options.detect)
        opts.save_faces = True
        del opts.reference_photos[:]
        opts.reference_photos.extend(common_pb2.ObjectRef(key=k) for k in references)
        return opts

    def _face_set(
        self,
        ctx: Context,
        stage: str,
        source: str,
        output: str,
        options: detector_pb2.DetectOptions,
        who: str,
        total: int = 0,
    ) -> dict[str, Any]:
        resp = self._operation(
            ctx,
            stage,
            "detector",
            "/faceswap.v1.DetectorService/ExtractFaceSet",
            detector_pb2.ExtractFaceSetRequest(source_prefix=source, output_prefix=output, options=options),
            detector_pb2.ExtractFaceSetResponse,
            _op_name(JobKeys(ctx.job_id), stage),
            total=total,
        )
        if resp.faces_total <= 0:
            raise StageFailed(
                stage,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no face of {who} found in {resp.frames_total} images "
                f"({resp.frames_unreadable} unreadable, {resp.frames_without_face} without a face)",
            )
        ctx.progress(
            stage,
            resp.frames_total,
            resp.frames_total,
            message=f"{resp.faces_total} faces of {who}",
            force=True,
        )
        return {
            "prefix": output,
            "alignments": resp.alignments.key or alignments_key(output),
            "frames": int(resp.frames_total),
            "faces": int(resp.faces_total),
            "frames_without_face": int(resp.frames_without_face),
        }

    def detect_a(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        media = ctx.outputs["media_extract"]
        ctx.progress("detect_a", 0, media["frame_count"])
        options = self._detect_options(spec, media.get("reference", []))
        return self._face_set(
            ctx, "detect_a", keys.frames, keys.faces_a, options, "person A", int(media["frame_count"])
        )

    def detect_b(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        # B's faces are needed to train, and by the methods that render B from B's own frames.
        if spec.options.model_prefix and not convert_options(spec).needs_faces_b:
            return {"skipped": True, "reason": "model given by options.model_prefix"}
        options = self._detect_options(spec, [])
        media = ctx.outputs["media_extract"]
        total = int(media.get("b_frame_count") or len(media.get("b_inputs") or []))
        ctx.progress("detect_b", 0, total)
        return self._face_set(ctx, "detect_b", keys.faces_b_source, keys.faces_b, options, "person B", total)

    # ---- training -----------------------------------------------------------------------------
    def train(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        if spec.options.model_prefix:
            return {"skipped": True, "model_prefix": spec.options.model_prefix}
        if not convert_options(spec).needs_model:
            return {"skipped": True, "reason": "method 'retrieval' renders from B's frames; no model"}
        stage, trainer = "train", self.clients.trainer
        request = trainer_pb2.StartTrainingRequest(
            faces_a_prefix=keys.faces_a,
            faces_b_prefix=keys.faces_b,
            model_prefix=keys.model,
            options=spec.options.train,
        )
        started, attempt, restarts = time.monotonic(), 0, 0
        # The loss curve for the quality report: what earlier attempts recorded plus what we see now.
        history = self._load_history(keys)
        while True:
            try:
                status = self._training_status(ctx, keys.model)
                if status is None or (
                    status.state
                    in (trainer_pb2.TRAINING_STATE_STOPPED, trainer_pb2.TRAINING_STATE_UNSPECIFIED)
                    and not _budget_spent(status)
                ):
                    # Not running on the trainer (new, the trainer restarted, or it drained on SIGTERM):
                    # start; it resumes from the checkpoint under the model prefix when there is one.
                    status = trainer.StartTraining(
                        request, timeout=SHORT_TIMEOUT, metadata=call_metadata()
                    ).status
                    note = status.message or f"training from step {status.step}"
                    ctx.progress(stage, status.step, status.total_steps, message=note)
                if status.state in (trainer_pb2.TRAINING_STATE_RUNNING, trainer_pb2.TRAINING_STATE_STOPPING):
                    status = self._watch_training(ctx, keys.model, history)
                    started, attempt = time.monotonic(), 0  # progress was made: a fresh retry budget
            except grpc.RpcError as exc:
                if history:
                    self.objects.put_json(keys.loss_log, history)  # kept for the resumed attempt
                attempt = self._retry_or_raise(ctx, stage, exc, started, attempt)
                continue
            if status.state == trainer_pb2.TRAINING_STATE_SUCCEEDED or (
                status.state == trainer_pb2.TRAINING_STATE_STOPPED and _budget_spent(status)
            ):
                if history:
                    self.objects.put_json(keys.loss_log, history)
                return {
                    "model_prefix": keys.model,
                    "step": int(status.step),
                    "total_steps": int(status.total_steps),
                    "checkpoint": status.checkpoint.key,
                    "loss_a": status.loss_a,
                    "loss_b": status.loss_b,
                    "message": status.message,
                }
            if status.state == trainer_pb2.TRAINING_STATE_FAILED:
                code = grpc.StatusCode.FAILED_PRECONDITION
                if status.error.code:
                    code = next((c for c in grpc.StatusCode if c.value[0] == status.error.code), code)
                raise StageFailed(stage, code, status.error.message or status.message or "training failed")
            if ctx.cancelled.is_set():
                raise JobCancelled()
            if status.state in (trainer_pb2.TRAINING_STATE_RUNNING, trainer_pb2.TRAINING_STATE_STOPPING):
                continue  # the watch ended on its own deadline while the run goes on: follow it again
            restarts += 1
            if restarts > 20:
                raise StageFailed(stage, grpc.StatusCode.ABORTED, "training keeps stopping; giving up")
            self._sleep(ctx, 2.0)

    def _load_history(self, keys: JobKeys) -> list[dict[str, float]]:
        try:
            data = self.objects.get_json(keys.loss_log)
            return [r for r in data if isinstance(r, dict) and "step" in r] if isinstance(data, list) else []
        except Exception:
            return []

    def _training_status(self, ctx: Context, model_prefix: str) -> trainer_pb2.TrainingStatus | None:
        try:
            return self.clients.trainer.GetTraining(
                trainer_pb2.GetTrainingRequest(model_prefix=model_prefix),
                timeout=SHORT_TIMEOUT,
                metadata=call_metadata(),
            ).status
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def _watch_training(
        self, ctx: Context, model_prefix: str, history: list[dict[str, float]]
    ) -> trainer_pb2.TrainingStatus:
        """Follows the run until it ends; on cancel asks the trainer to checkpoint and stop."""
        call = self.clients.trainer.WatchTraining(
            trainer_pb2.WatchTrainingRequest(model_prefix=model_prefix),
            timeout=self.rpc_timeout,
            metadata=call_metadata(),
        )
        finished = threading.Event()
        stop_requested = threading.Event()

        def on_cancel() -> None:
            while not finished.is_set():
                if ctx.cancelled.wait(0.25):
                    if ctx.stopping.is_set():
                        call.cancel()  # orchestrator shutdown: training goes on, the next owner follows it
                        return
                    stop_requested.set()
                    try:
                        # The run saves a checkpoint and stops; the stream then reports STOPPED and ends.
                        self.clients.trainer.StopTraining(
                            trainer_pb2.StopTrainingRequest(model_prefix=model_prefix),
                            timeout=SHORT_TIMEOUT,
                            metadata=call_metadata(),
                        )
                    except grpc.RpcError as exc:
                        log.warning(
                            "StopTraining failed: %s", exc.details() if hasattr(exc, "details") else exc
                        )
                        call.cancel()
                        return
                    if not finished.wait(STOP_GRACE_SECONDS):
                        call.cancel()  # the trainer did not stop in time: stop waiting for it
                    return

        watcher = threading.Thread(target=on_cancel, daemon=True, name=f"cancel-{ctx.job_id[:8]}")
        watcher.start()
        last: trainer_pb2.TrainingStatus | None = None
        said, shown_preview = "", ""
        try:
            for resp in call:
                last = resp.status
                if (
                    last.step
                    and (not history or history[-1]["step"] < last.step)
                    and (last.loss_a or last.loss_b)
                ):
                    history.append({"step": last.step, "loss_a": last.loss_a, "loss_b": last.loss_b})
                # The trainer's own notes ("resuming from step 40", "time budget spent") become events.
                note = last.message if last.message and last.message != said else None
                said = last.message or said
                preview = last.preview.key if last.preview.key and last.preview.key != shown_preview else None
                shown_preview = last.preview.key or shown_preview
                ctx.progress(
                    "train", last.step, last.total_steps, eta=last.eta_seconds, message=note, preview=preview
                )
                if last.state in (
                    trainer_pb2.TRAINING_STATE_SUCCEEDED,
                    trainer_pb2.TRAINING_STATE_STOPPED,
                    trainer_pb2.TRAINING_STATE_FAILED,
                ):
                    break
        except grpc.RpcError as exc:
            if stop_requested.is_set():
                raise JobCancelled() from None
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            if last is None or code != grpc.StatusCode.DEADLINE_EXCEEDED or ctx.cancelled.is_set():
                raise exc
            # Only the stream's own deadline (FACESWAP_RPC_TIMEOUT) passed while the run went on: the
            # caller asks for the status and watches again; this is no failure.
        finally:
            finished.set()
            call.cancel()
        if stop_requested.is_set():
            raise JobCancelled()
        if last is None or last.state in (
            trainer_pb2.TRAINING_STATE_RUNNING,
            trainer_pb2.TRAINING_STATE_STOPPING,
        ):
            # The stream ended early (trainer restarting): ask again.
            status = self._training_status(ctx, model_prefix)
            if status is None:
                return trainer_pb2.TrainingStatus(state=trainer_pb2.TRAINING_STATE_STOPPED)
            return status
        return last

    # ---- conversion and encoding --------------------------------------------------------------
    def convert(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        stage = "convert"
        total = int(ctx.outputs["media_extract"]["frame_count"])
        model_prefix = ctx.outputs["train"].get("model_prefix") or keys.model
        if not convert_options(spec).needs_model:
            model_prefix = ""
        alignments = ctx.outputs["detect_a"]["alignments"]
        faces_b = ctx.outputs.get("detect_b", {}).get("alignments", "")
        chunk = self.settings.convert_chunk_frames or max(8, math.ceil(total / 10))
        done_chunks = {int(s) for s in ctx.outputs.get("convert_chunks", [])}
        swapped = int(ctx.outputs.get("convert_faces", 0))
        started = time.monotonic()
        new_frames = 0
        first_error = ""
        for start in range(0, total, chunk):
            end = min(total, start + chunk)
            if start in done_chunks:
                continue
            resp = self._operation(
                ctx,
                stage,
                "converter",
                "/faceswap.v1.ConverterService/ConvertFrames",
                converter_pb2.ConvertFramesRequest(
                    frames_prefix=keys.frames,
                    alignments=common_pb2.ObjectRef(key=alignments),
                    model_prefix=model_prefix,
                    output_prefix=keys.converted,
                    range=common_pb2.FrameRange(start=start, end=end, step=1),
                    options=spec.options.convert,
                    faces_b=common_pb2.ObjectRef(key=faces_b),
                ),
                converter_pb2.ConvertFramesResponse,
                _op_name(keys, stage, f"{start}-{end}"),
                total=end - start,
            )
            done_chunks.add(start)
            swapped += int(resp.faces_swapped)
            if resp.frame_errors and not first_error:
                first_error = f"{resp.frame_errors[0].where}: {resp.frame_errors[0].message}"
            new_frames += end - start
            frames_done = sum(min(total, s + chunk) - s for s in done_chunks)
            rate = new_frames / max(1e-6, time.monotonic() - started)
            note = f"; {len(resp.frame_errors)} frames passed through" if resp.frame_errors else ""
            ctx.progress(
                stage, frames_done, total, eta=(total - frames_done) / rate if rate else 0.0, force=True
            )
            ctx.record(
                {"convert_chunks": sorted(done_chunks), "convert_faces": swapped},
                stage,
                f"converted frames {start}-{end - 1}{note}",
            )
        if swapped == 0 and ctx.outputs["detect_a"].get("faces", 0) > 0:
            # Every face failed and was passed through: an "output" identical to the input is no success.
            raise StageFailed(
                stage,
                grpc.StatusCode.INTERNAL,
                f"no face was swapped in {total} frames ({ctx.outputs['detect_a']['faces']} detected)"
                + (f"; first frame error: {first_error}" if first_error else ""),
            )
        return {"prefix": keys.converted, "frames": total, "faces_swapped": swapped, "chunk": chunk}

    def encode(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        media = ctx.outputs["media_extract"]
        num, den = media["fps"]
        resp = self._operation(
            ctx,
            "encode",
            "media",
            "/faceswap.v1.MediaService/EncodeVideo",
            media_pb2.EncodeVideoRequest(
                frames_prefix=keys.converted,
                output=common_pb2.ObjectRef(key=keys.output),
                audio_from=common_pb2.ObjectRef(key=media["video"]),
                fps=common_pb2.Rational(num=num, den=den) if num and den else None,
                codec=spec.options.output_codec,
                crf=spec.options.output_crf,
            ),
            media_pb2.EncodeVideoResponse,
            _op_name(keys, "encode"),
            total=int(media["frame_count"]),
        )
        if resp.frame_count != media["frame_count"]:
            raise StageFailed(
                "encode",
                grpc.StatusCode.INTERNAL,
                f"encoded {resp.frame_count} frames, expected {media['frame_count']}",
            )
        ctx.progress("encode", resp.frame_count, resp.frame_count, force=True)
        return {"output": resp.output.key or keys.output, "frames": int(resp.frame_count)}

    # ---- quality report ---------------------------------------------------------------------
    def evaluate(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        if spec.options.skip_evaluate:
            return {"skipped": True, "reason": "options.skip_evaluate"}
        try:  # deferred: the evaluation needs dlib, which the job API itself does not
            from faceswap.evaluate.job import evaluate_job
        except ImportError as exc:
            return {"skipped": True, "reason": f"the quality report cannot run here ({exc})"}
        media = ctx.outputs["media_extract"]
        b_inputs = media.get("b_inputs") or []
        if not b_inputs:
            return {"skipped": True, "reason": "no faces of B to compare with"}
        options: dict[str, Any] = {}
        if spec.options.evaluate_max_frames:
            options["max_frames"] = int(spec.options.evaluate_max_frames)
        loss_log = keys.loss_log

        def on_progress(done: int, total: int) -> None:
            if ctx.cancelled.is_set():
                raise JobCancelled()
            ctx.progress("evaluate", done, total)

        try:
            result = evaluate_job(
                self.objects,
                media["video"],
                ctx.outputs["encode"]["output"],
                b_inputs,
                keys.report,
                join_key(keys.root, "report.json"),
                loss_log_key=loss_log if self.objects.exists(loss_log) else None,
                on_progress=on_progress,
                **options,
            )
        except JobCancelled:
            raise
        except ServiceError as exc:
            # A report is a bonus: the swap itself succeeded, so the job does too; say why there is none.
            ctx.progress("evaluate", 0, 0, message=f"no quality report: {exc.message}", force=True)
            return {"skipped": True, "reason": exc.message}
        summary = getattr(result, "summary", None)
        return {
            "report": keys.report,
            "json": join_key(keys.root, "report.json"),
            "summary": json_safe(summary),
        }


def convert_options(spec: jobs_pb2.SwapJobSpec) -> ConvertOptions:
    """The job's converter options with their defaults (the method decides which stages run)."""
    return ConvertOptions.from_proto(spec.options.convert if spec.options.HasField("convert") else None)


@dataclass
class _Seen:
    """What a stage's watcher last saw: when the service last answered, what progress was shown."""

    alive: float
    received: bool = False
    progress_at: float = 0.0  # when done units last grew
    shown: tuple[int, str] = (-1, "")


class _OperationError(grpc.RpcError):
    """An operation's failure, shaped like a failed call for _retry_or_raise."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _op_name(keys: JobKeys, stage: str, part: str = "") -> str:
    """Operation names derive from the job: a resumed job re-attaches to the work in flight."""
    return join_key(keys.root, "op", stage, *([part] if part else []))


def _status_code(value: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == value), grpc.StatusCode.UNKNOWN)


def _check_limits(stage: str, info: media_pb2.VideoInfo, what: str) -> None:
    """FACESWAP_MAX_VIDEO_SECONDS / _RESOLUTION / _FRAMES on a probed video, as a failed stage."""
    try:
        check_video(info.duration_seconds, info.width, info.height, info.frame_count, what)
    except ServiceError as exc:
        raise StageFailed(stage, exc.code, exc.message) from None


def _budget_spent(status: trainer_pb2.TrainingStatus) -> bool:
    """The trainer stops a run whose max_seconds is spent: that run is done, not interrupted."""
    return "time budget" in status.message
