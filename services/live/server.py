"""LiveService gRPC servicer: a thin translation layer over services.live.core.

Threads per stream: the handler thread (prepares frames in order and writes the replies), one
reader (request messages -> the bounded queue, so a fast client never blocks and the newest frame
wins), ``workers`` render threads, and a watchdog that ends the stream when a reply cannot be
written for ``stall_timeout_s`` (a client that stopped reading) or the client went away.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import threading
import time
from collections.abc import Iterator

import cv2
import grpc
import torch

from faceswap.errors import InvalidArgument, ResourceExhausted
from faceswap.model.inference import TrainedModel, load_trained_model
from faceswap.storage import ObjectStore, open_store
from services.common.pb.faceswap.v1 import common_pb2, live_pb2, live_pb2_grpc
from services.common.server import ServiceSpec, serve
from services.live import compose_processes, metrics
from services.live.bank import FaceBank, bank_from_path, bank_from_store
from services.live.core import JPEG, RAW, InFrame, LivePipeline, LiveSession, LiveSettings, OutFrame

log = logging.getLogger("faceswap.live")
SERVICE_NAME = live_pb2.DESCRIPTOR.services_by_name["LiveService"].full_name
DEFAULT_PORT = 50056
_ENCODINGS = {
    live_pb2.FRAME_ENCODING_UNSPECIFIED: JPEG,
    live_pb2.FRAME_ENCODING_JPEG: JPEG,
    live_pb2.FRAME_ENCODING_RAW_BGR: RAW,
}


def settings_from_pb(options: live_pb2.LiveOptions) -> LiveSettings:
    d = LiveSettings.__dataclass_fields__
    pick = {
        name: getattr(options, name) or d[name].default
        for name in (
            "detect_max_side",
            "detect_interval",
            "queue_size",
            "workers",
            "jpeg_quality",
            "switch_margin",
            "hold_frames",
            "crossfade_frames",
            "smooth_min_cutoff",
            "smooth_beta",
            "max_faces_b",
            "stall_timeout_s",
        )
    }
    return LiveSettings(
        **pick,
        output_encoding=_ENCODINGS.get(options.output_encoding, JPEG),
        smoothing=not options.smoothing_disabled,
        reply_patch=options.reply_patch,
    )


def frame_from_pb(msg: live_pb2.LiveFrame) -> InFrame:
    img = msg.image
    return InFrame(
        sequence=int(msg.sequence),
        capture_time=float(msg.capture_time),
        encoding=_ENCODINGS.get(img.encoding, JPEG),
        data=img.data,
        width=int(img.width),
        height=int(img.height),
    )


def frame_to_pb(out: OutFrame) -> live_pb2.LiveFrame:
    msg = live_pb2.LiveFrame(
        sequence=out.sequence,
        capture_time=out.capture_time,
        stage_seconds=out.stage_seconds,
        dropped=out.dropped,
        face_swapped=out.face_swapped,
    )
    if out.error is not None:
        code, message = out.error
        msg.error.CopyFrom(
            common_pb2.ErrorStatus(code=code.value[0], message=message, where=f"frame {out.sequence}")
        )
    elif out.data:
        encoding = live_pb2.FRAME_ENCODING_RAW_BGR if out.encoding == RAW else live_pb2.FRAME_ENCODING_JPEG
        msg.image.CopyFrom(
            live_pb2.LiveImage(encoding=encoding, data=out.data, width=out.width, height=out.height)
        )
        if out.patch is not None:
            x, y, w, h = out.patch
            msg.patch.CopyFrom(live_pb2.PatchBox(x=x, y=y, width=w, height=h))
    return msg


class LiveServicer(live_pb2_grpc.LiveServiceServicer):
    def __init__(self, store: ObjectStore | None = None, max_streams: int | None = None) -> None:
        self._store = store
        limit = max_streams or int(os.environ.get("FACESWAP_LIVE_MAX_STREAMS", "4"))
        self._slots = threading.BoundedSemaphore(max(1, limit))
        self.max_streams = limit
        self._models: dict[str, TrainedModel] = {}
        self._models_lock = threading.Lock()
        # Frames render in parallel already (LiveSettings.workers, one per core): OpenCV's own
        # pool inside each small resize and blur only oversubscribed the cores (720p on two
        # cores: 33-38 ms of CPU a frame with it, 26-27 without, frames/s unchanged at 30).
        cv2.setNumThreads(1)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = open_store()
        return self._store

    def load_bank(self, config: live_pb2.LiveConfig, settings: LiveSettings) -> tuple[FaceBank, bool]:
        if bool(config.faces_b_path) == bool(config.faces_b_prefix):
            raise InvalidArgument(
                "name B's face set by exactly one of faces_b_path, faces_b_prefix", field="config"
            )
        if config.faces_b_path:
            return bank_from_path(config.faces_b_path, settings.max_faces_b)
        return bank_from_store(self.store, config.faces_b_prefix, settings.max_faces_b)

    def load_model(self, ref: str) -> TrainedModel | None:
        """The trained model of B a stream names (kept for the next streams), or None."""
        if not ref:
            return None
        with self._models_lock:
            if ref not in self._models:
                store = None if ref.startswith("builtin:") else self.store
                self._models[ref] = load_trained_model(store, ref, field="config.model")
                # On a CPU, frames are decoded in the render workers at once: one torch thread
                # each, or workers x threads oversubscribe the cores.
                torch.set_num_threads(1)
            return self._models[ref]

    def Swap(
        self, request_iterator: Iterator[live_pb2.LiveFrame], context: grpc.ServicerContext
    ) -> Iterator[live_pb2.LiveFrame]:
        try:
            first = next(request_iterator)
        except StopIteration:
            return
        if not first.HasField("config"):
            raise InvalidArgument("the first message must carry config (B's face set)", field="config")
        settings = settings_from_pb(first.config.options)
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"{self.max_streams} live streams are open on this server (FACESWAP_LIVE_MAX_STREAMS)"
            )
        metrics.STREAMS.inc()
        reason = "completed"
        pipeline: LivePipeline | None = None
        stalled = threading.Event()
        try:
            bank, cached = self.load_bank(first.config, settings)
            if not cached:
                metrics.BANK_SECONDS.observe(bank.seconds)
            model = self.load_model(first.config.model)
            pipeline = LivePipeline(LiveSession(bank, settings, model, compose_processes.shared()))
            _settle_heap()
            context.add_callback(pipeline.stop)
            yield live_pb2.LiveFrame(
                ready=live_pb2.LiveReady(
                    faces_b=len(bank),
                    bank_seconds=0.0 if cached else bank.seconds,
                    bank_cached=cached,
                    workers=settings.workers,
                    queue_size=settings.queue_size,
                )
            )
            reader = threading.Thread(
                target=self._read, args=(request_iterator, pipeline), name="live-reader", daemon=True
            )
            reader.start()
            writing = [0.0]  # since when a reply is being written (0 = not writing)
            watchdog = threading.Thread(
                target=self._watch,
                args=(context, pipeline, writing, settings.stall_timeout_s, stalled),
                name="live-watchdog",
                daemon=True,
            )
            watchdog.start()
            for out in pipeline.results():
                writing[0] = time.monotonic()
                yield frame_to_pb(out)
                writing[0] = 0.0
            if stalled.is_set():
                reason = "stalled"
            elif not context.is_active():
                reason = "cancelled"
        except GeneratorExit:
            reason = "stalled" if stalled.is_set() else "cancelled"
            raise
        except Exception:
            reason = "error"
            raise
        finally:
            if pipeline is not None:
                pipeline.stop()
            self._slots.release()
            metrics.STREAMS.dec()
            metrics.STREAMS_ENDED.labels(reason).inc()

    @staticmethod
    def _read(request_iterator: Iterator[live_pb2.LiveFrame], pipeline: LivePipeline) -> None:
        try:
            for msg in request_iterator:
                if pipeline._stopped.is_set():
                    break
                pipeline.put(frame_from_pb(msg))
        except grpc.RpcError:
            pipeline.stop()  # cancelled or disconnected
        except Exception:
            log.exception("live reader failed")
            pipeline.stop()
        finally:
            pipeline.close()

    @staticmethod
    def _watch(
        context: grpc.ServicerContext,
        pipeline: LivePipeline,
        writing: list[float],
        timeout: float,
        stalled: threading.Event,
    ) -> None:
        while not pipeline._stopped.wait(min(0.5, timeout / 4)):
            if not context.is_active():
                pipeline.stop()
                return
            since = writing[0]
            if since and time.monotonic() - since > timeout:
                log.warning("live stream stalled: a reply could not be written for %.1f s", timeout)
                stalled.set()
                pipeline.stop()
                context.cancel()
                return


def _settle_heap() -> None:
    """Collects, then freezes what is alive (models, banks, modules) out of the garbage collector's
    sight, before a stream's ready reply. Its full collections scan every object with the GIL held:
    one of 85 ms in a 720p stream (187,000 objects) dropped frames; frozen, the stream ran none."""
    gc.collect()
    gc.freeze()


def build_spec(store: ObjectStore | None = None) -> ServiceSpec:
    servicer = LiveServicer(store)

    def register(server: grpc.Server) -> None:
        live_pb2_grpc.add_LiveServiceServicer_to_server(servicer, server)

    # Public: a camera or call client is an end user (any known token), not an internal stage caller.
    return ServiceSpec(name="live", register=register, service_names=[SERVICE_NAME], public=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faceswap live service")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(build_spec(), args.port)


if __name__ == "__main__":
    main()
