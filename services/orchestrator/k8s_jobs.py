"""Kubernetes batch/v1 Jobs for training and chunked conversion, built with the `kubernetes` client.

The orchestrator, when configured for Kubernetes (FACESWAP_RUNNER=kubernetes), runs a training stage
as one Job on a GPU node and splits conversion of a long video into an Indexed Job: pod i reads
JOB_COMPLETION_INDEX and converts frames [i * chunk, (i + 1) * chunk). Both run
``python -m services.k8s_worker`` in the platform image.

Placement (image, GPU count, nodeSelector, tolerations, affinity, runtimeClass, Kueue queue) comes
from a JSON file the Helm chart renders into a ConfigMap (FACESWAP_K8S_JOB_CONFIG, see
deploy/helm/faceswap/templates/k8s-jobs-configmap.yaml), so operators change it with Helm values,
not code. Builders are pure functions returning ``V1Job`` models. The cluster calls (``submit``,
``wait_for_job``, ``diagnose``, ``delete_job``, ``job_logs``) share one ``KubeClient`` per process,
retry transient API errors with backoff and follow Jobs with the watch API (a poll as fallback);
tests/deploy/test_k8s_contract.py runs them against the kmock API emulator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

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
    # The chart's ConfigMap the Jobs are owned by, so `helm uninstall` removes them ('' = no owner).
    owner_config_map: str = ""
    # A pod that the scheduler cannot place (the autoscaler may add a node) or that waits for a
    # missing Secret / a Kueue workload fails the stage after this long; image pulls after pull_grace.
    stuck_grace_seconds: int = 600
    pull_grace_seconds: int = 120

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
            owner_config_map=str(data.get("ownerConfigMap") or ""),
            stuck_grace_seconds=int(data.get("stuckGraceSeconds", 600)),
            pull_grace_seconds=int(data.get("pullGraceSeconds", 120)),
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


_SERDE = k8s.ApiClient()  # (de)serialisation only: never talks to a server


def _model(data: Any, klass: str) -> Any:
    """A dict (as written in Helm values) turned into a typed client model, e.g. V1Toleration."""

    class _Payload:
        def __init__(self, payload: Any) -> None:
            self.data = json.dumps(payload)

    return _SERDE.deserialize(_Payload(data), klass)


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


def _resources(placement: Placement, scratch: str = "") -> k8s.V1ResourceRequirements:
    requests = dict((placement.resources or {}).get("requests") or {})
    if scratch:
        # /tmp and /data are emptyDirs on the node's disk: the scheduler must know the pod needs it.
        requests.setdefault("ephemeral-storage", scratch)
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
        command=["python", "-m", "services.k8s_worker"],
        args=args,
        env=env or None,
        env_from=[_model(e, "V1EnvFromSource") for e in settings.env_from] or None,
        ports=[k8s.V1ContainerPort(name="metrics", container_port=WORKER_METRICS_PORT)],
        resources=_resources(placement, settings.tmp_size_limit),
        # The kubelet keeps the last log lines of a failed worker in the pod status (error messages).
        termination_message_policy="FallbackToLogsOnError",
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
    faces_b: str = "",
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
        *(["--faces-b", faces_b] if faces_b else []),
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
            # Every chunk is needed: the first index out of retries fails the Job at once.
            max_failed_indexes=0 if per_index > 0 else None,
            active_deadline_seconds=settings.active_deadline_seconds,
            ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            pod_failure_policy=_disruption_rules("FailIndex" if per_index > 0 else "FailJob"),
            suspend=True if settings.queue_name else None,
            template=_pod_template(settings, settings.convert, labels, args),
        ),
    )


def to_manifest(job: k8s.V1Job) -> dict[str, Any]:
    """The Job as the plain dict kubectl would send (camelCase, no None fields)."""
    return _SERDE.sanitize_for_serialization(job)


# ---- cluster calls: one API client per process, retried, followed with the watch API ----

log = logging.getLogger("faceswap.orchestrator.k8s")

# 429 (API priority and fairness, Retry-After), 5xx: the API server or its etcd is busy or restarting.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Container waiting reasons that do not heal by themselves: fail the stage with the kubelet's message.
FATAL_WAITING = {
    "ImagePullBackOff": "cannot pull the image",
    "ErrImagePull": "cannot pull the image",
    "InvalidImageName": "invalid image name",
    "ErrImageNeverPull": "image not present and imagePullPolicy is Never",
    "CreateContainerConfigError": "bad container config (a missing Secret or ConfigMap?)",
}
_PULL_REASONS = {"ImagePullBackOff", "ErrImagePull"}  # a registry hiccup heals: fail after a grace
# Kueue's event when a Job names a LocalQueue (or its ClusterQueue) that is missing or stopped.
_KUEUE_BAD_QUEUE = re.compile(
    r"(LocalQueue|ClusterQueue) \S+ (doesn't exist|does not exist|is inactive|not found)"
)
_MISSING_OBJECT = re.compile(r'(secret|configmap)s? "[^"]+" not found', re.IGNORECASE)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient API errors; Retry-After is honoured."""

    attempts: int = 8
    base_seconds: float = 0.5
    max_seconds: float = 20.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        delay = min(self.max_seconds, self.base_seconds * 2**attempt) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds))
        return delay


def _transient(exc: BaseException) -> tuple[bool, float | None]:
    """(retry?, Retry-After seconds) for an error of the kubernetes client."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        if exc.status not in RETRY_STATUSES:
            return False, None
        try:
            retry_after = float((exc.headers or {}).get("Retry-After", ""))
        except ValueError:
            retry_after = None
        return True, retry_after
    # A reset or refused connection, a read timeout, a broken chunked response (API server restart).
    return isinstance(exc, (HTTPError, ConnectionError, TimeoutError)), None


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else type(exc).__name__


class KubeClient:
    """One ApiClient (one connection pool, one set of credentials) for every call of the process.

    ``call`` retries transient errors (429 with Retry-After, 5xx, reset connections) with backoff and
    raises ``Unavailable`` when they persist; other API errors are raised as they are.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_client = api_client or _load_api_client()
        self.batch = k8s.BatchV1Api(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._owners: dict[tuple[str, str], dict[str, Any] | None] = {}

    @classmethod
    def for_host(cls, host: str, **kwargs: Any) -> KubeClient:
        """A client of an API server at `host` without credentials (tests, kubectl proxy)."""
        configuration = k8s.Configuration()
        configuration.host = host
        return cls(k8s.ApiClient(configuration), **kwargs)

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                transient, retry_after = _transient(exc)
                if not transient:
                    raise
                if attempt + 1 >= self.retry.attempts:
                    raise Unavailable(
                        f"Kubernetes API: {what} failed {attempt + 1} times, last: {_describe(exc)}"
                    ) from exc
                delay = self.retry.delay(attempt, retry_after)
                log.warning("Kubernetes API %s: %s; retrying in %.1f s", what, _describe(exc), delay)
                self._sleep(delay)
                attempt += 1

    def owner_reference(self, namespace: str, config_map: str) -> dict[str, Any] | None:
        """An ownerReference to the chart's ConfigMap: `helm uninstall` then garbage-collects the Jobs.

        None (Jobs without owner, logged once) when the ConfigMap cannot be read.
        """
        from kubernetes.client.exceptions import ApiException

        key = (namespace, config_map)
        if key not in self._owners:
            try:
                cm = self.call(
                    "read owner ConfigMap", self.core.read_namespaced_config_map, config_map, namespace
                )
                uid = cm.metadata.uid
                self._owners[key] = (
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": config_map, "uid": uid} if uid else None
                )
            except (ApiException, Unavailable) as exc:
                log.warning(
                    "owner ConfigMap %s/%s unreadable (%s): Jobs get no owner", namespace, config_map, exc
                )
                self._owners[key] = None
        return self._owners[key]


def _load_api_client() -> k8s.ApiClient:
    from kubernetes import config

    configuration = k8s.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


_DEFAULT_CLIENT: KubeClient | None = None
_DEFAULT_LOCK = threading.Lock()


def default_client() -> KubeClient:
    """The process-wide client (in-cluster service account, else the kubeconfig), made once."""
    global _DEFAULT_CLIENT
    with _DEFAULT_LOCK:
        if _DEFAULT_CLIENT is None:
            _DEFAULT_CLIENT = KubeClient()
        return _DEFAULT_CLIENT


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: str  # queued | pending | running | succeeded | failed | gone (+ cancelled | stopped | timeout)
    completions: int
    succeeded: int
    failed: int
    active: int
    completed_indexes: str = ""
    failed_indexes: str = ""
    message: str = ""
    reason: str = ""
    uid: str = ""


TERMINAL_STATES = frozenset({"succeeded", "failed", "gone"})


def status_of(job: k8s.V1Job) -> JobStatus:
    """Where a Job stands, reduced to the orchestrator's states."""
    status = job.status or k8s.V1JobStatus()
    conditions = {c.type: c for c in status.conditions or [] if c.status == "True"}
    reason = message = ""
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        state = "succeeded"
    elif "Failed" in conditions or "FailureTarget" in conditions:
        cond = conditions.get("Failed") or conditions["FailureTarget"]
        state, reason = "failed", cond.reason or ""
        message = cond.message or cond.reason or ""
        if status.failed_indexes:
            message = f"{message} (failed indexes {status.failed_indexes})".strip()
    elif job.spec and job.spec.suspend:
        state = "queued"
    elif status.active:
        state = "running"
    else:
        state = "pending"
    return JobStatus(
        name=job.metadata.name,
        state=state,
        completions=int((job.spec and job.spec.completions) or 1),
        succeeded=int(status.succeeded or 0),
        failed=int(status.failed or 0),
        active=int(status.active or 0),
        completed_indexes=status.completed_indexes or "",
        failed_indexes=status.failed_indexes or "",
        message=message,
        reason=reason,
        uid=job.metadata.uid or "",
    )


@dataclass(frozen=True)
class Submitted:
    name: str
    created: bool  # False: a Job of this name (same faceswap job) was already there and is followed
    status: JobStatus | None = None  # of the adopted Job


def _body(manifest: k8s.V1Job | dict[str, Any]) -> dict[str, Any]:
    body = manifest if isinstance(manifest, dict) else to_manifest(manifest)
    return json.loads(json.dumps(body))  # a copy the caller's object does not share


def submit(
    manifest: k8s.V1Job | dict[str, Any],
    namespace: str | None = None,
    client: KubeClient | None = None,
    owner: dict[str, Any] | None = None,
) -> Submitted:
    """Creates the Job (fieldValidation=Strict: an unknown field is an error, not silently dropped).

    A 409 means a Job of that name exists: from an earlier try of this request whose response was
    lost, or from before an orchestrator restart. It is followed if it is running or succeeded and
    belongs to the same faceswap job; a failed one is deleted (pods first) and created afresh, so a
    retried stage really runs again.
    """
    from kubernetes.client.exceptions import ApiException

    c = client or default_client()
    body = _body(manifest)
    meta = body.setdefault("metadata", {})
    if owner:
        meta["ownerReferences"] = [{**owner, "blockOwnerDeletion": False, "controller": False}]
    ns = namespace or meta.get("namespace") or current_namespace()
    name = meta["name"]
    for _ in range(3):
        try:
            c.call("create Job", c.batch.create_namespaced_job, ns, body, field_validation="Strict")
            return Submitted(name, created=True)
        except ApiException as exc:
            if exc.status != 409:
                raise
        try:
            existing = c.call("read Job", c.batch.read_namespaced_job, name, ns)
        except ApiException as exc:
            if exc.status == 404:
                continue  # deleted in between: create again
            raise
        want = (meta.get("annotations") or {}).get(JOB_ID_LABEL)
        have = ((existing.metadata and existing.metadata.annotations) or {}).get(JOB_ID_LABEL)
        if want and have != want:
            raise FailedPrecondition(
                f"Kubernetes Job {ns}/{name} exists but belongs to job {have!r}, not {want!r}"
            )
        state = status_of(existing)
        if state.state != "failed":
            log.info("Kubernetes Job %s already exists (%s): following it", name, state.state)
            return Submitted(name, created=False, status=state)
        log.info("Kubernetes Job %s exists but failed (%s): replacing it", name, state.message)
        delete_job(name, ns, client=c, propagation="Foreground")
        _wait_gone(c, name, ns)
    raise Unavailable(f"Kubernetes Job {ns}/{name} could not be created (it keeps existing)")


def _wait_gone(c: KubeClient, name: str, namespace: str, timeout: float = 120.0) -> None:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c.call("read Job", c.batch.read_namespaced_job, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    raise Unavailable(f"Kubernetes Job {namespace}/{name} was not deleted within {timeout:.0f} s")


def submit_job(
    manifest: k8s.V1Job | dict[str, Any], namespace: str | None = None, client: KubeClient | None = None
) -> str:
    """`submit` returning the name (idempotent: an existing running or finished Job counts)."""
    return submit(manifest, namespace, client).name


def job_status(name: str, namespace: str | None = None, client: KubeClient | None = None) -> JobStatus:
    from kubernetes.client.exceptions import ApiException

    c = client or default_client()
    try:
        job = c.call("read Job", c.batch.read_namespaced_job_status, name, namespace or current_namespace())
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"Kubernetes job {name} not found") from exc
        raise
    return status_of(job)


def delete_job(
    name: str, namespace: str | None = None, client: KubeClient | None = None, propagation: str = "Background"
) -> None:
    """Cancels a Job; its pods go with it (garbage collector). A Job already gone is fine."""
    from kubernetes.client.exceptions import ApiException

    c = client or default_client()
    try:
        c.call(
            "delete Job",
            c.batch.delete_namespaced_job,
            name,
            namespace or current_namespace(),
            propagation_policy=propagation,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def _job_pods(c: KubeClient, name: str, namespace: str, uid: str = "") -> list[k8s.V1Pod]:
    # controller-uid tells this Job's pods from those of an earlier Job of the same name.
    selector = f"batch.kubernetes.io/controller-uid={uid}" if uid else f"{JOB_NAME_LABEL}={name}"
    pods = c.call("list pods", c.core.list_namespaced_pod, namespace, label_selector=selector).items
    key, value = selector.split("=", 1)
    return [p for p in pods if ((p.metadata and p.metadata.labels) or {}).get(key) == value]


def job_logs(
    name: str, namespace: str | None = None, tail_lines: int = 50, client: KubeClient | None = None
) -> dict[str, str]:
    """The last log lines of each pod of a Job (for error messages)."""
    c = client or default_client()
    ns = namespace or current_namespace()
    return {
        pod.metadata.name: c.call(
            "read log", c.core.read_namespaced_pod_log, pod.metadata.name, ns, tail_lines=tail_lines
        )
        for pod in _job_pods(c, name, ns)
    }


def _parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an API timestamp (datetime or RFC 3339 string)."""
    import datetime

    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value.timestamp() if isinstance(value, datetime.datetime) else None


@dataclass
class _Stuck:
    """Remembers since when each suspicious condition was seen, for those that get a grace period."""

    pull_grace: float
    stuck_grace: float
    first_seen: dict[str, float] = field(default_factory=dict)

    def overdue(self, key: str, grace: float, since: float | None = None) -> bool:
        start = since if since is not None else self.first_seen.setdefault(key, time.time())
        return time.time() - start >= grace


def diagnose(
    name: str,
    namespace: str,
    status: JobStatus,
    client: KubeClient | None = None,
    stuck: _Stuck | None = None,
) -> str:
    """Why a Job that is not progressing will not progress ('' when nothing says so), from its pods
    and the namespace's events: an image that cannot be pulled, a missing Secret, a pod the scheduler
    cannot place (after a grace period: the cluster autoscaler may be adding a node), a Kueue queue
    that does not exist."""
    c = client or default_client()
    stuck = stuck or _Stuck(0.0, 0.0)
    events = [
        e
        for e in c.call("list events", c.core.list_namespaced_event, namespace).items
        if e.involved_object is not None
    ]
    if status.state == "queued":
        for e in events:
            obj = e.involved_object
            workload = obj.kind == "Workload" and (obj.name or "").startswith(f"job-{name}-")
            if workload and _KUEUE_BAD_QUEUE.search(e.message or ""):
                return f"Kueue cannot admit Job {name}: {e.message}"
        created = any(
            e.involved_object.kind == "Job"
            and e.involved_object.name == name
            and e.reason == "CreatedWorkload"
            for e in events
        )
        if not created and stuck.overdue("no-workload", stuck.stuck_grace):
            return (
                f"Job {name} is suspended for Kueue but no Workload was created after {stuck.stuck_grace:.0f} s:"
                " is Kueue installed and does the LocalQueue exist?"
            )
        return ""
    pods = _job_pods(c, name, namespace, status.uid)
    names = {p.metadata.name for p in pods}
    for pod in pods:
        pod_name = pod.metadata.name
        pstatus = pod.status or k8s.V1PodStatus()
        for cs in (pstatus.container_statuses or []) + (pstatus.init_container_statuses or []):
            waiting = cs.state and cs.state.waiting
            if not waiting or waiting.reason not in FATAL_WAITING:
                continue
            if waiting.reason in _PULL_REASONS and not stuck.overdue(f"pull/{pod_name}", stuck.pull_grace):
                continue
            what = FATAL_WAITING[waiting.reason]
            return f"pod {pod_name}: {waiting.reason}, {what}: {waiting.message or ''}".rstrip(": ")
        for cond in pstatus.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                since = _parse_time(cond.last_transition_time)
                if stuck.overdue(f"sched/{pod_name}", stuck.stuck_grace, since):
                    return f"pod {pod_name} cannot be scheduled: {cond.message or 'Unschedulable'}"
    for e in events:
        obj = e.involved_object
        mount = obj.kind == "Pod" and obj.name in names and e.reason == "FailedMount"
        missing = mount and _MISSING_OBJECT.search(e.message or "")
        if missing and stuck.overdue(f"mount/{obj.name}", stuck.stuck_grace):
            return f"pod {obj.name}: {e.message}"
    return ""


def wait_for_job(
    name: str,
    namespace: str | None = None,
    on_progress: Callable[[JobStatus], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    stopping: Callable[[], bool] | None = None,
    timeout: float | None = None,
    client: KubeClient | None = None,
    watch_seconds: float = 10.0,
    poll_seconds: float = 5.0,
    diagnose_seconds: float = 15.0,
    pull_grace_seconds: float = 120.0,
    stuck_grace_seconds: float = 600.0,
    resync_seconds: float = 60.0,
) -> JobStatus:
    """Follows a Job until it ends: the one loop both the runner and scripts use.

    A list gives the Job and a resourceVersion, a watch from that version streams its changes
    (windows of `watch_seconds`, after which cancellation and stuck pods are checked and the watch
    resumes from the last version seen; 410 Gone relists). If watching fails repeatedly, it falls back
    to reading the Job every `poll_seconds`. Returns the last status, whose state is:

    - succeeded / failed: the Job's own outcome (failed also when `diagnose` finds a stuck pod; the
      Job is then deleted and the message says why);
    - succeeded too when the Job was deleted after it completed (TTL) and the delete showed that;
    - gone: the Job disappeared and nothing showed it had succeeded;
    - cancelled (the Job was deleted), stopped (`stopping()`: left running for the next owner),
      timeout.

    Every `resync_seconds` the Job is listed again, as informers do, in case a watch event was missed.
    """
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    c = client or default_client()
    ns = namespace or current_namespace()
    deadline = None if timeout is None else time.monotonic() + timeout
    stuck = _Stuck(pull_grace_seconds, stuck_grace_seconds)
    selector = f"metadata.name={name}"
    last: JobStatus | None = None
    version: str | None = None
    watching, watch_errors = True, 0
    next_diagnosis = time.monotonic() + diagnose_seconds
    next_resync = 0.0

    def seen(job: k8s.V1Job) -> JobStatus:
        nonlocal last
        current = status_of(job)
        if on_progress and current != last:
            on_progress(current)
        last = current
        return current

    def gone(final: k8s.V1Job | None) -> JobStatus:
        status = status_of(final) if final is not None else last
        if status is not None and status.state == "succeeded":
            return dataclasses.replace(status, message="deleted after it succeeded (TTL)")
        base = status or JobStatus(name, "gone", 0, 0, 0, 0)
        return dataclasses.replace(
            base, state="gone", message=f"Kubernetes Job {name} was deleted before it finished"
        )

    while True:
        # 1. Where the Job stands now (and the version to watch from).
        if version is None or not watching or time.monotonic() >= next_resync:
            next_resync = time.monotonic() + resync_seconds
            try:
                if watching:
                    listing = c.call("list Job", c.batch.list_namespaced_job, ns, field_selector=selector)
                    job = next((j for j in listing.items if j.metadata.name == name), None)
                    version = (listing.metadata and listing.metadata.resource_version) or ""
                else:
                    job = c.call("read Job", c.batch.read_namespaced_job, name, ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                job = None
            if job is None:
                return gone(None)
            if seen(job).state in TERMINAL_STATES:
                return last  # type: ignore[return-value]
        # 2. Between changes: cancellation, a deadline, stuck pods.
        if cancelled and cancelled():
            if stopping and stopping():
                return dataclasses.replace(last, state="stopped")  # type: ignore[arg-type]
            delete_job(name, ns, client=c)
            return dataclasses.replace(last, state="cancelled")  # type: ignore[arg-type]
        if deadline is not None and time.monotonic() >= deadline:
            return dataclasses.replace(last, state="timeout")  # type: ignore[arg-type]
        if (
            last is not None
            and last.state in ("queued", "pending", "running")
            and time.monotonic() >= next_diagnosis
        ):
            next_diagnosis = time.monotonic() + diagnose_seconds
            why = diagnose(name, ns, last, c, stuck)
            if why:
                log.warning("Kubernetes Job %s is stuck: %s", name, why)
                delete_job(name, ns, client=c)
                return dataclasses.replace(last, state="failed", reason="Stuck", message=why)
        # 3. Wait for the next change.
        if not watching:
            time.sleep(poll_seconds)
            continue
        window = watch_seconds
        if deadline is not None:
            window = max(0.1, min(window, deadline - time.monotonic()))
        w = watch.Watch()
        try:
            for event in w.stream(
                c.batch.list_namespaced_job,
                ns,
                field_selector=selector,
                resource_version=version or None,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, int(window)),
                _request_timeout=window + 5 if window >= 1 else window,
            ):
                obj = event["object"]
                meta = getattr(obj, "metadata", None)
                if meta is not None and meta.resource_version:
                    version = meta.resource_version
                if event["type"] == "BOOKMARK" or meta is None or meta.name != name:
                    continue
                if event["type"] == "DELETED":
                    return gone(obj)
                if seen(obj).state in TERMINAL_STATES:
                    return last  # type: ignore[return-value]
                if cancelled and cancelled():
                    break
            watch_errors = 0
        except ApiException as exc:
            if exc.status == 410:  # our version is older than etcd keeps: list again
                version = None
            elif exc.status in (403, 405):
                log.warning("cannot watch Jobs (%s): polling every %.0f s", _describe(exc), poll_seconds)
                watching = False
            elif _transient(exc)[0]:
                watch_errors += 1
            else:
                raise
        except Exception as exc:
            from urllib3.exceptions import ReadTimeoutError

            if isinstance(exc, ReadTimeoutError):
                pass  # the window ended without a change (a server that ignores timeoutSeconds)
            elif _transient(exc)[0]:
                watch_errors += 1
            else:
                raise
        finally:
            w.stop()
        if watch_errors:
            if watch_errors >= 3:
                log.warning("watching Job %s keeps failing: polling every %.0f s", name, poll_seconds)
                watching = False
            else:
                time.sleep(c.retry.delay(watch_errors))
                version = None
