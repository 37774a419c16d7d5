"""End to end through real gRPC on localhost: every service as a subprocess, a short cut of the real
sample clips, a tiny training run. Also: cancel, and killing the trainer / the orchestrator mid-job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.storage import LocalStore, ObjectStore, open_store
from services.common.client import make_channel
from services.common.pb.faceswap.v1 import jobs_pb2, trainer_pb2, trainer_pb2_grpc
from services.orchestrator.client import TERMINAL, JobClient
from services.orchestrator.launcher import ServiceGroup

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
BASE_ENV = {
    "FACESWAP_THREADS": "1",  # 2 shared cores: one thread per service
    "FACESWAP_JOB_LEASE_SECONDS": "3",
    "FACESWAP_STAGE_RETRY_SECONDS": "120",
    "FACESWAP_CONVERT_CHUNK_FRAMES": "12",
    "FACESWAP_POLL_SECONDS": "0.3",
    "FACESWAP_LOG_FORMAT": "text",
}


def _group(tmp: Path, extra: dict[str, str] | None = None) -> ServiceGroup:
    env = {**BASE_ENV, "FACESWAP_DATA_DIR": str(tmp / "data"), "FACESWAP_DB_URL": "", **(extra or {})}
    env.setdefault("FACESWAP_STORAGE", "local")
    return ServiceGroup(env=env, log_dir=tmp / "logs")


def _objects(group: ServiceGroup) -> ObjectStore:
    env = group.env
    if env.get("FACESWAP_STORAGE") == "s3":
        return open_store()  # the test process has the same S3 settings (s3_env)
    return LocalStore(Path(env["FACESWAP_DATA_DIR"]) / "storage", env.get("FACESWAP_BUCKET", "faceswap"))


@pytest.fixture(scope="module")
def local_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    group = _group(tmp_path_factory.mktemp("svc"))
    with group:
        yield group


def _spec(client: JobClient, clips: dict[str, Path], steps: int, **train) -> jobs_pb2.SwapJobSpec:
    spec = jobs_pb2.SwapJobSpec(video=client.upload(clips["a"]), faces_b=[client.upload(clips["b"])])
    spec.options.train.preset = "lite"
    spec.options.convert.method = "autoencoder"  # these jobs exercise training
    spec.options.train.steps = steps
    spec.options.train.batch_size = 4
    spec.options.train.save_every = train.pop("save_every", steps)
    for key, value in train.items():
        setattr(spec.options.train, key, value)
    spec.options.evaluate_max_frames = 4
    return spec


def _wait_for(client: JobClient, name: str, cond, timeout: float) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(name)
        if cond(job):
            return job
        assert job.state not in TERMINAL, f"job ended early: {job}"
        time.sleep(0.3)
    raise AssertionError(f"condition not met in {timeout}s: {client.get(name)}")


def _probe(path: Path):
    from faceswap.media.store import probe

    return probe(path)


def _assert_swapped_video(objects: ObjectStore, job: jobs_pb2.Job, source: Path, tmp: Path) -> None:
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.error
    out = tmp / "out.mp4"
    objects.get_file(job.output.key, out)
    src, got = _probe(source), _probe(out)
    assert got.frame_count == src.frame_count
    assert abs(got.duration - src.duration) <= 1.0 / float(src.fps) + 1e-3
    assert got.has_audio
    # The face region changed, the background did not (much).
    job_id = job.name.split("/")[1]
    alignments = objects.get_json(f"jobs/{job_id}/faces_a/alignments.json")
    frame = next(f for f in alignments["frames"] if f.get("faces"))
    left, top, right, bottom = frame["faces"][0]["box"]
    a = _frame(source, frame["index"]).astype(np.float32)
    b = _frame(out, frame["index"]).astype(np.float32)
    face = np.abs(a[top:bottom, left:right] - b[top:bottom, left:right]).mean()
    corner = np.abs(a[:40, :40] - b[:40, :40]).mean()
    assert face > 4.0 and face > 3 * corner, (face, corner)


def _frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, img = cap.read()
            assert ok
        return img
    finally:
        cap.release()


def test_swap_job_end_to_end(local_services: ServiceGroup, clips, tmp_path: Path) -> None:
    objects = _objects(local_services)
    with JobClient(local_services.jobs_address) as client:
        spec = _spec(client, clips, steps=12)
        job, created = client.submit(spec, request_id="e2e-1")
        assert created
        stages = []
        final = client.wait(job.name, on_event=lambda r: stages.append(r.event.progress.stage))
        _assert_swapped_video(objects, final, clips["a"], tmp_path)
        seen = [s for i, s in enumerate(stages) if s and s not in stages[:i]]
        assert seen[:6] == ["media_extract", "detect_a", "detect_b", "train", "convert", "encode"]
        if final.report.key:  # the evaluator is installed: the report comes with the job
            report = client.download(final.report, tmp_path / "report.html")
            assert report.stat().st_size > 1000
        again, created_again = client.submit(spec, request_id="e2e-1")
        assert not created_again and again.name == job.name  # idempotent: the same job, not run again


def test_cancel_stops_training(local_services: ServiceGroup, clips) -> None:
    with JobClient(local_services.jobs_address) as client:
        job, _ = client.submit(_spec(client, clips, steps=100_000, save_every=50))
        _wait_for(client, job.name, lambda j: j.progress.stage == "train" and j.progress.done > 0, 240)
        client.cancel(job.name)
        final = _wait_for_end(client, job.name, 60)
        assert final.state == jobs_pb2.JOB_STATE_CANCELLED
        trainer = trainer_pb2_grpc.TrainerServiceStub(make_channel(local_services.address("trainer")))
        job_id = job.name.split("/")[1]
        status = trainer.GetTraining(
            trainer_pb2.GetTrainingRequest(model_prefix=f"jobs/{job_id}/model"), timeout=10
        )
        assert status.status.state == trainer_pb2.TRAINING_STATE_STOPPED  # stopped before CANCELLED
        step = status.status.step
        time.sleep(2)
        again = trainer.GetTraining(
            trainer_pb2.GetTrainingRequest(model_prefix=f"jobs/{job_id}/model"), timeout=10
        )
        assert again.status.step == step  # no work goes on


def _wait_for_end(client: JobClient, name: str, timeout: float) -> jobs_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(name)
        if job.state in TERMINAL:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job not over in {timeout}s: {client.get(name)}")


def _kill_mid_training(group: ServiceGroup, victim: str, clips, tmp: Path) -> None:
    objects = _objects(group)
    with JobClient(group.jobs_address) as client:
        job, _ = client.submit(_spec(client, clips, steps=60, save_every=10))
        job_id = job.name.split("/")[1]
        ckpt = f"jobs/{job_id}/model/checkpoint.json"
        _wait_for(client, job.name, lambda j: j.progress.stage == "train" and objects.exists(ckpt), 300)
        saved_step = json.loads(objects.get_bytes(ckpt)).get("step", 0)
        group.kill(victim)
        time.sleep(1.0)
        group.restart(victim)
        final = _wait_for_end(client, job.name, 300)
        _assert_swapped_video(objects, final, clips["a"], tmp)
        events = [r.event for r in client.watch(job.name)]
    messages = " | ".join(e.message for e in events)
    if victim == "trainer":
        assert "resum" in messages.lower(), messages  # the trainer resumed from its checkpoint
        assert saved_step > 0
    else:
        assert "resumed by" in messages, messages  # another orchestrator process took the job over
    assert final.progress.stage in ("encode", "evaluate")


@pytest.mark.parametrize("victim", ["trainer", pytest.param("orchestrator", marks=pytest.mark.slow)])
def test_killed_service_resumes_job(victim: str, clips, tmp_path: Path) -> None:
    with _group(tmp_path) as group:
        _kill_mid_training(group, victim, clips, tmp_path)


@pytest.mark.slow
def test_killed_trainer_resumes_job_on_s3(s3_env: dict[str, str], clips, tmp_path: Path) -> None:
    with _group(tmp_path, dict(s3_env)) as group:
        _kill_mid_training(group, "trainer", clips, tmp_path)


@pytest.mark.slow
def test_two_orchestrators_share_postgres(pg_url: str, clips, tmp_path: Path) -> None:
    """Two orchestrator processes on one PostgreSQL: every job runs once, to the end."""
    extra = {"FACESWAP_DB_URL": pg_url, "FACESWAP_MAX_RUNNING_JOBS": "2"}
    with _group(tmp_path, extra) as group:
        second = ServiceGroup(
            env=dict(group.env),
            services=("orchestrator",),
            ports={**group.ports, "orchestrator": _free_port()},
            log_dir=tmp_path / "logs2",
        )
        with second, JobClient(group.jobs_address) as client:
            specs = [_spec(client, clips, steps=8) for _ in range(3)]
            for spec in specs:
                spec.options.skip_evaluate = True
            names = [client.submit(spec)[0].name for spec in specs]
            finals = [_wait_for_end(client, name, 400) for name in names]
            starts = {
                name: [r.event.message for r in client.watch(name) if "started by" in r.event.message]
                for name in names
            }
    assert all(f.state == jobs_pb2.JOB_STATE_SUCCEEDED for f in finals), [f.error for f in finals]
    assert all(len(s) == 1 for s in starts.values()), starts  # claimed once, never run twice
    workers = {s[0].split("started by ")[1] for s in starts.values()}
    assert workers  # (which replica took which job is up to the race)


def _free_port() -> int:
    from services.orchestrator.launcher import free_port

    return free_port()


@pytest.mark.slow
def test_reuse_trained_model_skips_training(local_services: ServiceGroup, clips, tmp_path: Path) -> None:
    objects = _objects(local_services)
    with JobClient(local_services.jobs_address) as client:
        spec = _spec(client, clips, steps=12)
        spec.options.skip_evaluate = True
        first = client.wait(client.submit(spec)[0].name)
        assert first.state == jobs_pb2.JOB_STATE_SUCCEEDED, first.error
        model = f"jobs/{first.name.split('/')[1]}/model"
        reuse = jobs_pb2.SwapJobSpec(video=client.upload(clips["a"]), faces_b=[client.upload(clips["b"])])
        reuse.options.model_prefix = model
        reuse.options.convert.method = "autoencoder"
        reuse.options.skip_evaluate = True
        final = client.wait(client.submit(reuse)[0].name)
        messages = [r.event.message for r in client.watch(final.name)]
    _assert_swapped_video(objects, final, clips["a"], tmp_path)
    assert not any(m.startswith(("training", "warm start")) for m in messages), messages
    job_id = final.name.split("/")[1]
    assert not objects.exists(f"jobs/{job_id}/model/checkpoint.pt")  # nothing trained for this job
