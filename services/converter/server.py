"""ConverterService gRPC servicer: a thin translation layer over services.converter.swap."""

from __future__ import annotations

import argparse
import threading

import grpc

from faceswap.errors import InvalidArgument
from faceswap.options.convert import ConvertOptions
from faceswap.storage import ObjectStore, open_store
from services.common.pb.faceswap.v1 import common_pb2, converter_pb2, converter_pb2_grpc
from services.common.server import ServiceSpec, serve
from services.converter.swap import ConvertSummary, convert_frames

SERVICE_NAME = converter_pb2.DESCRIPTOR.services_by_name["ConverterService"].full_name
DEFAULT_PORT = 50054


def summary_to_pb(summary: ConvertSummary) -> converter_pb2.ConvertFramesResponse:
    return converter_pb2.ConvertFramesResponse(
        frames_total=summary.frames_total,
        frames_converted=summary.frames_converted,
        faces_swapped=summary.faces_swapped,
        frame_errors=[
            common_pb2.ErrorStatus(
                code=e.code.value[0], message=e.message, where=f"frame {e.index} ({e.name})"
            )
            for e in summary.frame_errors
        ],
        frames_per_second=summary.frames_per_second,
        stage_seconds=summary.stage_seconds,
        wall_seconds=summary.wall_seconds,
    )


class ConverterServicer(converter_pb2_grpc.ConverterServiceServicer):
    def __init__(self, store: ObjectStore, max_concurrent: int = 1) -> None:
        self.store = store
        # One conversion at a time per replica: each already uses every core (or the GPU);
        # further calls wait their turn rather than thrash. Scale out with replicas / ranges.
        self._slots = threading.Semaphore(max_concurrent)

    def ConvertFrames(
        self, request: converter_pb2.ConvertFramesRequest, context: grpc.ServicerContext
    ) -> converter_pb2.ConvertFramesResponse:
        if not request.frames_prefix:
            raise InvalidArgument("a frames prefix is required", field="frames_prefix")
        if not request.output_prefix:
            raise InvalidArgument("an output prefix is required", field="output_prefix")
        options = ConvertOptions.from_proto(request.options if request.HasField("options") else None)
        if options.needs_model and not request.model_prefix:
            raise InvalidArgument(
                f"a model prefix is required for method {options.method!r}", field="model_prefix"
            )
        if options.needs_faces_b and not request.faces_b.key:
            raise InvalidArgument(
                f"method {options.method!r} renders B from B's own frames: B's face set "
                "(alignments key) is required",
                field="faces_b.key",
            )
        if not request.alignments.key:
            raise InvalidArgument("an alignments object key is required", field="alignments.key")
        if request.alignments.bucket and request.alignments.bucket != self.store.bucket:
            raise InvalidArgument(
                f"bucket {request.alignments.bucket!r} is not served here (this service uses "
                f"{self.store.bucket!r})",
                field="alignments.bucket",
            )
        rng = request.range
        with self._slots:
            summary = convert_frames(
                self.store,
                request.frames_prefix,
                request.alignments.key,
                request.model_prefix,
                request.output_prefix,
                options,
                start=int(rng.start),
                end=int(rng.end) if rng.end else None,  # 0 = to the last frame
                step=int(rng.step) if rng.step else 1,
                faces_b=request.faces_b.key,
            )
        return summary_to_pb(summary)


def build_spec(store: ObjectStore | None = None) -> ServiceSpec:
    servicer = ConverterServicer(store or open_store())

    def register(server: grpc.Server) -> None:
        converter_pb2_grpc.add_ConverterServiceServicer_to_server(servicer, server)

    return ServiceSpec(name="converter", register=register, service_names=[SERVICE_NAME])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faceswap converter service")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(build_spec(), args.port)


if __name__ == "__main__":
    main()
