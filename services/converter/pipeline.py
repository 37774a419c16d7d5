"""The conversion engine: read -> crop -> batched inference -> paste -> encode -> write.

Stages overlap (threads with bounded queues, so memory stays bounded on long videos):

    reader thread ──q_in──> inference (caller's thread) ──q_out──> committer thread
          │ submit                     │ submit                        ▲ in frame order
          └──> decode/crop (pool)      └──> paste/encode (pool) ───────┘

- The reader fetches frames in order and hands decoding to the pool; only frames with a face to
  swap are decoded, the others keep their encoded bytes and are written back as they are.
- Inference gathers faces from several frames into one batch (``options.batch_size``).
- Decoding, pasting (warp back, mask, colour, blend) and encoding run in one thread pool sized to
  the cores: OpenCV, numpy and torch release the GIL, so they overlap with inference.
- The committer writes results in frame order (a video writer needs order), reports progress
  and stops everything on a fatal error.

A frame that fails (unreadable, wrong size, a paste error) is recorded and passed through; only
errors of the output itself (the store or the writer failing) end the run.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import numpy as np
import torch

from faceswap.face.images import decode_image
from faceswap.model.inference import decode_faces
from faceswap.options.convert import ConvertOptions
from services.converter.compose import FacePlan, crop_face, paste_face

log = logging.getLogger("faceswap.converter")

_DONE = object()


@dataclass
class FrameTask:
    """One frame moving through the pipeline."""

    index: int
    name: str  # the frame's key / file name; the output keeps it
    faces: list[FacePlan] = field(default_factory=list)
    width: int = 0  # expected size from the alignments (0: not checked)
    height: int = 0
    raw: bytes | None = None  # encoded bytes as read (written back as they are when no face)
    image: np.ndarray | None = None  # decoded BGR frame (only when needed)
    crops: list[np.ndarray] = field(default_factory=list)
    outputs: list[tuple[np.ndarray, np.ndarray | None]] = field(default_factory=list)
    error: tuple[grpc.StatusCode, str] | None = None
    swapped: int = 0


@dataclass
class FrameError:
    index: int
    name: str
    code: grpc.StatusCode
    message: str


class Sink(Protocol):
    def encode(self, task: FrameTask, image: np.ndarray | None) -> Any:
        """Runs in the pool: turns the result (None = pass through) into what ``write`` takes."""

    def write(self, task: FrameTask, payload: Any) -> None:
        """Runs in the committer thread, in frame order."""


@dataclass
class RunStats:
    frames: int = 0
    frames_swapped: int = 0
    faces_swapped: int = 0
    batches: int = 0
    errors: list[FrameError] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    wall_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_time(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.stage_seconds[stage] += seconds


class _Timer:
    def __init__(self, stats: RunStats, stage: str) -> None:
        self.stats, self.stage = stats, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.stats.add_time(self.stage, time.perf_counter() - self.start)


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 2
    return max(2, min(8, cores))


class Engine:
    """Runs a model over frame tasks. ``load(task)`` fills task.raw and/or task.image."""

    def __init__(
        self,
        model: torch.nn.Module | None,
        size: int,
        options: ConvertOptions,
        device: torch.device | str = "cpu",
        workers: int = 0,
        queue_frames: int | None = None,
        bank: Any = None,
    ) -> None:
        # model None: the retrieval method, which renders from B's face bank alone.
        self.model = model
        self.bank = bank
        self.size = size
        self.options = options
        self.device = torch.device(device)
        # Decode / paste / encode threads: OpenCV and numpy release the GIL, so they use the cores.
        self.workers = workers if workers > 0 else default_workers()
        # Frames held between stages; bounded so a long video never fills memory.
        self.queue_frames = queue_frames or max(8, 2 * options.batch_size)
        self.stats = RunStats()
        self._stop = threading.Event()
        self._fatal: BaseException | None = None

    # -- stages --------------------------------------------------------------------------------
    def _prepare(self, task: FrameTask) -> None:
        """Decodes (when needed), checks the size and crops the aligned faces."""
        if not task.faces or task.error:
            return
        if task.image is None and task.raw is not None:
            with _Timer(self.stats, "decode"):
                task.image = decode_image(task.raw)
            if task.image is None:
                task.error = (grpc.StatusCode.INVALID_ARGUMENT, "frame cannot be decoded as an image")
                return
        if task.image is None:
            task.error = (grpc.StatusCode.INTERNAL, "frame has no data")
            return
        h, w = task.image.shape[:2]
        if task.width and task.height and (w, h) != (task.width, task.height):
            task.error = (
                grpc.StatusCode.FAILED_PRECONDITION,
                f"frame is {w}x{h} but its alignments were made on {task.width}x{task.height}",
            )
            return
        if self.model is None:  # nothing to infer: one placeholder per face
            task.crops = [np.zeros((0, 0, 3), np.uint8) for _ in task.faces]
            return
        with _Timer(self.stats, "crop"):
            task.crops = [crop_face(task.image, f.matrix, self.size) for f in task.faces]

    def _prepare_safe(self, task: FrameTask) -> FrameTask:
        try:
            self._prepare(task)
        except Exception as exc:  # a frame's own fault: record it, pass the frame through
            task.error = (grpc.StatusCode.INTERNAL, f"prepare failed: {type(exc).__name__}: {exc}")
        return task

    @torch.inference_mode()
    def _infer(self, crops: list[np.ndarray]) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        out: list[tuple[np.ndarray | None, np.ndarray | None]] = []
        if self.model is None:
            return [(None, None) for _ in crops]
        bs = self.options.batch_size
        for start in range(0, len(crops), bs):
            chunk = np.stack(crops[start : start + bs])
            faces, masks = decode_faces(self.model, chunk, self.options.identity, self.device)
            self.stats.batches += 1
            for i in range(len(faces)):
                out.append((faces[i], masks[i] if masks is not None else None))
        return out

    def _finish(self, task: FrameTask, sink: Sink) -> tuple[FrameTask, Any]:
        """Pool worker: paste every face, then encode. Never raises for a frame's own fault."""
        result: np.ndarray | None = None
        if task.outputs and not task.error:
            try:
                with _Timer(self.stats, "paste"):
                    frame = task.image.copy()  # type: ignore[union-attr]
                    for plan, (face, mask) in zip(task.faces, task.outputs, strict=True):
                        if paste_face(frame, plan, face, mask, self.options, self.bank):
                            task.swapped += 1
                if task.swapped:
                    result = frame
            except Exception as exc:  # a bad face must not end the run: record, pass through
                log.warning("frame %s: paste failed: %s", task.name, exc)
                task.error = (grpc.StatusCode.INTERNAL, f"paste failed: {type(exc).__name__}: {exc}")
                result = None
        with _Timer(self.stats, "encode"):
            payload = sink.encode(task, result)
        # Free the big arrays early: the committer only needs the payload.
        task.crops, task.outputs = [], []
        return task, payload

    # -- threads ------------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _reader(
        self,
        tasks: Iterable[FrameTask],
        load: Callable[[FrameTask], None],
        q: queue.Queue,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Reads in order; decoding and cropping go to the pool (PNG decoding is slow)."""
        try:
            for task in tasks:
                if self._stop.is_set():
                    return
                with _Timer(self.stats, "read"):
                    try:
                        load(task)
                    except Exception as exc:
                        task.error = (getattr(exc, "code", grpc.StatusCode.INTERNAL), f"read failed: {exc}")
                if not self._put(q, pool.submit(self._prepare_safe, task)):
                    return
        except BaseException as exc:  # the source itself broke (e.g. the video decoder died)
            self._fail(exc)
        finally:
            self._put(q, _DONE)

    def _committer(self, q: queue.Queue, sink: Sink, on_frame: Callable[[FrameTask], None] | None) -> None:
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                task, payload = item.result()
                if payload is not None:
                    with _Timer(self.stats, "write"):
                        sink.write(task, payload)
                self.stats.frames += 1
                if task.swapped:
                    self.stats.frames_swapped += 1
                    self.stats.faces_swapped += task.swapped
                if task.error:
                    self.stats.errors.append(FrameError(task.index, task.name, *task.error))
                if on_frame:
                    on_frame(task)
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._stop.set()

    def run(
        self,
        tasks: Iterable[FrameTask],
        load: Callable[[FrameTask], None],
        sink: Sink,
        on_frame: Callable[[FrameTask], None] | None = None,
    ) -> RunStats:
        start = time.perf_counter()
        q_in: queue.Queue = queue.Queue(self.queue_frames)
        q_out: queue.Queue = queue.Queue(self.queue_frames)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="conv-work")
        reader = threading.Thread(
            target=self._reader, args=(tasks, load, q_in, pool), daemon=True, name="conv-read"
        )
        committer = threading.Thread(
            target=self._committer, args=(q_out, sink, on_frame), daemon=True, name="conv-write"
        )
        pending: deque[FrameTask] = deque()
        reader.start()
        committer.start()
        try:
            finished = False
            while not finished and not self._stop.is_set():
                try:
                    item = q_in.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    finished = True
                else:
                    pending.append(item.result())
                n_faces = sum(len(t.crops) for t in pending)
                if finished or n_faces >= self.options.batch_size or len(pending) >= self.queue_frames:
                    self._flush(pending, pool, q_out, sink)
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._put(q_out, _DONE)
            committer.join()
            self._stop.set()
            reader.join()
            pool.shutdown(wait=True)
        self.stats.wall_seconds = time.perf_counter() - start
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _flush(
        self, pending: deque[FrameTask], pool: ThreadPoolExecutor, q_out: queue.Queue, sink: Sink
    ) -> None:
        batch = [t for t in pending if t.crops and not t.error]
        crops = [c for t in batch for c in t.crops]
        if crops:
            try:
                with _Timer(self.stats, "infer"):
                    outputs = self._infer(crops)
            except Exception as exc:  # e.g. out of device memory: these frames pass through
                log.warning("inference failed for %d faces: %s", len(crops), exc)
                for t in batch:
                    t.error = (grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}")
            else:
                it = iter(outputs)
                for t in batch:
                    t.outputs = [next(it) for _ in t.crops]
        while pending:
            task = pending.popleft()
            future: Future = pool.submit(self._finish, task, sink)
            if not self._put(q_out, future):
                return
