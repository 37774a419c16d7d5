"""JobService over real gRPC on localhost: submit (idempotent), get, list, watch, cancel, files.

The scheduler is off here (run_jobs=False) so jobs stay where the API put them; the end-to-end tests
run them through the services.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from faceswap.storage import LocalStore
from services.common.pb.faceswap.v1 import common_pb2, jobs_pb2
from services.common.server import start_server
from services.orchestrator.client import JobClient
from services.orchestrator.server import build_spec
from services.orchestrator.store import open_job_store

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def api(tmp_path: Path, db_url: str):
    objects = LocalStore(tmp_path / "objects", "faceswap")
    jobs = open_job_store(db_url)
    running = start_server(build_spec(objects, jobs, run_jobs=False), port=0, metrics_port=0)
    client = JobClient(f"127.0.0.1:{running.port}")
    yield client, jobs, objects
    client.close()
    running.stop(1)
    jobs.close()


def _spec(client: JobClient, tmp_path: Path, **options) -> jobs_pb2.SwapJobSpec:
    photo = tmp_path / "b.png"
    photo.write_bytes(b"\x89PNG fake photo bytes")  # validation checks names and existence, not pixels
    return jobs_pb2.SwapJobSpec(
        video=client.upload(SAMPLES / "liveportrait_s18.mp4"),
        faces_b=[client.upload(photo)],
        options=jobs_pb2.SwapOptions(**options),
    )


def _code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code(), info.value.details()


def test_upload_download_round_trip(api, tmp_path: Path) -> None:
    client, _jobs, objects = api
    src = SAMPLES / "liveportrait_s18.mp4"
    ref = client.upload(src)
    assert ref.key.startswith("uploads/") and ref.key.endswith(".mp4")
    assert ref.size_bytes == src.stat().st_size and len(ref.sha256) == 64
    out = client.download(ref, tmp_path / "copy.mp4")
    assert out.read_bytes() == src.read_bytes()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _code(lambda: client.upload(empty))[0] == grpc.StatusCode.INVALID_ARGUMENT
    bad = common_pb2.ObjectRef(key="../etc/passwd")
    assert _code(lambda: client.download(bad, tmp_path / "x"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    other = common_pb2.ObjectRef(key="secrets/x")
    objects.put_bytes("secrets/x", b"no")
    assert _code(lambda: client.download(other, tmp_path / "x"))[0] == grpc.StatusCode.NOT_FOUND


def test_submit_is_idempotent_per_request_id(api, tmp_path: Path) -> None:
    client, _jobs, _ = api
    spec = _spec(client, tmp_path)
    job, created = client.submit(spec, request_id="req-42")
    assert created and job.name.startswith("jobs/") and job.state == jobs_pb2.JOB_STATE_QUEUED
    again, created2 = client.submit(spec, request_id="req-42")
    assert not created2 and again.name == job.name
    spec.options.output_crf = 20
    code, details = _code(lambda: client.submit(spec, request_id="req-42"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "req-42" in details
    assert client.get(job.name).spec.video.key == job.spec.video.key


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"train": {"preset": "huge"}}, "spec.options.train.preset"),
        ({"train": {"steps": -1}}, "spec.options.train.steps"),
        ({"detect": {"detector": "magic"}}, "spec.options.detect.detector"),
        ({"detect": {"size": 32}}, "spec.options.detect.size"),
        ({"convert": {"blend": "smudge"}}, "spec.options.convert.blend"),
        ({"output_codec": "x; rm -rf /"}, "spec.options.output_codec"),
    ],
)
def test_invalid_options_name_the_field(api, tmp_path: Path, options: dict, field: str) -> None:
    client, _jobs, _ = api
    spec = _spec(client, tmp_path)
    spec.options.CopyFrom(jobs_pb2.SwapOptions(**options))
    code, details = _code(lambda: client.submit(spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details


def test_bad_inputs_get_clear_statuses(api, tmp_path: Path) -> None:
    client, _jobs, _ = api
    spec = _spec(client, tmp_path)
    missing = jobs_pb2.SwapJobSpec(
        video=common_pb2.ObjectRef(key="uploads/nothing.mp4"), faces_b=list(spec.faces_b)
    )
    code, details = _code(lambda: client.submit(missing))
    assert code == grpc.StatusCode.NOT_FOUND and "spec.video" in details
    no_b = jobs_pb2.SwapJobSpec(video=spec.video)
    code, details = _code(lambda: client.submit(no_b))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "spec.faces_b" in details
    assert _code(lambda: client.get("jobs/" + "0" * 32))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.get("nonsense"))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.cancel("jobs/" + "a" * 32))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: list(client.watch("jobs/" + "b" * 32)))[0] == grpc.StatusCode.NOT_FOUND


def test_list_pages_and_filters_by_state(api, tmp_path: Path) -> None:
    client, _jobs, _ = api
    spec = _spec(client, tmp_path)
    names = [client.submit(spec)[0].name for _ in range(5)]
    client.cancel(names[0])
    seen, token = [], ""
    while True:
        page = client.list(page_size=2, page_token=token)
        seen += [j.name for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    cancelled = client.list(state=jobs_pb2.JOB_STATE_CANCELLED)
    assert [j.name for j in cancelled.jobs] == [names[0]]
    assert _code(lambda: client.list(page_token="zzz"))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_watch_sends_snapshot_then_events_and_resumes(api, tmp_path: Path) -> None:
    client, jobs, _ = api
    job, _ = client.submit(_spec(client, tmp_path))
    job_id = job.name.split("/")[1]
    # Drive the job by hand, as a worker would.
    jobs.claim_job("w", 30, 1)
    jobs.update_job(job_id, "w", stage="train", done=5, total=10, message="half way")
    jobs.finish_job(job_id, "w", "FAILED", error_code=9, error_message="no face", error_where="detect_a")
    events = list(client.watch(job.name))
    assert events[0].event.message == "snapshot" and events[0].event.sequence == 0
    seqs = [e.event.sequence for e in events[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert events[-1].job.state == jobs_pb2.JOB_STATE_FAILED and events[-1].job.error.where == "detect_a"
    assert any(e.event.progress.stage == "train" and e.event.progress.done == 5 for e in events)
    resumed = list(client.watch(job.name, after_sequence=seqs[-2]))
    assert [e.event.sequence for e in resumed[1:]] == [seqs[-1]]


def test_cancel_queued_job(api, tmp_path: Path) -> None:
    client, _jobs, _ = api
    job, _ = client.submit(_spec(client, tmp_path))
    assert client.cancel(job.name).state == jobs_pb2.JOB_STATE_CANCELLED
    assert [e.event.message for e in client.watch(job.name)][-1] == "cancel requested"
