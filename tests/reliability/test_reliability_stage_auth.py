"""Stage services trust only the orchestrator, and uploads belong to their client.

With tokens on, a client's token is PERMISSION_DENIED on media, detector, trainer and converter
(their own RPCs and OperationService alike), the orchestrator's token works, the job API's limits hold
on a stage service too, and DownloadFile / SubmitSwapJob take only the caller's own uploads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from reliability_support import TOKENS, Platform

from services.common.pb.faceswap.v1 import (
    common_pb2,
    common_pb2_grpc,
    converter_pb2,
    converter_pb2_grpc,
    detector_pb2,
    detector_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    media_pb2,
    media_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.orchestrator.client import JobClient
from services.orchestrator.launcher import ServiceGroup

CALLS = {
    "media": lambda ch: media_pb2_grpc.MediaServiceStub(ch).Probe(
        media_pb2.ProbeRequest(video=common_pb2.ObjectRef(key="jobs/x/input/video.mp4")), **_kw()
    ),
    "detector": lambda ch: detector_pb2_grpc.DetectorServiceStub(ch).ExtractFaceSet(
        detector_pb2.ExtractFaceSetRequest(source_prefix="jobs/x/frames", output_prefix="jobs/x/faces_a"),
        **_kw(),
    ),
    "trainer": lambda ch: trainer_pb2_grpc.TrainerServiceStub(ch).GetTraining(
        trainer_pb2.GetTrainingRequest(model_prefix="jobs/x/model"), **_kw()
    ),
    "converter": lambda ch: converter_pb2_grpc.ConverterServiceStub(ch).ConvertFrames(
        converter_pb2.ConvertFramesRequest(frames_prefix="jobs/x/frames", output_prefix="jobs/x/out"), **_kw()
    ),
}
_token = {"value": ""}


def _kw() -> dict:
    return {"timeout": 60, "metadata": [("authorization", f"Bearer {_token['value']}")]}


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    tmp = tmp_path_factory.mktemp("stage_auth")
    env = {
        "FACESWAP_DATA_DIR": str(tmp / "data"),
        "FACESWAP_STORAGE": "local",
        "FACESWAP_THREADS": "1",
        "FACESWAP_TOKENS": ",".join(f"{c}:{t}" for c, t in TOKENS.items()),
        "FACESWAP_TOKEN": TOKENS["svc"],  # the orchestrator's identity, shared by `faceswap serve`
    }
    services = ("media", "detector", "trainer", "converter")
    with ServiceGroup(env=env, services=services, log_dir=tmp / "logs") as group:
        yield group


@pytest.mark.parametrize("service", list(CALLS))
def test_client_token_is_refused_on_stage_services(stages: ServiceGroup, service: str) -> None:
    with grpc.insecure_channel(stages.address(service)) as channel:
        _token["value"] = TOKENS["alice"]
        with pytest.raises(grpc.RpcError) as err:
            CALLS[service](channel)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
        assert "alice" in err.value.details()
        ops = common_pb2_grpc.OperationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            ops.StartOperation(
                common_pb2.StartOperationRequest(name="x", method=f"/faceswap.v1.{service}/x"), **_kw()
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        _token["value"] = TOKENS["svc"]  # the orchestrator's token gets past auth (then: no such input)
        with pytest.raises(grpc.RpcError) as err:
            CALLS[service](channel)
        assert err.value.code() not in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED,
        ), err.value.details()


def test_stage_service_enforces_the_job_api_limits(stages: ServiceGroup) -> None:
    _token["value"] = TOKENS["svc"]
    with grpc.insecure_channel(stages.address("trainer")) as channel:
        request = trainer_pb2.StartTrainingRequest(
            faces_a_prefix="jobs/x/faces_a", faces_b_prefix="jobs/x/faces_b", model_prefix="jobs/x/model"
        )
        request.options.steps = 10**12
        with pytest.raises(grpc.RpcError) as err:
            trainer_pb2_grpc.TrainerServiceStub(channel).StartTraining(request, **_kw())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "FACESWAP_MAX_TRAIN_STEPS" in err.value.details()


def test_uploads_belong_to_their_client(platform: Platform, tmp_path: Path) -> None:
    photo = tmp_path / "a.mp4"
    photo.write_bytes(b"not really a video, but an upload")
    with JobClient(platform.jobs_address, timeout=30, token=TOKENS["alice"]) as alice:
        ref = alice.upload(photo)
        assert alice.download(ref, tmp_path / "back").read_bytes() == photo.read_bytes()
    with JobClient(platform.jobs_address, timeout=30, token=TOKENS["bob"]) as bob:
        with pytest.raises(grpc.RpcError) as err:
            bob.download(ref, tmp_path / "stolen")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        spec = jobs_pb2.SwapJobSpec(video=ref, faces_b=[ref])
        with pytest.raises(grpc.RpcError) as err:
            jobs_pb2_grpc.JobServiceStub(bob.channel).SubmitSwapJob(
                jobs_pb2.SubmitSwapJobRequest(spec=spec),
                timeout=30,
                metadata=[("authorization", f"Bearer {TOKENS['bob']}")],
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
