"""Job manifests the orchestrator builds (services/orchestrator/k8s_jobs.py) and the worker they run."""

from __future__ import annotations

import json

import pytest
from chart_render import by_kind, manifests, profile, validate

from faceswap.errors import InvalidArgument
from services.k8s_worker import build_options, completion_index, frame_range, main
from services.orchestrator import k8s_jobs


@pytest.fixture(scope="module")
def chart_settings(tmp_path_factory: pytest.TempPathFactory) -> k8s_jobs.JobSettings:
    """The settings the chart's GPU profile hands the orchestrator (FACESWAP_K8S_JOB_CONFIG)."""
    config = by_kind(manifests(profile("gpu")), "ConfigMap")["demo-faceswap-k8s-jobs"]
    path = tmp_path_factory.mktemp("k8s") / "jobs.json"
    path.write_text(config["data"]["jobs.json"])
    return k8s_jobs.load_job_settings(path)


def _as_k8s(job: object) -> dict:
    manifest = k8s_jobs.to_manifest(job)
    return {"apiVersion": manifest["apiVersion"], "kind": manifest["kind"], **manifest}


def test_training_job_runs_on_a_gpu_node(chart_settings: k8s_jobs.JobSettings) -> None:
    job = k8s_jobs.build_train_job(
        "jobs/0123-ABC",
        "jobs/0123/faces/a",
        "jobs/0123/faces/b",
        "jobs/0123/model",
        {"steps": 500},
        chart_settings,
    )
    manifest = _as_k8s(job)
    validate(manifest)
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["name"] == "demo-faceswap-train-jobs-0123-abc"
    assert meta["namespace"] == "faceswap"
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert meta["annotations"]["faceswap.io/job-id"] == "jobs/0123-ABC"
    assert spec["suspend"] is True  # Kueue admits it
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/faceswap/faceswap:0.1.0-cuda"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["command"] == ["python", "-m", "services.k8s_worker"]
    assert container["args"][:7] == [
        "train",
        "--faces-a",
        "jobs/0123/faces/a",
        "--faces-b",
        "jobs/0123/faces/b",
        "--model",
        "jobs/0123/model",
    ]
    assert json.loads(container["args"][8]) == {"steps": 500}
    env = {e["name"]: e for e in container["env"]}
    assert env["S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "demo-faceswap-minio"
    assert env["FACESWAP_WORKER_METRICS_PORT"]["value"] == "9090"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [2]


def test_conversion_is_an_indexed_job_over_frame_ranges(chart_settings: k8s_jobs.JobSettings) -> None:
    job = k8s_jobs.build_convert_job(
        "j42",
        "jobs/j42/frames",
        "jobs/j42/faces/b/alignments.json",
        "jobs/j42/model",
        "jobs/j42/swapped",
        total_frames=1000,
        options={"blend": "seamless"},
        settings=chart_settings,
    )
    manifest = _as_k8s(job)
    validate(manifest)
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 7  # ceil(1000 / 150), chart: framesPerChunk 150
    assert spec["parallelism"] == 7  # chart asks for 8, never more than there are chunks
    assert spec["backoffLimitPerIndex"] == 2
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailIndex"
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--total-frames") + 1] == "1000"
    assert args[args.index("--chunk-size") + 1] == "150"
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    # Every frame is converted exactly once across the completion indexes the worker reads.
    covered = [f for i in range(7) for f in range(*frame_range(i, 150, 1000))]
    assert covered == list(range(1000))
    assert [frame_range(i, 150, 1000) for i in range(7)] == k8s_jobs.chunk_ranges(1000, 150)


def test_default_settings_build_valid_cpu_jobs() -> None:
    settings = k8s_jobs.JobSettings(namespace="default")
    convert = _as_k8s(k8s_jobs.build_convert_job("x" * 80, "f", "a.json", "m", "o", 10, settings=settings))
    validate(convert)
    assert len(convert["metadata"]["name"]) <= 52
    assert "kueue.x-k8s.io/queue-name" not in convert["metadata"]["labels"]
    assert "suspend" not in convert["spec"]
    container = convert["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in (container["resources"].get("limits") or {})
    validate(_as_k8s(k8s_jobs.build_train_job("t1", "a", "b", "m", settings=settings)))


def test_job_names_are_dns_labels_and_unique() -> None:
    a = k8s_jobs.job_name("faceswap", "convert", "A" * 70 + "1")
    b = k8s_jobs.job_name("faceswap", "convert", "A" * 70 + "2")
    assert a != b and len(a) <= 52 and len(b) <= 52
    assert k8s_jobs.job_name("fs", "train", "Jobs/Ünïcode_id") == "fs-train-jobs-n-code-id"


def test_chunk_ranges_reject_nonsense() -> None:
    assert k8s_jobs.chunk_ranges(5, 10) == [(0, 5)]
    with pytest.raises(InvalidArgument):
        k8s_jobs.chunk_ranges(0, 10)
    with pytest.raises(InvalidArgument):
        k8s_jobs.chunk_ranges(10, 0)


def test_worker_reads_its_completion_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    assert completion_index(None) == 3
    assert completion_index(1) == 1
    assert frame_range(3, 100, 350) == (300, 350)
    with pytest.raises(InvalidArgument):
        frame_range(4, 100, 350)  # past the end
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "x")
    with pytest.raises(InvalidArgument):
        completion_index(None)


def test_worker_options_map_onto_dataclasses() -> None:
    from dataclasses import dataclass

    @dataclass
    class Opts:
        steps: int = 10
        preset: str = "lite"

    assert build_options(Opts, {"steps": 3}) == Opts(steps=3)
    with pytest.raises(InvalidArgument) as info:
        build_options(Opts, {"stepz": 3})
    assert info.value.field == "options.stepz"


def test_worker_exits_2_on_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    args = ["convert", "--frames", "f", "--alignments", "a.json", "--model", "m", "--output", "o"]
    assert main([*args, "--total-frames", "10", "--chunk-size", "5"]) == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"] == "InvalidArgument"
    assert main([*args, "--total-frames", "10", "--chunk-size", "5", "--index", "7"]) == 2


def test_job_states_and_retry_backoff() -> None:
    """Following a real API is tests/deploy/test_k8s_contract.py; here the pure parts."""
    from kubernetes import client as k8s

    def job(**status: object) -> k8s.V1Job:
        return k8s.V1Job(
            metadata=k8s.V1ObjectMeta(name="j"),
            spec=k8s.V1JobSpec(
                template=k8s.V1PodTemplateSpec(), completions=4, suspend=status.pop("suspend", None)
            ),
            status=k8s.V1JobStatus(**status),
        )

    assert k8s_jobs.status_of(job(suspend=True)).state == "queued"
    assert k8s_jobs.status_of(job()).state == "pending"
    assert k8s_jobs.status_of(job(active=2, succeeded=1)).state == "running"
    done = k8s_jobs.status_of(job(conditions=[k8s.V1JobCondition(type="Complete", status="True")]))
    assert done.state == "succeeded"
    failed = k8s_jobs.status_of(
        job(
            failed_indexes="2",
            conditions=[k8s.V1JobCondition(type="Failed", status="True", reason="MaxFailedIndexesExceeded")],
        )
    )
    assert (failed.state, failed.reason) == ("failed", "MaxFailedIndexesExceeded")
    assert "failed indexes 2" in failed.message
    policy = k8s_jobs.RetryPolicy(base_seconds=1, max_seconds=8)
    assert all(0.5 <= policy.delay(0) <= 1 for _ in range(20))
    assert policy.delay(10) <= 8 and policy.delay(0, retry_after=5) == 5
    from services.orchestrator.k8s_runner import failed_frames

    assert failed_frames("1,3-4", 100, 450) == "frames 100-199, 300-449 not converted"


def test_orchestrator_job_manifests_parse_in_the_worker(chart_settings: k8s_jobs.JobSettings) -> None:
    """The contract between the orchestrator's Kubernetes runner and the worker its Jobs run."""
    k8s_runner = pytest.importorskip("services.orchestrator.k8s_runner")
    from faceswap.options.convert import ConvertOptions
    from services.common.pb.faceswap.v1 import jobs_pb2
    from services.k8s_worker import build_parser, parse_options
    from services.trainer.loop import TrainOptions

    spec = jobs_pb2.SwapJobSpec()
    spec.options.train.steps = 50
    spec.options.convert.blend = "alpha"
    train = _as_k8s(k8s_runner.train_manifest("abc", spec, "faceswap", chart_settings))
    validate(train)
    args = build_parser().parse_args(train["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.stage == "train"
    assert build_options(TrainOptions, parse_options(args.options)).steps == 50

    convert = _as_k8s(
        k8s_runner.convert_manifest(
            "abc", spec, "jobs/abc/faces_a/alignments.json", "m", 100, chart_settings, 30
        )
    )
    validate(convert)
    assert convert["spec"]["completions"] == 4
    args = build_parser().parse_args(convert["spec"]["template"]["spec"]["containers"][0]["args"])
    assert (args.stage, args.total_frames, args.chunk_size) == ("convert", 100, 30)
    assert build_options(ConvertOptions, parse_options(args.options)).validate().blend == "alpha"
