"""TrainerService over real gRPC: start / watch / stop, one run per prefix, clear errors."""

from __future__ import annotations

import grpc
import pytest

from services.common.client import make_channel
from services.common.pb.faceswap.v1 import trainer_pb2, trainer_pb2_grpc
from services.common.server import start_server
from services.trainer.server import build_spec


@pytest.fixture
def trainer(local_store):
    running = start_server(build_spec(local_store), port=0, metrics_port=0)
    channel = make_channel(f"127.0.0.1:{running.port}")
    yield trainer_pb2_grpc.TrainerServiceStub(channel), running
    channel.close()
    running.stop(grace=1.0)


def _request(prefix: str, steps: int, **options) -> trainer_pb2.StartTrainingRequest:
    return trainer_pb2.StartTrainingRequest(
        faces_a_prefix="sets/a",
        faces_b_prefix="sets/b",
        model_prefix=prefix,
        options=trainer_pb2.TrainOptions(preset="lite", steps=steps, batch_size=4, size=32, **options),
    )


def test_start_watch_stop_over_grpc(trainer, face_sets, local_store) -> None:
    stub, _ = trainer
    started = stub.StartTraining(_request("models/g", 100000, save_every=100000), timeout=30)
    assert started.status.model_prefix == "models/g"
    # A second start for the same prefix returns the running run instead of starting another.
    again = stub.StartTraining(_request("models/g", 5), timeout=30)
    assert again.status.total_steps == 100000
    states = []
    stream = stub.WatchTraining(trainer_pb2.WatchTrainingRequest(model_prefix="models/g"), timeout=120)
    for update in stream:
        states.append(update.status.state)
        if update.status.step >= 3 and len(states) > 1:
            stopped = stub.StopTraining(trainer_pb2.StopTrainingRequest(model_prefix="models/g"), timeout=30)
            assert stopped.status.state in (
                trainer_pb2.TRAINING_STATE_STOPPING,
                trainer_pb2.TRAINING_STATE_STOPPED,
            )
    final = stub.GetTraining(trainer_pb2.GetTrainingRequest(model_prefix="models/g"), timeout=30).status
    assert final.state == trainer_pb2.TRAINING_STATE_STOPPED, final
    assert states[-1] == trainer_pb2.TRAINING_STATE_STOPPED
    assert final.step >= 3 and final.checkpoint.key == "models/g/checkpoint.pt" and final.checkpoint.sha256
    assert final.preview.key == "models/g/preview.png" and final.samples_per_second > 0
    assert "from scratch" in final.message
    # Resuming through the service continues from the saved step.
    resumed = stub.StartTraining(_request("models/g", final.step + 2), timeout=30)
    assert resumed.status.state == trainer_pb2.TRAINING_STATE_RUNNING
    last = list(stub.WatchTraining(trainer_pb2.WatchTrainingRequest(model_prefix="models/g"), timeout=120))
    assert last[-1].status.state == trainer_pb2.TRAINING_STATE_SUCCEEDED
    assert last[-1].status.step == final.step + 2 and "resuming from step" in last[-1].status.message


def test_server_stop_checkpoints_running_trainings(trainer, face_sets, local_store) -> None:
    stub, running = trainer
    stub.StartTraining(_request("models/s", 100000, save_every=100000), timeout=30)
    for update in stub.WatchTraining(trainer_pb2.WatchTrainingRequest(model_prefix="models/s"), timeout=120):
        if update.status.step >= 2:
            break
    running.stop(grace=1.0)  # what SIGTERM does
    assert local_store.exists("models/s/checkpoint.pt")


def test_bad_requests_get_clear_status_codes(trainer, face_sets) -> None:
    stub, _ = trainer
    with pytest.raises(grpc.RpcError) as err:
        stub.StartTraining(
            trainer_pb2.StartTrainingRequest(faces_a_prefix="sets/a", model_prefix="m"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "faces_b_prefix" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetTraining(trainer_pb2.GetTrainingRequest(model_prefix="models/none"), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # A run that fails (no faces) reports FAILED with the reason, not a traceback.
    bad = _request("models/bad", 5)
    bad.faces_a_prefix = "sets/missing"
    stub.StartTraining(bad, timeout=30)
    updates = list(
        stub.WatchTraining(trainer_pb2.WatchTrainingRequest(model_prefix="models/bad"), timeout=60)
    )
    status = updates[-1].status
    assert status.state == trainer_pb2.TRAINING_STATE_FAILED
    assert (
        status.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        and "no faces" in status.error.message
    )
