"""gRPC DetectorService: a thin layer over faceswap/face/extract.py.

Run: ``python -m services.detector.server --port 50052``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import grpc

from faceswap.config import load_settings
from faceswap.errors import InvalidArgument
from faceswap.face.alignments import FaceRecord, FrameRecord
from faceswap.face.extract import detect_stored_frames, extract_face_set
from faceswap.options.detect import DetectOptions
from faceswap.storage import ObjectInfo, ObjectStore, open_store
from services.common.operations import report_progress
from services.common.pb.faceswap.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from services.common.server import ServiceSpec, serve
from services.detector import metrics  # noqa: F401  (adds the Prometheus sink for the library's counts)

SERVICE_NAME = detector_pb2.DESCRIPTOR.services_by_name["DetectorService"].full_name

# ErrorStatus.code per frame status: why a frame carries no faces.
_STATUS_CODES = {
    "no_face": grpc.StatusCode.NOT_FOUND,
    "filtered": grpc.StatusCode.NOT_FOUND,
    "unreadable": grpc.StatusCode.INVALID_ARGUMENT,
}


def _ref(store: ObjectStore, info: ObjectInfo) -> common_pb2.ObjectRef:
    return common_pb2.ObjectRef(bucket=store.bucket, key=info.key, size_bytes=info.size, sha256=info.sha256)


def _face_to_proto(face: FaceRecord, store: ObjectStore, written: dict[str, ObjectInfo]) -> detector_pb2.Face:
    left, top, right, bottom = face.box
    msg = detector_pb2.Face(
        box=detector_pb2.Box(left=left, top=top, right=right, bottom=bottom),
        score=face.score,
        landmarks=[detector_pb2.Point(x=x, y=y) for x, y in face.landmarks],
        matrix=[v for row in face.matrix for v in row],
        identity_distance=face.identity_distance,
        reason=face.reason,
        source=face.source,
        rotation=face.rotation,
        detector=face.detector,
    )
    if face.face_key:
        msg.aligned.CopyFrom(_ref(store, written.get(face.face_key) or store.stat(face.face_key)))
    return msg


def frame_to_proto(
    record: FrameRecord, store: ObjectStore, written: dict[str, ObjectInfo] | None = None
) -> detector_pb2.FrameFaces:
    written = written or {}
    msg = detector_pb2.FrameFaces(
        frame_index=record.index,
        key=record.key,
        faces=[_face_to_proto(f, store, written) for f in record.faces],
        rejected=[_face_to_proto(f, store, written) for f in record.rejected],
        width=record.width,
        height=record.height,
        status=record.status,
    )
    if record.status != "ok":
        code = _STATUS_CODES.get(record.status, grpc.StatusCode.UNKNOWN)
        msg.error.CopyFrom(
            common_pb2.ErrorStatus(code=code.value[0], message=record.reason, where=record.key)
        )
    return msg


def _frames(msg_frames: list[detector_pb2.FrameKey]) -> list[tuple[int, str]]:
    return [(f.frame_index, f.key) for f in msg_frames]


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def DetectFaces(
        self, request: detector_pb2.DetectFacesRequest, context: grpc.ServicerContext
    ) -> detector_pb2.DetectFacesResponse:
        options = DetectOptions.from_proto(request.options)
        written: dict[str, ObjectInfo] = {}
        records = list(detect_stored_frames(self.store, _frames(request.frames), options, written))
        return detector_pb2.DetectFacesResponse(
            frames=[frame_to_proto(r, self.store, written) for r in records]
        )

    def StreamDetectFaces(
        self, request_iterator: Iterator[detector_pb2.StreamDetectFacesRequest], context: grpc.ServicerContext
    ) -> Iterator[detector_pb2.StreamDetectFacesResponse]:
        options: DetectOptions | None = None
        for request in request_iterator:
            if options is None:
                options = DetectOptions.from_proto(request.options)
            if not request.frames:
                continue
            # One message at a time: a client that waits for replies before sending more never stalls.
            written: dict[str, ObjectInfo] = {}
            for record in detect_stored_frames(self.store, _frames(request.frames), options, written):
                yield detector_pb2.StreamDetectFacesResponse(
                    frame=frame_to_proto(record, self.store, written)
                )

    def ExtractFaceSet(
        self, request: detector_pb2.ExtractFaceSetRequest, context: grpc.ServicerContext
    ) -> detector_pb2.ExtractFaceSetResponse:
        if not request.output_prefix:
            raise InvalidArgument("output_prefix is required", field="output_prefix")
        options = DetectOptions.from_proto(request.options)
        options.save_faces = True  # a face set is its faces
        rng = request.range
        summary = extract_face_set(
            self.store,
            request.source_prefix,
            request.output_prefix,
            options,
            start=int(rng.start),
            end=int(rng.end) or None,
            step=int(rng.step) or 1,
            on_progress=lambda n, _r: report_progress(n),  # frames done, while the operation runs
        )
        info = self.store.stat(summary.alignments_key)
        return detector_pb2.ExtractFaceSetResponse(
            frames_total=summary.frames_total,
            faces_total=summary.faces_total,
            frames_without_face=summary.frames_without_face,
            frames_unreadable=summary.frames_unreadable,
            alignments=_ref(self.store, info),
            frames_filtered=summary.frames_filtered,
            faces_rejected=summary.faces_rejected,
            seconds=summary.seconds,
            faces_tracked=summary.faces_tracked,
            faces_interpolated=summary.faces_interpolated,
            faces_rotated=summary.faces_rotated,
        )


def build_spec(store: ObjectStore | None = None) -> ServiceSpec:
    store = store or open_store()
    servicer = DetectorServicer(store)

    def register(server: grpc.Server) -> None:
        detector_pb2_grpc.add_DetectorServiceServicer_to_server(servicer, server)

    return ServiceSpec(name="detector", register=register, service_names=[SERVICE_NAME])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faceswap detector service")
    default_port = int(load_settings().addresses.get("detector", "127.0.0.1:50052").rsplit(":", 1)[1])
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args(argv)
    serve(build_spec(), args.port)


if __name__ == "__main__":
    main()
