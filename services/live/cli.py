"""`faceswap live`: stream a video file (at its real frame rate) or a camera through LiveService.Swap."""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.media.camera import is_camera
from faceswap.media.frames import VideoWriter
from services.common.pb.faceswap.v1 import live_pb2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live",
        help="swap a video or a camera live, frame by frame, over the live stream API",
        description="Streams INPUT (a video file, paced at its frame rate, or a camera: 0 or "
        "/dev/video0) through LiveService.Swap and writes (--output) or shows (--preview) the swapped "
        "frames; prints the achieved frames/s, latency percentiles and dropped frames. Without --addr "
        "a live server is started in this process on a loopback port.",
    )
    p.add_argument(
        "--faces-b", help="B's face set: a video or photos folder (a path on the server with --addr)"
    )
    p.add_argument("--faces-b-prefix", help="B's face set as stored objects under this prefix (instead)")
    p.add_argument(
        "--model",
        default="",
        help="a trained model of B for the hybrid method (builtin:NAME, a stored model prefix or "
        "checkpoint key): the decoder's face where B's real mouth or eyes cannot follow A's "
        "(~30 ms more CPU a frame on two cores for the 64 px demo model); default: retrieval only",
    )
    p.add_argument("--input", "-i", required=True, help="video file or camera (0, /dev/video0)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", help="write the swapped frames to this video (.mp4)")
    out.add_argument("--preview", action="store_true", help="show the swapped frames in a window")
    p.add_argument("--addr", help="a running live service (default: one in this process)")
    p.add_argument("--frames", type=int, default=0, help="stop after this many frames (0 = all)")
    p.add_argument("--max-faces-b", type=int, default=0, help="faces of B in the bank (default 150)")
    p.add_argument("--workers", type=int, default=0, help="frames composed at once (default: cores)")
    p.add_argument("--queue-size", type=int, default=0, help="frames queued before drops (default 2)")
    p.add_argument(
        "--encoding",
        choices=("jpeg", "raw"),
        default="jpeg",
        help="frames on the wire both ways (default jpeg: even on a loopback a 720p JPEG round trip "
        "costs less CPU than gRPC spends moving 2.7 MB raw frames)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace, raw: bool) -> live_pb2.LiveOptions:
    return live_pb2.LiveOptions(
        max_faces_b=args.max_faces_b,
        workers=args.workers,
        queue_size=args.queue_size,
        output_encoding=live_pb2.FRAME_ENCODING_RAW_BGR if raw else live_pb2.FRAME_ENCODING_JPEG,
        reply_patch=True,  # the client has the frame: only the face comes back
    )


def run(args: argparse.Namespace) -> int:
    from services.live import client as lc

    if bool(args.faces_b) == bool(args.faces_b_prefix):
        raise InvalidArgument("give one of --faces-b, --faces-b-prefix", field="faces_b")
    faces_b = args.faces_b
    server = None
    if args.addr:
        address = args.addr
    else:
        from services.common.server import start_server
        from services.live.server import build_spec

        if faces_b:
            faces_b = str(Path(faces_b).resolve())
            if not Path(faces_b).exists():
                raise InvalidArgument(f"{args.faces_b} does not exist", field="faces_b")
            os.environ["FACESWAP_LIVE_FACES_DIRS"] = str(Path(faces_b).parent)
        server = start_server(build_spec(), port=0, host="127.0.0.1", metrics_port=0)
        address = f"127.0.0.1:{server.port}"
    frames, fps = lc.video_source(args.input)
    camera = is_camera(args.input)
    if args.frames:
        frames = itertools.islice(frames, args.frames)
    recorder = Recorder(args.output, fps, None if camera else args.input) if args.output else None

    def on_frame(msg: live_pb2.LiveFrame, image: np.ndarray | None) -> None:
        if msg.HasField("error"):
            print(f"frame {msg.sequence}: {msg.error.message}", file=sys.stderr)
        if recorder is not None:
            recorder.put(image, len(msg.dropped))
        elif args.preview and image is not None:
            cv2.imshow("faceswap live", image)
            cv2.waitKey(1)

    channel, stub = lc.connect(address)
    raw = args.encoding == "raw"
    try:
        config = lc.config_message(faces_b or "", args.faces_b_prefix or "", _options(args, raw), args.model)
        try:
            stats = lc.stream(
                stub,
                config,
                frames,
                None if camera else fps,
                raw=raw,
                on_frame=on_frame if (args.output or args.preview) else None,
            )
        except BaseException:
            if recorder is not None:
                recorder.abort()  # nothing half-written is left behind
            raise
        if recorder is not None:
            recorder.close()
    finally:
        channel.close()
        if server is not None:
            server.stop(1)
    stages = stats.stage_means()
    if args.json:
        import json

        print(
            json.dumps(
                {
                    "frames_sent": stats.sent,
                    "frames_back": stats.received,
                    "fps": stats.fps,
                    "latency_p50_s": stats.percentile(50),
                    "latency_p95_s": stats.percentile(95),
                    "dropped": len(stats.dropped),
                    "errors": len(stats.errors),
                    "encoding": "raw" if raw else "jpeg",
                    "stage_mean_s": stages,
                }
            )
        )
    else:
        if stats.ready is not None:
            cached = "cached" if stats.ready.bank_cached else f"built in {stats.ready.bank_seconds:.1f} s"
            print(f"B's face bank: {stats.ready.faces_b} faces ({cached})")
        print(f"source {fps:.2f} frames/s, {'raw' if raw else 'JPEG'} frames; {stats.summary()}")
        print("server stages (mean ms): " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in stages.items()))
        if args.output:
            print(f"wrote {args.output}")
    return 0 if stats.received and not stats.errors else 1


class Recorder:
    """Writes the swapped frames to a video in a thread of its own (a slow disk or encoder never
    holds up the replies), with the input's audio. Frames dropped under load (and failed ones) are
    filled with the last image, so the video keeps the source's timing and its audio sync."""

    def __init__(self, path: str, fps: float, audio_from: str | None, depth: int = 32) -> None:
        self.path, self.fps, self.audio_from = path, fps, audio_from
        self.queue: queue.Queue[tuple[np.ndarray | None, int] | None] = queue.Queue(depth)
        self.writer: VideoWriter | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="live-recorder", daemon=True)
        self.thread.start()

    def put(self, image: np.ndarray | None, dropped_before: int) -> None:
        if self.error is None:
            self.queue.put((image, dropped_before))

    def _run(self) -> None:
        last: np.ndarray | None = None
        while (item := self.queue.get()) is not None:
            image, repeat = item
            if self.error is not None or (image is None and last is None):
                continue
            try:
                if self.writer is None:
                    h, w = (image if image is not None else last).shape[:2]
                    # ffmpeg in its own process. MPEG-4 part 2 at q 3: ~8 ms of CPU per 720p frame
                    # where libx264 ultrafast takes ~14 (the swap shares these cores).
                    self.writer = VideoWriter(
                        self.path, self.fps, w, h, codec="mpeg4", crf=None, preset=None,
                        audio_from=self.audio_from, extra_args=["-q:v", "3"],
                    ).open()  # fmt: skip
                for _ in range(repeat):
                    self.writer.write(last if last is not None else image)
                last = image if image is not None else last
                self.writer.write(last)
            except BaseException as exc:  # raised again by close()
                self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            if self.writer is not None:
                self.writer.abort()
            raise self.error
        if self.writer is not None:
            self.writer.close()

    def abort(self) -> None:
        self.error = self.error or RuntimeError("aborted")
        self.queue.put(None)
        self.thread.join(timeout=30)
        if self.writer is not None:
            self.writer.abort()


def contact_sheet(inputs: list[np.ndarray], outputs: list[np.ndarray], width: int = 1200) -> np.ndarray:
    """Rows of input | swapped, scaled to ``width``."""
    rows = [np.hstack([a, b]) for a, b in zip(inputs, outputs, strict=True)]
    sheet = np.vstack(rows)
    return cv2.resize(
        sheet, (width, round(sheet.shape[0] * width / sheet.shape[1])), interpolation=cv2.INTER_AREA
    )
