"""Training and conversion as Kubernetes Jobs (FACESWAP_RUNNER=kubernetes); other stages via services.

The Job manifests come from k8s_jobs.py (placement, GPUs, Kueue from the chart's ConfigMap); this
module only maps a job's options onto them and follows the Job: training progress from the
checkpoint the worker pod writes, conversion progress as completed chunks of the Indexed Job.
Following is k8s_jobs.wait_for_job (watch, poll fallback, stuck-pod diagnosis) on the process's one
KubeClient. A cancelled job deletes its Kubernetes Job; an orchestrator shutting down leaves it
running (the next owner of the job finds it by name: submitting is idempotent, a failed Job of that
name is replaced). Jobs are owned by the chart's ConfigMap, so `helm uninstall` removes them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from faceswap.errors import FailedPrecondition, Unavailable
from faceswap.jsonsafe import json_safe
from faceswap.model.layout import metadata_key
from faceswap.options.convert import ConvertOptions
from faceswap.options.train import TrainOptions
from services.common.pb.faceswap.v1 import jobs_pb2
from services.orchestrator import k8s_jobs
from services.orchestrator.jobs import JobKeys
from services.orchestrator.runner import Context, JobCancelled, JobRunner, StageFailed
from services.orchestrator.runner import convert_options as convert_options_of

log = logging.getLogger("faceswap.orchestrator.k8s_runner")


def train_options(spec: jobs_pb2.SwapJobSpec, bucket: str) -> dict[str, Any]:
    """TrainOptions fields for the worker (`python -m services.k8s_worker train --options JSON`)."""
    return json_safe(TrainOptions.from_proto(spec.options.train, bucket))


def convert_options(spec: jobs_pb2.SwapJobSpec) -> dict[str, Any]:
    opts = spec.options.convert if spec.options.HasField("convert") else None
    return json_safe(ConvertOptions.from_proto(opts))


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
    faces_b: str = "",
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
        faces_b=faces_b,
    )


class KubernetesJobRunner(JobRunner):
    def __init__(
        self,
        *args: Any,
        job_settings: k8s_jobs.JobSettings | None = None,
        kube: k8s_jobs.KubeClient | None = None,
        follow_options: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.k8s = job_settings or k8s_jobs.load_job_settings()
        self.namespace = k8s_jobs.current_namespace(self.k8s)
        self._kube = kube  # made on first use: the process-wide client
        self.follow_options = {
            "pull_grace_seconds": float(self.k8s.pull_grace_seconds),
            "stuck_grace_seconds": float(self.k8s.stuck_grace_seconds),
            **(follow_options or {}),
        }

    @property
    def kube(self) -> k8s_jobs.KubeClient:
        if self._kube is None:
            self._kube = k8s_jobs.default_client()
        return self._kube

    def _submit(self, stage: str, manifest: Any) -> k8s_jobs.Submitted:
        owner = None
        if self.k8s.owner_config_map:
            owner = self.kube.owner_reference(self.namespace, self.k8s.owner_config_map)
        try:
            return k8s_jobs.submit(manifest, self.namespace, client=self.kube, owner=owner)
        except Unavailable as exc:
            raise StageFailed(stage, grpc.StatusCode.UNAVAILABLE, exc.message) from exc
        except FailedPrecondition as exc:
            raise StageFailed(stage, grpc.StatusCode.FAILED_PRECONDITION, exc.message) from exc

    def _follow(self, ctx: Context, stage: str, name: str, on_status) -> k8s_jobs.JobStatus:
        """Follows the Job until it ends; a cancel deletes it, a shutdown leaves it to the next owner."""
        try:
            status = k8s_jobs.wait_for_job(
                name,
                self.namespace,
                on_progress=on_status,
                cancelled=ctx.cancelled.is_set,
                stopping=ctx.stopping.is_set,
                client=self.kube,
                **self.follow_options,
            )
        except Unavailable as exc:
            raise StageFailed(stage, grpc.StatusCode.UNAVAILABLE, exc.message) from exc
        if status.state in ("cancelled", "stopped"):
            raise JobCancelled()
        return status

    def _failed(self, stage: str, name: str, status: k8s_jobs.JobStatus, detail: str = "") -> StageFailed:
        if status.state == "gone":
            return StageFailed(
                stage,
                grpc.StatusCode.ABORTED,
                f"{status.message} (deleted by hand, or its TTL passed while no orchestrator followed it)",
            )
        logs = ""
        if status.reason != "Stuck":
            try:
                tails = k8s_jobs.job_logs(name, self.namespace, tail_lines=5, client=self.kube)
                logs = " | ".join(
                    f"{pod}: {text.strip().splitlines()[-1]}" for pod, text in tails.items() if text.strip()
                )
            except Exception:
                pass
        reason = status.message or f"Kubernetes Job {name} failed"
        extra = "; ".join(part for part in (detail, logs) if part)
        return StageFailed(stage, grpc.StatusCode.ABORTED, f"{reason}{'; ' + extra if extra else ''}")

    def train(self, ctx: Context, spec: jobs_pb2.SwapJobSpec, keys: JobKeys) -> dict[str, Any]:
        if spec.options.model_prefix or not convert_options_of(spec).needs_model:
            return super().train(ctx, spec, keys)  # nothing to train: the base runner says why
        name = self._submit("train", train_manifest(ctx.job_id, spec, self.objects.bucket, self.k8s)).name
        total = int(spec.options.train.steps)
        meta_key = metadata_key(keys.model)
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
        faces_b = ctx.outputs.get("detect_b", {}).get("alignments", "")
        chunk = self.settings.convert_chunk_frames or self.k8s.frames_per_chunk
        manifest = convert_manifest(
            ctx.job_id, spec, alignments, model_prefix, total, self.k8s, frames_per_chunk=chunk,
            faces_b=faces_b,
        )  # fmt: skip
        name = self._submit("convert", manifest).name

        seen = {"state": ""}

        def on_status(status: k8s_jobs.JobStatus) -> None:
            note = f"Kubernetes Job {name}: {status.state}" if status.state != seen["state"] else None
            seen["state"] = status.state
            ctx.progress("convert", status.succeeded, status.completions, message=note)

        status = self._follow(ctx, "convert", name, on_status)
        if status.state != "succeeded":
            raise self._failed("convert", name, status, failed_frames(status.failed_indexes, chunk, total))
        return {"prefix": keys.converted, "frames": total, "kubernetes_job": name}


def failed_frames(failed_indexes: str, chunk: int, total: int) -> str:
    """'1,3-4' of an Indexed Job as the frame ranges those chunks cover, for the error message."""
    ranges = []
    for part in filter(None, (p.strip() for p in failed_indexes.split(","))):
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            continue
        ranges.append(f"{lo * chunk}-{min((hi + 1) * chunk, total) - 1}")
    return f"frames {', '.join(ranges)} not converted" if ranges else ""
