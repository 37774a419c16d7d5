"""Kubernetes batch/v1 Jobs for training and chunked conversion, built with the `kubernetes` client.

The orchestrator, when configured for Kubernetes (FACESWAP_RUNNER=kubernetes), runs a training stage
as one Job on a GPU node and splits conversion of a long video into an Indexed Job: pod i reads
JOB_COMPLETION_INDEX and converts frames [i * chunk, (i + 1) * chunk). Both run
``python -m services.worker`` in the platform image.

Placement (image, GPU count, nodeSelector, tolerations, affinity, runtimeClass, Kueue queue) comes
from a JSON file the Helm chart renders into a ConfigMap (FACESWAP_K8S_JOB_CONFIG, see
deploy/helm/faceswap/templates/k8s-jobs-configmap.yaml), so operators change it with Helm values,
not code. Builders are pure functions returning ``V1Job`` models; only ``submit_job``, ``job_status``,
``delete_job`` and ``job_logs`` talk to a cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from services.common.errors import InvalidArgument, NotFound

K8S_ENV_DOCS: dict[str, tuple[str, str]] = {
    "FACESWAP_RUNNER": (
        "",
        "'kubernetes': training and conversion run as Kubernetes Jobs (set by the chart)",
    ),
    "FACESWAP_K8S_JOB_CONFIG": (
        "",
        "JSON file with the worker Jobs' image, env and placement (chart ConfigMap)",
    ),
    "FACESWAP_K8S_NAMESPACE": ("", "namespace for the Jobs (default: the pod's own namespace)"),
    "FACESWAP_WORKER_METRICS_PORT": ("0", "/metrics port of a worker pod (0 = none; the chart sets 9090)"),
    "FACESWAP_WORKER_OPTIONS": (
        "",
        "TrainOptions/ConvertOptions JSON for the worker when --options is absent",
    ),
}
RUNNER_ENV = "FACESWAP_RUNNER"
CONFIG_ENV = "FACESWAP_K8S_JOB_CONFIG"
NAMESPACE_ENV = "FACESWAP_K8S_NAMESPACE"
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
JOB_ID_LABEL = "faceswap.io/job-id"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
WORKER_METRICS_PORT = 9090
# Exit code the worker uses for bad input: retrying cannot help, so the pod failure policy stops.
EXIT_BAD_INPUT = 2
_MAX_NAME = 52  # room for the "-<index>-<random>" suffixes Kubernetes appends to pod names


@dataclass(frozen=True)
class Placement:
    """Where and with what a worker pod runs."""

    resources: dict[str, Any] = field(default_factory=dict)
    gpu_count: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    runtime_class_name: str = ""
    priority_class_name: str = ""
    image: str = ""  # empty: JobSettings.image (the chart sets the CUDA variant for GPU placements)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        gpu = data.get("gpu") or {}
        return cls(
            resources=dict(data.get("resources") or {}),
            gpu_count=int(gpu.get("count", 0)) if gpu.get("enabled", True) else 0,
            gpu_resource=str(gpu.get("resourceName") or "nvidia.com/gpu"),
            node_selector=dict(data.get("nodeSelector") or {}),
            tolerations=list(data.get("tolerations") or []),
            affinity=dict(data.get("affinity") or {}),
            runtime_class_name=str(data.get("runtimeClassName") or ""),
            priority_class_name=str(data.get("priorityClassName") or ""),
            image=str(data.get("image") or ""),
        )


@dataclass(frozen=True)
class JobSettings:
    """Everything a Job needs besides the stage's own arguments (the chart's `kubernetesJobs` values)."""

    image: str = "ghcr.io/faceswap/faceswap:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: list[str] = field(default_factory=list)
    namespace: str = ""
    service_account: str = ""
    name_prefix: str = "faceswap"
    queue_name: str = ""
    kueue_priority_class: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    env: list[dict[str, Any]] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    security_context: dict[str, Any] = field(default_factory=dict)
    tmp_size_limit: str = "8Gi"
    shm_size_limit: str = "1Gi"
    ttl_seconds_after_finished: int = 3600
    active_deadline_seconds: int = 86400
    backoff_limit: int = 2
    train: Placement = field(default_factory=lambda: Placement(gpu_count=1))
    convert: Placement = field(default_factory=Placement)
    frames_per_chunk: int = 300
    parallelism: int = 4
    backoff_limit_per_index: int = 2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSettings:
        """Reads the camelCase JSON the chart renders (unknown keys are ignored)."""
        convert = data.get("convert") or {}
        return cls(
            image=str(data.get("image") or cls.image),
            image_pull_policy=str(data.get("imagePullPolicy") or "IfNotPresent"),
            image_pull_secrets=[
                s["name"] if isinstance(s, dict) else str(s) for s in data.get("imagePullSecrets") or []
            ],
            namespace=str(data.get("namespace") or ""),
            service_account=str(data.get("serviceAccountName") or ""),
            name_prefix=str(data.get("namePrefix") or "faceswap"),
            queue_name=str(data.get("queueName") or ""),
            kueue_priority_class=str(data.get("kueuePriorityClass") or ""),
            labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
            env=list(data.get("env") or []),
            env_from=list(data.get("envFrom") or []),
            pod_security_context=dict(data.get("podSecurityContext") or {}),
            security_context=dict(data.get("securityContext") or {}),
            tmp_size_limit=str(data.get("tmpSizeLimit") or "8Gi"),
            shm_size_limit=str(data.get("shmSizeLimit") or "1Gi"),
            ttl_seconds_after_finished=int(data.get("ttlSecondsAfterFinished", 3600)),
            active_deadline_seconds=int(data.get("activeDeadlineSeconds", 86400)),
            backoff_limit=int(data.get("backoffLimit", 2)),
            train=Placement.from_dict(data.get("train") or {"gpu": {"count": 1}}),
            convert=Placement.from_dict(convert),
            frames_per_chunk=int(convert.get("framesPerChunk", 300)),
            parallelism=int(convert.get("parallelism", 4)),
            backoff_limit_per_index=int(convert.get("backoffLimitPerIndex", 2)),
        )


def kubernetes_runner_enabled() -> bool:
    """True when the chart set FACESWAP_RUNNER=kubernetes (training/conversion run as Jobs)."""
    return os.environ.get(RUNNER_ENV, "").lower() == "kubernetes"


def load_job_settings(path: str | Path | None = None) -> JobSettings:
    """Settings from the chart's JSON file ($FACESWAP_K8S_JOB_CONFIG); defaults when unset."""
    path = path or os.environ.get(CONFIG_ENV, "")
    if not path:
        return JobSettings()
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise NotFound(f"Kubernetes job config {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"Kubernetes job config {path} is not JSON: {exc}", field=CONFIG_ENV) from exc
    return JobSettings.from_dict(data)


def current_namespace(settings: JobSettings | None = None) -> str:
    """The namespace Jobs go to: settings, $FACESWAP_K8S_NAMESPACE, the pod's own, else 'default'."""
    if settings and settings.namespace:
        return settings.namespace
    if os.environ.get(NAMESPACE_ENV):
        return os.environ[NAMESPACE_ENV]
    try:
        return Path(SA_NAMESPACE_FILE).read_text().strip() or "default"
    except OSError:
        return "default"


def chunk_ranges(total_frames: int, frames_per_chunk: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges, one per Indexed Job completion index."""
    if total_frames <= 0:
        raise InvalidArgument("total_frames must be positive", field="total_frames")
    if frames_per_chunk <= 0:
        raise InvalidArgument("frames_per_chunk must be positive", field="frames_per_chunk")
    count = math.ceil(total_frames / frames_per_chunk)
    return [(i * frames_per_chunk, min((i + 1) * frames_per_chunk, total_frames)) for i in range(count)]


def job_name(prefix: str, stage: str, job_id: str) -> str:
    """A DNS-1123 name unique per (stage, job id); long ids are shortened with a hash suffix."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{stage}-{job_id}".lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    if len(base) <= _MAX_NAME:
        return base
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:8]
    return f"{base[: _MAX_NAME - 9].rstrip('-')}-{digest}"


def _label_value(value: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    return value.strip("-._")


def _model(data: Any, klass: str) -> Any:
    """A dict (as written in Helm values) turned into a typed client model, e.g. V1Toleration."""

    class _Payload:
        def __init__(self, payload: Any) -> None:
            self.data = json.dumps(payload)

    return k8s.ApiClient().deserialize(_Payload(data), klass)


def _labels(settings: JobSettings, stage: str, job_id: str) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "faceswap",
        "app.kubernetes.io/component": f"worker-{stage}",
        "app.kubernetes.io/managed-by": "faceswap-orchestrator",
        JOB_ID_LABEL: _label_value(job_id),
        **settings.labels,
    }
    if settings.queue_name:
        labels[QUEUE_LABEL] = settings.queue_name
        if settings.kueue_priority_class:
            labels[PRIORITY_LABEL] = settings.kueue_priority_class
    return labels


def _resources(placement: Placement) -> k8s.V1ResourceRequirements:
    requests = dict((placement.resources or {}).get("requests") or {})
    limits = dict((placement.resources or {}).get("limits") or {})
    if placement.gpu_count > 0:
        # Extended resources cannot be overcommitted: request == limit.
        limits[placement.gpu_resource] = str(placement.gpu_count)
        requests[placement.gpu_resource] = str(placement.gpu_count)
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def _pod_template(
    settings: JobSettings, placement: Placement, labels: dict[str, str], args: list[str]
) -> k8s.V1PodTemplateSpec:
    env = [_model(e, "V1EnvVar") for e in settings.env]
    if placement.gpu_count == 0:
        env.append(k8s.V1EnvVar(name="CUDA_VISIBLE_DEVICES", value=""))
    container = k8s.V1Container(
        name="worker",
        image=placement.image or settings.image,
        image_pull_policy=settings.image_pull_policy,
        command=["python", "-m", "services.worker"],
        args=args,
        env=env or None,
        env_from=[_model(e, "V1EnvFromSource") for e in settings.env_from] or None,
        ports=[k8s.V1ContainerPort(name="metrics", container_port=WORKER_METRICS_PORT)],
        resources=_resources(placement),
        security_context=_model(settings.security_context, "V1SecurityContext")
        if settings.security_context
        else None,
        volume_mounts=[
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
            k8s.V1VolumeMount(name="data", mount_path="/data"),
            k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
        ],
    )
    spec = k8s.V1PodSpec(
        restart_policy="Never",
        service_account_name=settings.service_account or None,
        # Workers only read and write object storage; they never call the Kubernetes API.
        automount_service_account_token=False,
        containers=[container],
        security_context=_model(settings.pod_security_context, "V1PodSecurityContext")
        if settings.pod_security_context
        else None,
        image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in settings.image_pull_secrets] or None,
        node_selector=placement.node_selector or None,
        tolerations=[_model(t, "V1Toleration") for t in placement.tolerations] or None,
        affinity=_model(placement.affinity, "V1Affinity") if placement.affinity else None,
        runtime_class_name=placement.runtime_class_name or None,
        priority_class_name=placement.priority_class_name or None,
        termination_grace_period_seconds=60,
        volumes=[
            k8s.V1Volume(
                name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=settings.tmp_size_limit)
            ),
            k8s.V1Volume(
                name="data", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=settings.tmp_size_limit)
            ),
            # torch data loaders share tensors through /dev/shm; the runtime default is 64 MiB.
            k8s.V1Volume(
                name="dshm",
                empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=settings.shm_size_limit),
            ),
        ],
    )
    return k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=spec)


def _disruption_rules(on_bad_input: str) -> k8s.V1PodFailurePolicy:
    return k8s.V1PodFailurePolicy(
        rules=[
            # Bad input: retrying cannot help.
            k8s.V1PodFailurePolicyRule(
                action=on_bad_input,
                on_exit_codes=k8s.V1PodFailurePolicyOnExitCodesRequirement(
                    container_name="worker", operator="In", values=[EXIT_BAD_INPUT]
                ),
            ),
            # Preemption, node drain or eviction is not the worker's fault: do not count it.
            k8s.V1PodFailurePolicyRule(
                action="Ignore",
                on_pod_conditions=[
                    k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")
                ],
            ),
        ]
    )


def _options_args(options: dict[str, Any] | None) -> list[str]:
    return ["--options", json.dumps(options, sort_keys=True)] if options else []


def build_train_job(
    job_id: str,
    faces_a_prefix: str,
    faces_b_prefix: str,
    model_prefix: str,
    options: dict[str, Any] | None = None,
    settings: JobSettings | None = None,
) -> k8s.V1Job:
    """One training run as a batch/v1 Job on a GPU node (settings.train placement)."""
    settings = settings or JobSettings()
    labels = _labels(settings, "train", job_id)
    args = [
        "train",
        "--faces-a",
        faces_a_prefix,
        "--faces-b",
        faces_b_prefix,
        "--model",
        model_prefix,
        *_options_args(options),
    ]
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=job_name(settings.name_prefix, "train", job_id),
            namespace=current_namespace(settings),
            labels=labels,
            annotations={JOB_ID_LABEL: job_id},
        ),
        spec=k8s.V1JobSpec(
            backoff_limit=settings.backoff_limit,
            active_deadline_seconds=settings.active_deadline_seconds,
            ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            pod_failure_policy=_disruption_rules("FailJob"),
            # Kueue admits a suspended Job when its queue has GPU quota, then unsuspends it.
            suspend=True if settings.queue_name else None,
            template=_pod_template(settings, settings.train, labels, args),
        ),
    )


def build_convert_job(
    job_id: str,
    frames_prefix: str,
    alignments_key: str,
    model_prefix: str,
    output_prefix: str,
    total_frames: int,
    options: dict[str, Any] | None = None,
    settings: JobSettings | None = None,
    frames_per_chunk: int | None = None,
    parallelism: int | None = None,
) -> k8s.V1Job:
    """Conversion as an Indexed Job: completion index i converts frame range chunk_ranges(...)[i]."""
    settings = settings or JobSettings()
    chunk = frames_per_chunk or settings.frames_per_chunk
    completions = len(chunk_ranges(total_frames, chunk))
    width = max(1, min(parallelism or settings.parallelism, completions))
    labels = _labels(settings, "convert", job_id)
    args = [
        "convert",
        "--frames",
        frames_prefix,
        "--alignments",
        alignments_key,
        "--model",
        model_prefix,
        "--output",
        output_prefix,
        "--total-frames",
        str(total_frames),
        "--chunk-size",
        str(chunk),
        *_options_args(options),
    ]
    per_index = settings.backoff_limit_per_index
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=job_name(settings.name_prefix, "convert", job_id),
            namespace=current_namespace(settings),
            labels=labels,
            annotations={
                JOB_ID_LABEL: job_id,
                "faceswap.io/total-frames": str(total_frames),
                "faceswap.io/frames-per-chunk": str(chunk),
            },
        ),
        spec=k8s.V1JobSpec(
            completion_mode="Indexed",
            completions=completions,
            parallelism=width,
            # Per-index retries: one bad chunk does not use up the retries of the others.
            backoff_limit_per_index=per_index if per_index > 0 else None,
            backoff_limit=None if per_index > 0 else settings.backoff_limit,
            active_deadline_seconds=settings.active_deadline_seconds,
            ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            pod_failure_policy=_disruption_rules("FailIndex" if per_index > 0 else "FailJob"),
            suspend=True if settings.queue_name else None,
            template=_pod_template(settings, settings.convert, labels, args),
        ),
    )


def to_manifest(job: k8s.V1Job) -> dict[str, Any]:
    """The Job as the plain dict kubectl would send (camelCase, no None fields)."""
    return k8s.ApiClient().sanitize_for_serialization(job)


# ---- cluster calls (need in-cluster credentials or a kubeconfig; not exercised in tests) ----


def _batch_api() -> k8s.BatchV1Api:
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return k8s.BatchV1Api()


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: str  # queued | pending | running | succeeded | failed
    completions: int
    succeeded: int
    failed: int
    active: int
    completed_indexes: str = ""
    failed_indexes: str = ""
    message: str = ""


def submit_job(manifest: k8s.V1Job | dict[str, Any], namespace: str | None = None) -> str:
    """Creates the Job; an existing Job of the same name counts as submitted (idempotent retries)."""
    from kubernetes.client.exceptions import ApiException

    body = manifest if isinstance(manifest, dict) else to_manifest(manifest)
    ns = namespace or body.get("metadata", {}).get("namespace") or current_namespace()
    try:
        created = _batch_api().create_namespaced_job(ns, body)
        return str(created.metadata.name)
    except ApiException as exc:
        if exc.status == 409:
            return str(body["metadata"]["name"])
        raise


def job_status(name: str, namespace: str | None = None) -> JobStatus:
    """Where a Job stands, reduced to the orchestrator's states."""
    from kubernetes.client.exceptions import ApiException

    try:
        job = _batch_api().read_namespaced_job_status(name, namespace or current_namespace())
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"Kubernetes job {name} not found") from exc
        raise
    status = job.status or k8s.V1JobStatus()
    conditions = {c.type: c for c in status.conditions or [] if c.status == "True"}
    if "Complete" in conditions:
        state, message = "succeeded", ""
    elif "Failed" in conditions:
        state, message = "failed", conditions["Failed"].message or conditions["Failed"].reason or ""
    elif job.spec.suspend:
        state, message = "queued", ""
    elif status.active:
        state, message = "running", ""
    else:
        state, message = "pending", ""
    return JobStatus(
        name=name,
        state=state,
        completions=int(job.spec.completions or 1),
        succeeded=int(status.succeeded or 0),
        failed=int(status.failed or 0),
        active=int(status.active or 0),
        completed_indexes=status.completed_indexes or "",
        failed_indexes=status.failed_indexes or "",
        message=message,
    )


def delete_job(name: str, namespace: str | None = None) -> None:
    """Cancels a Job; its pods are removed by the garbage collector (background propagation)."""
    _batch_api().delete_namespaced_job(
        name, namespace or current_namespace(), propagation_policy="Background"
    )


def job_logs(name: str, namespace: str | None = None, tail_lines: int = 50) -> dict[str, str]:
    """The last log lines of each pod of a Job (for error messages)."""
    _batch_api()  # loads the configuration
    core = k8s.CoreV1Api()
    ns = namespace or current_namespace()
    pods = core.list_namespaced_pod(ns, label_selector=f"{JOB_NAME_LABEL}={name}")
    return {
        pod.metadata.name: core.read_namespaced_pod_log(pod.metadata.name, ns, tail_lines=tail_lines)
        for pod in pods.items
    }


TERMINAL_STATES = frozenset({"succeeded", "failed"})


def wait_for_job(
    name: str,
    namespace: str | None = None,
    on_progress: Callable[[JobStatus], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    poll_seconds: float = 5.0,
    timeout: float | None = None,
    status: Callable[[str, str | None], JobStatus] = job_status,
) -> JobStatus:
    """Polls a Job until it succeeds or fails; deletes it when `cancelled()` turns true.

    Progress for an Indexed Job is `succeeded` of `completions` chunks. Returns the last status
    (state "cancelled" when it was cancelled, "timeout" when `timeout` seconds passed).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: JobStatus | None = None
    while True:
        current = status(name, namespace)
        if on_progress and current != last:
            on_progress(current)
        last = current
        if current.state in TERMINAL_STATES:
            return current
        if cancelled and cancelled():
            delete_job(name, namespace)
            return dataclasses.replace(current, state="cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            return dataclasses.replace(current, state="timeout")
        time.sleep(poll_seconds)
