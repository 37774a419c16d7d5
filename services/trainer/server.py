"""TrainerService gRPC servicer: a thin translation layer over services.trainer.runs / loop."""

from __future__ import annotations

import argparse

import grpc

from faceswap.errors import InvalidArgument
from faceswap.options.train import TrainOptions
from faceswap.storage import ObjectStore, open_store
from services.common.pb.faceswap.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from services.common.server import ServiceSpec, serve
from services.trainer.runs import Run, TrainingManager

SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name
DEFAULT_PORT = 50053

_STATES = {
    "running": trainer_pb2.TRAINING_STATE_RUNNING,
    "stopping": trainer_pb2.TRAINING_STATE_STOPPING,
    "succeeded": trainer_pb2.TRAINING_STATE_SUCCEEDED,
    "stopped": trainer_pb2.TRAINING_STATE_STOPPED,
    "failed": trainer_pb2.TRAINING_STATE_FAILED,
}


def options_from_pb(msg: trainer_pb2.TrainOptions, bucket: str) -> TrainOptions:
    return TrainOptions.from_proto(msg, bucket)


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.manager = TrainingManager(store)

    def _ref(self, key: str) -> common_pb2.ObjectRef:
        if not key or not self.store.exists(key):
            return common_pb2.ObjectRef()
        stat = self.store.stat(key)
        return common_pb2.ObjectRef(
            bucket=self.store.bucket, key=key, size_bytes=stat.size, sha256=stat.sha256
        )

    def status(self, run: Run) -> trainer_pb2.TrainingStatus:
        p = run.progress
        msg = trainer_pb2.TrainingStatus(
            model_prefix=run.model_prefix,
            state=_STATES.get(p.state, trainer_pb2.TRAINING_STATE_UNSPECIFIED),
            step=p.step,
            total_steps=p.total_steps,
            loss_a=p.loss_a,
            loss_b=p.loss_b,
            samples_per_second=p.samples_per_second,
            eta_seconds=p.eta_seconds,
            checkpoint=self._ref(p.checkpoint_key),
            preview=self._ref(p.preview_key),
            message=p.message,
            warm_start=p.warm_start,
            data_wait_share=p.data_wait_share,
            elapsed_seconds=p.elapsed_seconds,
            preset=p.preset or run.preset,
        )
        if run.error is not None:
            msg.error.CopyFrom(
                common_pb2.ErrorStatus(code=run.error.code.value[0], message=run.error.message, where="train")
            )
        return msg

    @staticmethod
    def _prefix(value: str, field: str = "model_prefix") -> str:
        if not value:
            raise InvalidArgument("a model prefix is required", field=field)
        return value

    def StartTraining(
        self, request: trainer_pb2.StartTrainingRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.StartTrainingResponse:
        prefix = self._prefix(request.model_prefix)
        if not request.faces_a_prefix:
            raise InvalidArgument("a face set prefix is required", field="faces_a_prefix")
        if not request.faces_b_prefix:
            raise InvalidArgument("a face set prefix is required", field="faces_b_prefix")
        options = options_from_pb(request.options, self.store.bucket)
        run = self.manager.start(request.faces_a_prefix, request.faces_b_prefix, prefix, options)
        return trainer_pb2.StartTrainingResponse(status=self.status(run))

    def GetTraining(
        self, request: trainer_pb2.GetTrainingRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.GetTrainingResponse:
        run = self.manager.get(self._prefix(request.model_prefix))
        return trainer_pb2.GetTrainingResponse(status=self.status(run))

    def WatchTraining(self, request: trainer_pb2.WatchTrainingRequest, context: grpc.ServicerContext):
        prefix = self._prefix(request.model_prefix)
        for run in self.manager.watch(prefix):
            if not context.is_active():
                return
            yield trainer_pb2.WatchTrainingResponse(status=self.status(run))

    def StopTraining(
        self, request: trainer_pb2.StopTrainingRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.StopTrainingResponse:
        run = self.manager.stop(self._prefix(request.model_prefix))
        return trainer_pb2.StopTrainingResponse(status=self.status(run))


def build_spec(store: ObjectStore | None = None) -> ServiceSpec:
    servicer = TrainerServicer(store or open_store())
    return ServiceSpec(
        name="trainer",
        register=lambda server: trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        # SIGTERM: running trainings save a checkpoint and stop before the server goes.
        on_stop=servicer.manager.stop_all,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faceswap trainer gRPC service")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(build_spec(), args.port)


if __name__ == "__main__":
    main()
