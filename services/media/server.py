"""MediaService gRPC servicer: a thin translation layer over faceswap.media.store."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from fractions import Fraction

import grpc

from faceswap.errors import InvalidArgument
from faceswap.media import store as core
from faceswap.storage import ObjectStore, open_store
from services.common.operations import report_progress
from services.common.pb.faceswap.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.common.server import ServiceSpec, serve
from services.media import metrics  # noqa: F401  (adds the Prometheus sink for the library's counts)

SERVICE_NAME = media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name
DEFAULT_PORT = 50051


def info_to_pb(info: core.VideoInfo) -> media_pb2.VideoInfo:
    return media_pb2.VideoInfo(
        duration_seconds=info.duration,
        fps=common_pb2.Rational(num=info.fps.numerator, den=info.fps.denominator),
        frame_count=info.frame_count,
        width=info.width,
        height=info.height,
        rotation=info.rotation,
        video_codec=info.video_codec,
        audio_codec=info.audio_codec,
        has_audio=info.has_audio,
        pixel_format=info.pixel_format,
        container=info.container,
        audio_duration_seconds=info.audio_duration,
    )


def _progress_and_stop(context: grpc.ServicerContext) -> Callable[[], bool]:
    """The per-frame poll: reports progress when run as an operation, says whether to stop."""
    frames = itertools.count(0)

    def poll() -> bool:
        report_progress(next(frames))
        return not context.is_active()

    return poll


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def _key(self, ref: common_pb2.ObjectRef, field: str) -> str:
        if not ref.key:
            raise InvalidArgument("an object key is required", field=f"{field}.key")
        if ref.bucket and ref.bucket != self.store.bucket:
            raise InvalidArgument(
                f"bucket {ref.bucket!r} is not served here (this service uses {self.store.bucket!r})",
                field=f"{field}.bucket",
            )
        return ref.key

    def _ref(self, key: str) -> common_pb2.ObjectRef:
        stat = self.store.stat(key)
        return common_pb2.ObjectRef(
            bucket=self.store.bucket, key=key, size_bytes=stat.size, sha256=stat.sha256
        )

    def Probe(
        self, request: media_pb2.ProbeRequest, context: grpc.ServicerContext
    ) -> media_pb2.ProbeResponse:
        key = self._key(request.video, "video")
        with core.local_copy(self.store, key, "video") as path:
            info = core.probe(path, label=key)
        return media_pb2.ProbeResponse(info=info_to_pb(info))

    def ExtractFrames(
        self, request: media_pb2.ExtractFramesRequest, context: grpc.ServicerContext
    ) -> media_pb2.ExtractFramesResponse:
        key = self._key(request.video, "video")
        if not request.output_prefix:
            raise InvalidArgument("an output prefix is required", field="output_prefix")
        rng = request.range
        result = core.extract_frames(
            self.store,
            key,
            request.output_prefix,
            image_format=request.image_format or "png",
            start=int(rng.start),
            end=int(rng.end) if rng.end else None,  # 0 = to the last frame
            step=int(rng.step) if rng.step else 1,
            quality=request.quality or 95,
            should_stop=_progress_and_stop(context),  # client cancelled or deadline passed
        )
        return media_pb2.ExtractFramesResponse(
            frame_count=result.frame_count, index=self._ref(result.index_key), info=info_to_pb(result.info)
        )

    def EncodeVideo(
        self, request: media_pb2.EncodeVideoRequest, context: grpc.ServicerContext
    ) -> media_pb2.EncodeVideoResponse:
        output = self._key(request.output, "output")
        audio = self._key(request.audio_from, "audio_from") if request.audio_from.key else None
        fps: Fraction | None = None
        if request.HasField("fps") and (request.fps.num or request.fps.den):
            if request.fps.num <= 0 or request.fps.den <= 0:
                raise InvalidArgument(f"{request.fps.num}/{request.fps.den} is not a frame rate", field="fps")
            fps = Fraction(request.fps.num, request.fps.den)
        result = core.encode_video(
            self.store,
            request.frames_prefix,
            output,
            audio_from_key=audio,
            fps=fps,
            codec=request.codec or "libx264",
            crf=0 if request.lossless else (request.crf or 18),
            preset=request.preset or "medium",
            pix_fmt=request.pixel_format or "yuv420p",
            should_stop=_progress_and_stop(context),
        )
        return media_pb2.EncodeVideoResponse(
            output=self._ref(result.output_key), frame_count=result.frame_count, info=info_to_pb(result.info)
        )


def build_spec(store: ObjectStore | None = None) -> ServiceSpec:
    servicer = MediaServicer(store or open_store())
    return ServiceSpec(
        name="media",
        register=lambda server: media_pb2_grpc.add_MediaServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faceswap media service (gRPC)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(build_spec(), args.port)


if __name__ == "__main__":
    main()
