"""Training and conversion as Kubernetes Jobs (FACESWAP_RUNNER=kubernetes); other stages via services.

The Job manifests come from k8s_jobs.py (placement, GPUs, Kueue from the chart's ConfigMap); this
module only maps a job's options onto them and follows the Job: training progress from the
checkpoint the worker pod writes, conversion progress as completed chunks of the Indexed Job.
A cancelled job deletes its Kubernetes Job; an orchestrator shutting down leaves it running (the next
owner of the job finds it by name: submitting is idempotent).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import grpc

from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator import k8s_jobs
from services.orchestrator.jobs import JobKeys
from services.orchestrator.runner import Context, JobCancelled, JobRunner, StageFailed

POLL_SECONDS = 5.0


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def train_options(spec: jobs_pb2.SwapJobSpec, bucket: str) -> dict[str, Any]:
    """TrainOptions fields for the worker (`python -m services.worker train --options JSON`)."""
    from services.trainer.server import options_from_pb

    return _plain(dataclasses.asdict(options_from_pb(spec.options.train, bucket)))


def convert_options(spec: jobs_pb2.SwapJobSpec) -> dict[str, Any]:
    from services.converter.options import ConvertOptions

    opts = spec.options.convert if spec.options.HasField("convert") else None
    return _plain(ConvertOptions.from_proto(opts).to_dict())


def train_manifest(
    job_id: str, spec: jobs_pb2.SwapJobSpec, bucket: str, settings: k8s_jobs.JobSettings
) -> Any:
    keys = JobKeys(job_id)
    return k8s_jobs.build_train_job(
        job_id, keys.faces_a, keys.faces_b, keys.model, options=train_options(spec, bucket), settings=settings
    )


def convert_manifest(
    job_id: str,
    spec: jobs_pb2.SwapJobSpec,
    alignments_key: str,
    model_prefix: str,
    total_frames: int,
    settings: k8s_jobs.JobSettings,
    frames_per_chunk: int | None = None,
) -> Any:
    keys = JobKeys(job_id)
    return k8s_jobs.build_convert_job(
        job_id,
        keys.frames,
        alignments_key,
        model_prefix,
        keys.converted,
        total_frames,
        options=convert_options(spec),
        settings=settings,
        frames_per_chunk=frames_per_chunk,
    )


class KubernetesJobRunner(JobRunner):
    def __init__(self, *args: Any, job_settings: k8s_jobs.JobSettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.k8s = job_settings or k8s_jobs.load_job_settings()
        self.namespace = k8s_jobs.current_namespace(self.k8s)

    def _follow(self, ctx: Context, stage: str, name: str, on_status) -> k8s_jobs.JobStatus:
        """Polls the Job until it ends; a cancel deletes it, a shutdown leaves it to the next owner."""
        while True:
            status = k8s_jobs.job_status(name, self.namespace)
            on_status(status)
            if status.state in k8s_jobs.TERMINAL_STATES:
                return status
            if ctx.cancelled.wait(POLL_SECONDS):
                if not ctx.stopping.is_set():
                    k8s_jobs.delete_job(name, self.namespace)
                raise JobCancelled()

    def _failed(self, stage: str, name: str, status: k8s_jobs.JobStatus) -> StageFailed:
        logs = ""
        try:
            tails = k8s_jobs.job_logs(name, self.namespace, tail_lines=5)
            logs = " | ".join(
                f"{pod}: {text.strip().splitlines()[-1]}" for pod, text in tails.items() if text.strip()
            )
        except Exception:
            pass
        reason = status.message or f"Kubernetes Job {name} failed"
        return StageFailed(stage, grpc.StatusCode.ABORTED, f"{reason}{'; ' + logs if logs else ''}")

    def train(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        if spec.options.model_prefix:
            return super().train(ctx, spec, keys)
        name = k8s_jobs.submit_job(train_manifest(ctx.job_id, spec, self.objects.bucket, self.k8s))
        total = int(spec.options.train.steps)
        meta_key = f"{keys.model}/checkpoint.json"
        seen = {"state": "", "poll": 0.0}

        def on_status(status: k8s_jobs.JobStatus) -> None:
            step = -1
            if time.monotonic() - seen["poll"] > 10 and self.objects.exists(meta_key):
                seen["poll"] = time.monotonic()  # the pod's last checkpoint says how far it got
                try:
                    step = int(self.objects.get_json(meta_key).get("step", 0))  # type: ignore[union-attr]
                except Exception:
                    step = -1
            note = f"Kubernetes Job {name}: {status.state}" if status.state != seen["state"] else None
            seen["state"] = status.state
            ctx.progress("train", step, total or -1, message=note)

        status = self._follow(ctx, "train", name, on_status)
        if status.state != "succeeded":
            raise self._failed("train", name, status)
        meta: dict[str, Any] = {}
        try:
            meta = dict(self.objects.get_json(meta_key))  # type: ignore[arg-type]
        except Exception:
            meta = {}
        return {"model_prefix": keys.model, "step": int(meta.get("step", 0)), "kubernetes_job": name}

    def convert(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        total = int(ctx.outputs["media_extract"]["frame_count"])
        model_prefix = ctx.outputs["train"].get("model_prefix") or keys.model
        alignments = ctx.outputs["detect_a"]["alignments"]
        manifest = convert_manifest(
            ctx.job_id,
            spec,
            alignments,
            model_prefix,
            total,
            self.k8s,
            frames_per_chunk=self.settings.convert_chunk_frames or None,
        )
        name = k8s_jobs.submit_job(manifest)

        seen = {"state": ""}

        def on_status(status: k8s_jobs.JobStatus) -> None:
            note = f"Kubernetes Job {name}: {status.state}" if status.state != seen["state"] else None
            seen["state"] = status.state
            ctx.progress("convert", status.succeeded, status.completions, message=note)

        status = self._follow(ctx, "convert", name, on_status)
        if status.state != "succeeded":
            raise self._failed("convert", name, status)
        return {"prefix": keys.converted, "frames": total, "kubernetes_job": name}
