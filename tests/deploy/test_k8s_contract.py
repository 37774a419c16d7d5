"""The Kubernetes runner against an API server: kmock's emulator over HTTP on 127.0.0.1.

The runner (services/orchestrator/k8s_jobs.py, k8s_runner.py) creates, watches, diagnoses and deletes
real objects through the kubernetes client; the test plays the Job controller, Kueue and the kubelet
by patching status and creating pods and events (see kube_emulator.py for what kmock does and does not
emulate).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from chart_render import by_kind, manifests, profile
from kube_emulator import KubeEmulator

from faceswap.errors import FailedPrecondition
from services.orchestrator import k8s_jobs

NS = "faceswap"
FAST = {"watch_seconds": 0.3, "poll_seconds": 0.1, "diagnose_seconds": 0.0, "resync_seconds": 0.0}


@pytest.fixture()
def api() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture()
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def _settings(**overrides: Any) -> k8s_jobs.JobSettings:
    return k8s_jobs.JobSettings(namespace=NS, **overrides)


def _train(job_id: str = "j1", **settings: Any) -> Any:
    return k8s_jobs.build_train_job(job_id, "a/", "b/", "m/", settings=_settings(**settings))


def _until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def _follow(api: KubeEmulator, pool: ThreadPoolExecutor, name: str, **kwargs: Any) -> tuple[Future, list]:
    seen: list[k8s_jobs.JobStatus] = []
    options = {**FAST, "pull_grace_seconds": 0.0, "stuck_grace_seconds": 30.0, **kwargs}
    future = pool.submit(
        k8s_jobs.wait_for_job, name, NS, on_progress=seen.append, client=api.client, timeout=20, **options
    )
    return future, seen


def _watches(api: KubeEmulator) -> list[Any]:
    return [r for r in api.requests() if str(r.action) == "action.WATCH"]


def _complete() -> dict[str, Any]:
    return {"succeeded": 1, "active": 0, "conditions": [{"type": "Complete", "status": "True"}]}


def test_kueue_job_is_created_suspended_then_watched_to_success(api: KubeEmulator, pool) -> None:
    api.controller.core.create_namespaced_config_map(
        NS, {"metadata": {"name": "demo-faceswap-k8s-jobs", "namespace": NS, "uid": "cm-uid-1"}}
    )
    owner = api.client.owner_reference(NS, "demo-faceswap-k8s-jobs")
    submitted = k8s_jobs.submit(_train(queue_name="gpu-queue"), client=api.client, owner=owner)
    assert submitted.created
    (create,) = [r for r in api.requests() if str(r.action) == "action.CREATE" and "jobs" in str(r.resource)]
    assert create.params.get("fieldValidation") == "Strict"
    job = api.jobs(NS)[submitted.name]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][k8s_jobs.QUEUE_LABEL] == "gpu-queue"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "demo-faceswap-k8s-jobs",
            "uid": "cm-uid-1",
            "blockOwnerDeletion": False,
            "controller": False,
        }
    ]
    # Kueue created its Workload: the Job is queued, not stuck.
    api.controller.core.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "e-created", "namespace": NS},
            "involvedObject": {"kind": "Job", "name": submitted.name, "namespace": NS},
            "reason": "CreatedWorkload",
            "message": "Created Workload",
        },
    )
    future, seen = _follow(api, pool, submitted.name, stuck_grace_seconds=0.0)
    _until(lambda: seen)
    api.patch_spec(submitted.name, NS, {"suspend": False})  # Kueue admits it
    api.patch_status(submitted.name, NS, {"active": 1})
    _until(lambda: seen[-1].state == "running")
    api.patch_status(submitted.name, NS, _complete())
    final = future.result(10)
    assert final.state == "succeeded"
    assert [s.state for s in seen] == ["queued", "pending", "running", "succeeded"]
    assert _watches(api), "changes come from the watch API"
    assert all(r.params.get("fieldSelector") == f"metadata.name={submitted.name}" for r in _watches(api))


def test_a_failed_index_fails_the_stage_naming_its_frames(api: KubeEmulator, pool, tmp_path: Path) -> None:
    from faceswap.storage import LocalStore
    from services.orchestrator.k8s_runner import KubernetesJobRunner
    from services.orchestrator.runner import StageFailed
    from services.orchestrator.settings import load_orchestrator_settings

    settings = k8s_jobs.JobSettings(namespace=NS, frames_per_chunk=100, backoff_limit_per_index=1)
    runner = KubernetesJobRunner(
        LocalStore(tmp_path),
        clients=object(),
        settings=dataclasses.replace(load_orchestrator_settings(), convert_chunk_frames=0),
        job_settings=settings,
        kube=api.client,
        follow_options=FAST,
    )
    ctx = _Context(
        "j2", {"media_extract": {"frame_count": 250}, "train": {}, "detect_a": {"alignments": "al"}}
    )
    spec = _spec()
    future = pool.submit(runner.convert, ctx, spec, _keys("j2"))
    name = k8s_jobs.job_name("faceswap", "convert", "j2")
    job = _until(lambda: api.jobs(NS).get(name))
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    assert job["spec"]["maxFailedIndexes"] == 0 and job["spec"]["backoffLimitPerIndex"] == 1
    api.patch_status(name, NS, {"active": 2, "succeeded": 1, "completedIndexes": "0"})
    _until(lambda: ctx.done == 1)
    api.patch_status(
        name,
        NS,
        {
            "active": 0,
            "failed": 2,
            "failedIndexes": "1",
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "MaxFailedIndexesExceeded",
                    "message": "Job has exceeded the specified maximal number of failed indexes",
                }
            ],
        },
    )
    with pytest.raises(StageFailed) as failed:
        future.result(10)
    assert failed.value.code == grpc.StatusCode.ABORTED
    assert "failed indexes 1" in failed.value.message
    assert "frames 100-199 not converted" in failed.value.message


_WORKER = {"name": "worker", "ready": False, "restartCount": 0, "image": "x", "imageID": ""}
STUCK = {
    "image pull": (
        {"containerStatuses": [_WORKER]},
        {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "ghcr.io/x:1"'}},
        "ImagePullBackOff, cannot pull the image",
    ),
    "missing secret": (
        {"containerStatuses": [dict(_WORKER)]},
        {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "faceswap-s3" not found'}},
        'secret "faceswap-s3" not found',
    ),
    "unschedulable": (
        {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                    "lastTransitionTime": "2020-01-01T00:00:00Z",
                }
            ]
        },
        None,
        "cannot be scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    ),
}


@pytest.mark.parametrize("case", sorted(STUCK))
def test_a_stuck_pod_fails_fast_and_the_job_is_deleted(api: KubeEmulator, pool, case: str) -> None:
    pod_status, state, expected = STUCK[case]
    name = k8s_jobs.submit(_train(), client=api.client).name
    status = dict(pod_status, phase="Pending")
    if state:
        status["containerStatuses"] = [dict(status["containerStatuses"][0], state=state)]
    api.controller.core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": f"{name}-abcde", "namespace": NS, "labels": {k8s_jobs.JOB_NAME_LABEL: name}},
            "spec": {"containers": [{"name": "worker", "image": "x"}]},
            "status": status,
        },
    )
    # Another Job's pod in the namespace (kmock ignores label selectors): must not count.
    api.controller.core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "other-xyz", "namespace": NS, "labels": {k8s_jobs.JOB_NAME_LABEL: "other"}},
            "spec": {"containers": [{"name": "worker", "image": "x"}]},
            "status": {
                "phase": "Pending",
                "containerStatuses": [dict(_WORKER, state=STUCK["image pull"][1])],
            },
        },
    )
    api.patch_status(name, NS, {"active": 1})
    future, _ = _follow(api, pool, name, stuck_grace_seconds=60.0)
    final = future.result(10)
    assert final.state == "failed" and final.reason == "Stuck"
    assert expected in final.message and f"{name}-abcde" in final.message
    assert name not in api.jobs(NS), "a stuck Job is deleted, so it does not hold a GPU for 24 h"


def test_an_unknown_kueue_queue_fails_fast(api: KubeEmulator, pool) -> None:
    name = k8s_jobs.submit(_train(queue_name="no-such-queue"), client=api.client).name
    api.controller.core.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "e-pending", "namespace": NS},
            "involvedObject": {"kind": "Workload", "name": f"job-{name}-1a2b3", "namespace": NS},
            "reason": "Pending",
            "message": "LocalQueue no-such-queue doesn't exist",
        },
    )
    final = _follow(api, pool, name)[0].result(10)
    assert final.state == "failed" and "LocalQueue no-such-queue doesn't exist" in final.message


def test_a_suspended_job_without_kueue_fails_after_the_grace(api: KubeEmulator, pool) -> None:
    name = k8s_jobs.submit(_train(queue_name="gpu-queue"), client=api.client).name
    final = _follow(api, pool, name, stuck_grace_seconds=0.5)[0].result(10)
    assert final.state == "failed" and "is Kueue installed" in final.message


def test_409_follows_a_live_job_and_replaces_a_failed_one(api: KubeEmulator) -> None:
    first = k8s_jobs.submit(_train("j3"), client=api.client)
    api.patch_status(first.name, NS, {"active": 1})
    again = k8s_jobs.submit(_train("j3"), client=api.client)
    assert (again.created, again.status.state) == (False, "running")

    api.patch_status(first.name, NS, {"active": 0, "conditions": [{"type": "Failed", "status": "True"}]})
    replaced = k8s_jobs.submit(_train("j3"), client=api.client)
    assert replaced.created
    job = api.jobs(NS)[first.name]
    assert "conditions" not in (job.get("status") or {}), "a fresh Job, not the failed one"
    deletes = [r for r in api.requests() if str(r.action) == "action.DELETE"]
    assert len(deletes) == 1 and deletes[0].params.get("propagationPolicy") == "Foreground"

    # The same name for another faceswap job (a hash collision, a hand-made Job): never adopted.
    body = k8s_jobs.to_manifest(_train("j3"))
    body["metadata"]["annotations"][k8s_jobs.JOB_ID_LABEL] = "someone-else"
    with pytest.raises(FailedPrecondition, match="belongs to job 'j3'"):
        k8s_jobs.submit(body, client=api.client)


def test_transient_api_errors_are_retried(api: KubeEmulator, pool) -> None:
    # The create reaches etcd but its response is a 500: the retry meets 409 and adopts that Job.
    api.kmock[f"post /apis/batch/v1/namespaces/{NS}/jobs"][:1] << 500
    submitted = k8s_jobs.submit(_train("j4"), client=api.client)
    assert submitted.name in api.jobs(NS)
    creates = [r for r in api.requests() if str(r.action) == "action.CREATE"]
    assert len(creates) == 2 and not submitted.created
    # Reads fail twice with 503 and 429 (API priority and fairness) before they work.
    path = f"/apis/batch/v1/namespaces/{NS}/jobs"
    api.kmock[f"get {path}"][:1] << 503
    api.kmock[f"get {path}"][:1] << 429
    future, _ = _follow(api, pool, submitted.name)
    api.patch_status(submitted.name, NS, _complete())
    assert future.result(10).state == "succeeded"

    # Persisting errors end in Unavailable (the runner makes it a retryable UNAVAILABLE stage error).
    api.kmock[f"get {path}/{submitted.name}/status"] << 502
    from faceswap.errors import Unavailable

    with pytest.raises(Unavailable, match="failed 4 times"):
        k8s_jobs.job_status(submitted.name, NS, client=api.client)


def test_cancel_deletes_the_job_and_a_shutdown_leaves_it(api: KubeEmulator, pool) -> None:
    name = k8s_jobs.submit(_train("j5"), client=api.client).name
    api.patch_status(name, NS, {"active": 1})
    stop = threading.Event()
    future, _ = _follow(api, pool, name, cancelled=stop.is_set, stopping=lambda: True)
    stop.set()
    assert future.result(10).state == "stopped"
    assert name in api.jobs(NS), "the next orchestrator follows it"

    future, _ = _follow(api, pool, name, cancelled=stop.is_set)
    assert future.result(10).state == "cancelled"
    assert name not in api.jobs(NS)
    (delete,) = [r for r in api.requests() if str(r.action) == "action.DELETE"]
    assert delete.params.get("propagationPolicy") == "Background"


def test_gone_after_success_is_told_from_gone(api: KubeEmulator, pool) -> None:
    name = k8s_jobs.submit(_train("j6"), client=api.client).name
    api.patch_status(name, NS, {"active": 1})
    future, seen = _follow(api, pool, name, watch_seconds=5.0, resync_seconds=60.0)
    _until(lambda: seen and seen[-1].state == "running" and _watches(api))
    time.sleep(0.1)  # the watch stream is open
    # The Job completes and its TTL deletes it at once: the watch sees only DELETED, with the status.
    api.ttl_delete_after_success(name, NS, _complete())
    final = future.result(10)
    assert final.state == "succeeded" and "deleted after it succeeded" in final.message

    name = k8s_jobs.submit(_train("j7"), client=api.client).name
    api.patch_status(name, NS, {"active": 1})
    future, seen = _follow(api, pool, name)
    _until(lambda: seen)
    api.controller.batch.delete_namespaced_job(name, NS)  # by hand, mid-run
    assert future.result(10).state == "gone"
    # Not there at all when following starts (TTL passed while no orchestrator ran): gone too.
    assert _follow(api, pool, "faceswap-train-never")[0].result(10).state == "gone"


def test_watch_failures_fall_back_to_polling(api: KubeEmulator, pool) -> None:
    name = k8s_jobs.submit(_train("j8"), client=api.client).name
    api.kmock[lambda request: request.params.get("watch") == "True"] << 403
    future, seen = _follow(api, pool, name)
    _until(lambda: seen)
    api.patch_status(name, NS, _complete())
    assert future.result(10).state == "succeeded"
    reads = [r for r in api.requests() if str(r.action) == "action.FETCH" and r.name == name]
    assert reads, "polled with GET once the watch was refused"


def test_the_charts_manifests_apply_and_its_role_covers_the_runner(api: KubeEmulator, pool) -> None:
    """Every object of the GPU profile is accepted by the API; the orchestrator's settings come from
    the applied ConfigMap; every request the runner makes is allowed by the chart's Role."""
    objects = manifests(profile("gpu"))
    for obj in objects:
        body = {k: v for k, v in obj.items() if k != "_template"}
        group_version = body["apiVersion"]
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        kind = body["kind"].lower()
        plural = kind[:-1] + "ies" if kind.endswith("y") else kind + ("es" if kind.endswith("s") else "s")
        ns = body["metadata"].get("namespace")
        path = f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"
        raw = api.controller.api_client
        raw.call_api(path, "POST", body=body, query_params=[("fieldValidation", "Strict")], **_RAW)
        got = raw.call_api(f"{path}/{body['metadata']['name']}", "GET", **_RAW)
        assert got["metadata"]["name"] == body["metadata"]["name"]
    config = api.controller.core.read_namespaced_config_map("demo-faceswap-k8s-jobs", NS)
    settings = k8s_jobs.JobSettings.from_dict(__import__("json").loads(config.data["jobs.json"]))
    assert settings.owner_config_map == "demo-faceswap-k8s-jobs"
    start = len(api.runner_requests())

    owner = api.client.owner_reference(NS, settings.owner_config_map)
    assert owner is None, "kmock keeps no uid: the runner then creates Jobs without an owner"
    job = k8s_jobs.build_convert_job("j9", "f/", "al", "m/", "o/", 400, settings=settings)
    name = k8s_jobs.submit(job, client=api.client).name
    api.patch_spec(name, NS, {"suspend": False})
    api.patch_status(name, NS, {"active": 1})
    future, _ = _follow(api, pool, name)
    api.patch_status(name, NS, _complete())
    assert future.result(10).state == "succeeded"
    k8s_jobs.job_logs(name, NS, client=api.client)
    k8s_jobs.delete_job(name, NS, client=api.client)

    (role,) = by_kind(objects, "Role").values()
    allowed = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    verbs = {
        "LIST": "list",
        "WATCH": "watch",
        "FETCH": "get",
        "CREATE": "create",
        "UPDATE": "patch",
        "DELETE": "delete",
    }
    for request in api.runner_requests()[start:]:
        action = str(request.action).rsplit(".", 1)[-1]
        resource = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
        assert (request.resource.group, resource, verbs[action]) in allowed, (action, resource)


_RAW = {"response_types_map": {200: "object", 201: "object"}, "_return_http_data_only": True}


# ---- a minimal job context for the runner ----


class _Context:
    def __init__(self, job_id: str, outputs: dict[str, Any]) -> None:
        self.job_id = job_id
        self.outputs = outputs
        self.cancelled = threading.Event()
        self.stopping = threading.Event()
        self.done = -1

    def progress(self, stage: str, done: int, total: int, **_: Any) -> None:
        if done >= 0:
            self.done = done


def _spec() -> Any:
    from services.common.pb.faceswap.v1 import jobs_pb2

    return jobs_pb2.SwapJobSpec()


def _keys(job_id: str) -> Any:
    from services.orchestrator.jobs import JobKeys

    return JobKeys(job_id)
