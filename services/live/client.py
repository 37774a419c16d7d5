"""Live swap client: streams frames at their real rate over LiveService.Swap and measures it.

``stream`` sends the config, then one frame per tick of the source's frame rate (a video file is
paced like a camera; a camera paces itself), and reads the replies as they come. Latency is the
client's own clock from capture (the moment the frame is sent) to the reply's arrival, so it
covers the network, the queue, the swap and the JPEG round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import grpc
import numpy as np

from faceswap.media.camera import is_camera, open_camera
from faceswap.media.frames import read_frames
from faceswap.media.probe import probe
from services.common.auth import call_metadata
from services.common.client import make_channel
from services.common.errors import from_rpc_error
from services.common.pb.faceswap.v1 import live_pb2, live_pb2_grpc


@dataclass
class StreamStats:
    sent: int = 0
    received: int = 0
    dropped: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    swapped: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, per reply with an image
    sequences: list[int] = field(default_factory=list)  # of every reply, in arrival order
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    ready: live_pb2.LiveReady | None = None

    @property
    def seconds(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def fps(self) -> float:
        return self.received / self.seconds if self.received else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    def stage_means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in sorted(self.stage_seconds.items())}

    def summary(self) -> str:
        return (
            f"{self.received}/{self.sent} frames back in {self.seconds:.1f} s: {self.fps:.1f} frames/s, "
            f"latency p50 {self.percentile(50) * 1000:.0f} ms p95 {self.percentile(95) * 1000:.0f} ms, "
            f"dropped {len(self.dropped)}, errors {len(self.errors)}, face swapped in {self.swapped}"
        )


def config_message(
    faces_b_path: str = "",
    faces_b_prefix: str = "",
    options: live_pb2.LiveOptions | None = None,
    model: str = "",
) -> live_pb2.LiveFrame:
    return live_pb2.LiveFrame(
        config=live_pb2.LiveConfig(
            faces_b_path=faces_b_path,
            faces_b_prefix=faces_b_prefix,
            options=options or live_pb2.LiveOptions(),
            model=model,
        )
    )


def jpeg_frame(sequence: int, data: bytes, capture_time: float) -> live_pb2.LiveFrame:
    return live_pb2.LiveFrame(
        sequence=sequence,
        capture_time=capture_time,
        image=live_pb2.LiveImage(encoding=live_pb2.FRAME_ENCODING_JPEG, data=data),
    )


def raw_frame(sequence: int, image: np.ndarray, capture_time: float) -> live_pb2.LiveFrame:
    h, w = image.shape[:2]
    return live_pb2.LiveFrame(
        sequence=sequence,
        capture_time=capture_time,
        image=live_pb2.LiveImage(
            encoding=live_pb2.FRAME_ENCODING_RAW_BGR,
            data=np.ascontiguousarray(image, np.uint8).tobytes(),
            width=w,
            height=h,
        ),
    )


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def full_image(msg: live_pb2.LiveFrame, original: np.ndarray | None) -> np.ndarray | None:
    """The swapped frame of a reply: its patch pasted on a copy of the frame sent (``original``),
    its whole image, or the frame sent when the reply carries no image (no face)."""
    image = decode_reply(msg)
    if not msg.HasField("patch"):
        return original if image is None else image
    if original is None or image is None:
        return None
    p = msg.patch
    out = original.copy()
    out[p.y : p.y + p.height, p.x : p.x + p.width] = image
    return out


def decode_reply(msg: live_pb2.LiveFrame) -> np.ndarray | None:
    img = msg.image
    if not img.data:
        return None
    if img.encoding == live_pb2.FRAME_ENCODING_RAW_BGR:
        return np.frombuffer(img.data, np.uint8).reshape(img.height, img.width, 3)
    return cv2.imdecode(np.frombuffer(img.data, np.uint8), cv2.IMREAD_COLOR)


def video_source(path: str | int, loop: bool = False) -> tuple[Iterator[np.ndarray], float]:
    """Frames of a video file (the library's ffmpeg reader; ``loop``: over and over) or a camera
    (an index or /dev/videoN), and the frame rate."""
    if is_camera(path):
        return open_camera(path)
    info = probe(str(path), label=str(path))

    def frames() -> Iterator[np.ndarray]:
        while True:
            for _number, image in read_frames(str(path), info=info, label=str(path)):
                yield image
            if not loop:
                return

    return frames(), float(info.fps)


def stream(
    stub: live_pb2_grpc.LiveServiceStub,
    config: live_pb2.LiveFrame,
    frames: Iterable[bytes | np.ndarray],
    fps: float | None,
    on_reply: Callable[[live_pb2.LiveFrame], None] | None = None,
    timeout: float | None = None,
    start_after_ready: bool = True,
    raw: bool = False,
    on_frame: Callable[[live_pb2.LiveFrame, np.ndarray | None], None] | None = None,
) -> StreamStats:
    """Streams ``frames`` (JPEG bytes or BGR images) paced at ``fps`` (None: as fast as they come)
    and collects every reply. The first frame is sent once the server answered the config.
    ``raw``: BGR images go as raw pixels, not JPEG (on a loopback or a LAN the JPEG round trip
    costs more CPU than the bytes cost to copy). ``on_frame(reply, swapped frame)``: the whole swapped
    frame of every reply (a patch reply pasted on the frame sent, see ``full_image``)."""
    stats = StreamStats()
    ready = threading.Event()
    sent_at: dict[int, float] = {}
    originals: dict[int, np.ndarray] = {}  # frames sent and not answered yet (for patch replies)

    def requests() -> Iterator[live_pb2.LiveFrame]:
        yield config
        if start_after_ready:
            ready.wait(timeout or 600)
        stats.started = time.perf_counter()
        for i, frame in enumerate(frames):
            if i == 0:
                # The clock starts at the first frame, not before it: a video reader takes ~0.2 s
                # to yield it, and pacing from before then sent frames 2-8 in a burst that the
                # server's newest-wins queue dropped.
                stats.started = time.perf_counter()
            if fps:
                due = stats.started + i / fps
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if isinstance(frame, bytes) or not raw:
                data = frame if isinstance(frame, bytes) else encode_jpeg(frame)
                now = time.perf_counter()
                message = jpeg_frame(i + 1, data, now)
            else:
                now = time.perf_counter()
                message = raw_frame(i + 1, frame, now)
            sent_at[i + 1] = now
            if on_frame is not None and not isinstance(frame, bytes):
                originals[i + 1] = frame
            stats.sent += 1
            yield message

    call = stub.Swap(requests(), timeout=timeout, metadata=call_metadata())
    try:
        for msg in _replies(call):
            now = time.perf_counter()
            if msg.HasField("ready"):
                stats.ready = msg.ready
                ready.set()
                continue
            stats.dropped.extend(msg.dropped)
            stats.sequences.append(msg.sequence)
            if msg.HasField("error"):
                stats.errors.append((msg.sequence, msg.error.message))
            else:
                stats.received += 1
                stats.swapped += int(msg.face_swapped)
                stats.latencies.append(now - msg.capture_time)
                for stage, seconds in msg.stage_seconds.items():
                    stats.stage_seconds.setdefault(stage, []).append(seconds)
            stats.finished = now
            if on_reply is not None:
                on_reply(msg)
            if on_frame is not None:
                for seq in msg.dropped:
                    originals.pop(seq, None)
                original = originals.pop(msg.sequence, None)
                on_frame(msg, None if msg.HasField("error") else full_image(msg, original))
    finally:
        ready.set()
    return stats


def _replies(call: Iterator[live_pb2.LiveFrame]) -> Iterator[live_pb2.LiveFrame]:
    """The reply stream; a status that ends it comes out as the library's error (a clear message)."""
    try:
        yield from call
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None


def connect(address: str) -> tuple[grpc.Channel, live_pb2_grpc.LiveServiceStub]:
    channel = make_channel(address)
    return channel, live_pb2_grpc.LiveServiceStub(channel)
