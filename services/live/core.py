"""Live swap core (no gRPC): frames in, swapped frames out in order, newest wins under load.

Per stream:

- ``LiveSession.prepare`` (one frame after the other, it carries state): decode, a size check,
  face detection on a downscaled copy every ``detect_interval`` frames or when the track is lost and
  tracking in between (``detect.track_face``: HOG in a window around the last face), 68 landmarks
  every frame, causal One Euro smoothing, the causal choice of B's faces per region.
- ``LiveSession.render`` (frames independent: runs in ``workers`` threads at once): the appearance
  method's compose (``appearance.compose``, the batch path's own) on the face's ROI only and the
  alpha blend, in a compose worker process when the server has them (``compose_processes``: the
  GIL had made two render threads barely faster than one), then the JPEG encode.
- ``LivePipeline``: the bounded queue between the transport and the session. ``put`` never blocks:
  when the queue is full the oldest queued frame is dropped (newest wins) and reported with the next
  reply. ``results`` yields replies strictly in sequence order.

Errors of one frame (a corrupt JPEG, a frame of another size, a bad sequence number) come back as
that frame's reply with ``error`` set; the stream goes on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import grpc
import numpy as np

from faceswap.composite import appearance as ap
from faceswap.composite.causal import CausalChooser, OneEuroStream, RunningCentre
from faceswap.composite.face_bank import FaceBank
from faceswap.errors import InvalidArgument, ResourceExhausted, ServiceError
from faceswap.face.detect import (
    Tracked,
    box_from_landmarks,
    box_relation,
    detect_faces,
    predict_landmarks,
    to_gray,
    track_face,
)
from faceswap.face.geometry import align_face
from faceswap.face.models import get_model
from faceswap.limits import image_size, load_limits
from faceswap.model.inference import TrainedModel, decode_faces
from services.live import metrics
from services.live.compose_processes import ComposeProcesses, cores, swap_roi

JPEG, RAW = "jpeg", "raw"
# Background detections of every stream (one thread: they are rare and must not take both cores).
_DETECT_POOL = ThreadPoolExecutor(1, thread_name_prefix="live-detect")


@dataclass
class LiveSettings:
    detect_max_side: int = 640
    detect_interval: int = 30
    verify_interval: int = 5  # between detections, HOG confirms the tracked face every n frames
    queue_size: int = 2
    workers: int = 0  # 0 = cores, at most 4
    output_encoding: str = JPEG
    jpeg_quality: int = 90
    switch_margin: float = 1.0
    hold_frames: int = 2  # the whole face; the mouth and eyes follow at once (causal.part_hold)
    crossfade_frames: int = 4
    smooth_min_cutoff: float = 3.0
    smooth_beta: float = 10.0
    smoothing: bool = True
    reply_patch: bool = False  # replies carry only the swapped region (the client pastes it)
    max_faces_b: int = 150
    stall_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.workers <= 0:
            self.workers = cores()
        checks = {
            "detect_max_side": 64 <= self.detect_max_side <= 4096,
            "detect_interval": 1 <= self.detect_interval <= 10_000,
            "verify_interval": 1 <= self.verify_interval <= 10_000,
            "queue_size": 1 <= self.queue_size <= 64,
            "workers": 1 <= self.workers <= 16,
            "jpeg_quality": 1 <= self.jpeg_quality <= 100,
            "max_faces_b": 1 <= self.max_faces_b <= 2000,
            "hold_frames": 1 <= self.hold_frames <= 1000,
            "crossfade_frames": 0 <= self.crossfade_frames <= 100,
            "switch_margin": self.switch_margin >= 0,
            "stall_timeout_s": self.stall_timeout_s > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidArgument(f"{getattr(self, name)} is out of range", field=f"options.{name}")


@dataclass
class InFrame:
    sequence: int
    capture_time: float
    encoding: str  # JPEG or RAW
    data: bytes
    width: int = 0
    height: int = 0
    received: float = field(default_factory=time.perf_counter)
    dropped_before: list[int] = field(default_factory=list)


@dataclass
class OutFrame:
    sequence: int
    capture_time: float
    encoding: str = JPEG
    data: bytes = b""
    width: int = 0
    height: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: tuple[grpc.StatusCode, str] | None = None
    dropped: list[int] = field(default_factory=list)
    face_swapped: bool = False
    patch: tuple[int, int, int, int] | None = None  # x, y, width, height of a patch reply


@dataclass
class Prepared:
    frame: InFrame
    image: np.ndarray
    landmarks: np.ndarray | None
    sources: ap.Sources | None
    timings: dict[str, float]


class LiveSession:
    """One stream's state: the stream's frame size, the face track, the smoother, the chooser."""

    def __init__(
        self,
        bank: FaceBank,
        settings: LiveSettings,
        model: TrainedModel | None = None,
        processes: ComposeProcesses | None = None,
    ) -> None:
        self.bank, self.settings, self.model = bank, settings, model
        self.processes = processes  # None: frames are composed in the render threads themselves
        self.chooser = CausalChooser(
            bank.index, settings.switch_margin, settings.hold_frames, settings.crossfade_frames
        )
        self.centre = RunningCentre()
        self.smoother = OneEuroStream(settings.smooth_min_cutoff, settings.smooth_beta)
        self.size: tuple[int, int] | None = None
        self.last_sequence: int | None = None
        self.track: Tracked | None = None
        self.since_detect = 0
        self._pending: Future | None = None
        # Loaded before the ready reply, not on the first frame: the landmark model takes ~1 s
        # to read (a bank from the cache has not loaded it) and frames would pile up behind it.
        get_model("hog"), get_model("landmarks")
        ap.warm_up()
        self.max_resolution = load_limits().max_resolution
        self._warm_render()
        self.faces_found = 0

    def _warm_render(self) -> None:
        """B's first face swapped onto itself, before the ready reply: a process's first frames
        rendered 2-6x slower than the rest (first calls into OpenCV's and numpy's paths, the
        decoder's first batch) and the 2-frame queue dropped one of them. With compose workers,
        B's bank goes to each of them here too."""
        if not len(self.bank):
            return
        image = self.bank.image(0)
        lm = np.asarray(self.bank.index.landmarks[0], np.float64)
        sources: ap.Sources = {r: [(0, 1.0)] for r in ap.REGIONS}
        if self.processes is not None:
            box = ap.roi_box(lm, image.shape[1], image.shape[0])
            x0, y0, x1, y1 = box
            # Only workers that never swapped render (a stream after the first pays nothing).
            self.processes.prime(self.bank, (image[y0:y1, x0:x1], lm, box, sources, None))
            if self.model is None:
                return
        frame = InFrame(0, 0.0, RAW, b"", image.shape[1], image.shape[0])
        self.render(Prepared(frame, image, lm, sources, {}))

    # -- sequential part -------------------------------------------------------------------------
    def decode(self, frame: InFrame) -> np.ndarray:
        if frame.encoding == RAW:
            w, h = frame.width, frame.height
            if w <= 0 or h <= 0:
                raise InvalidArgument("a raw frame needs its width and height", field="image")
            if max(w, h) > self.max_resolution:
                raise ResourceExhausted(f"frame is {w}x{h}, over FACESWAP_MAX_RESOLUTION")
            if len(frame.data) != w * h * 3:
                raise InvalidArgument(
                    f"a raw {w}x{h} BGR frame has {w * h * 3} bytes, this one {len(frame.data)}",
                    field="image.data",
                )
            return np.frombuffer(frame.data, np.uint8).reshape(h, w, 3)
        size = image_size(frame.data)
        if size is None:
            raise InvalidArgument("is not a readable JPEG", field="image.data")
        if max(size) > self.max_resolution:
            raise ResourceExhausted(f"frame is {size[0]}x{size[1]}, over FACESWAP_MAX_RESOLUTION")
        image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise InvalidArgument("is not a readable JPEG (corrupt data)", field="image.data")
        h, w = image.shape[:2]
        if (frame.width and frame.width != w) or (frame.height and frame.height != h):
            raise InvalidArgument(
                f"decodes to {w}x{h}, the message says {frame.width}x{frame.height}", field="image"
            )
        return image

    def check(self, frame: InFrame, image: np.ndarray) -> None:
        if self.last_sequence is not None and frame.sequence <= self.last_sequence:
            raise InvalidArgument(
                f"{frame.sequence} does not follow {self.last_sequence} (sequences must increase)",
                field="sequence",
            )
        h, w = image.shape[:2]
        if self.size is None:
            self.size = (w, h)
        elif self.size != (w, h):
            raise InvalidArgument(
                f"frame is {w}x{h}, this stream's frames are {self.size[0]}x{self.size[1]} "
                "(start a new stream for another size)",
                field="image",
            )
        self.last_sequence = frame.sequence

    def locate(self, gray: np.ndarray, timings: dict[str, float]) -> np.ndarray | None:
        """Raw landmarks of the face this frame: detect, or follow the track.

        While a face is tracked, its landmarks are fitted in the box carried from the last frame's
        landmarks; every ``verify_interval`` frames HOG confirms the face in a window around it
        (``track_face``), so a face that left is noticed; every ``detect_interval`` frames a full
        detection runs in the background (off the frame's path: no 30 ms spike every second) and
        the track takes its box when it still holds that face. Without a track, detection runs
        in line."""
        s = self.settings
        if self.track is not None:
            self._refresh(gray)
            t0 = time.perf_counter()
            self.since_detect += 1
            if self.since_detect % s.verify_interval == 0:
                found = track_face(gray, self.track)
                timings["track"] = time.perf_counter() - t0
                if found is not None:
                    _box, lm, score = found
                    self.track = Tracked(lm, self.track.relation, score)
                    return lm
            else:
                lm = predict_landmarks(gray, box_from_landmarks(self.track.landmarks, self.track.relation))
                timings["track"] = time.perf_counter() - t0
                if _same_face(self.track.landmarks, lm):
                    self.track = Tracked(lm, self.track.relation, self.track.score)
                    return lm
        t0 = time.perf_counter()
        faces = self._detect(gray)
        self.since_detect = 0
        timings["detect"] = time.perf_counter() - t0
        if not faces:
            self.track = None
            return None
        best = max(faces, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        t0 = time.perf_counter()
        lm = predict_landmarks(gray, best.box)
        timings["landmarks"] = time.perf_counter() - t0
        self.track = Tracked(lm, box_relation(best.box, lm), best.score)
        return lm

    def _detect(self, gray: np.ndarray) -> list:
        return detect_faces(gray, gray=gray, upsample=0, max_side=self.settings.detect_max_side)

    def _refresh(self, gray: np.ndarray) -> None:
        """The periodic full detection, in the background: started every ``detect_interval``
        frames, its result taken on a later frame when it found the tracked face."""
        if self._pending is None and self.since_detect >= self.settings.detect_interval:
            self._pending = _DETECT_POOL.submit(self._detect, gray)
            self.since_detect = 0
        if self._pending is None or not self._pending.done() or self.track is None:
            return
        pending, self._pending = self._pending, None
        try:
            faces = pending.result()
        except Exception:
            return  # the track goes on; the next refresh tries again
        lm = self.track.landmarks
        centre = lm.mean(0)
        for face in faces:
            x0, y0, x1, y1 = face.box
            if x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1:
                self.track = Tracked(lm, box_relation(face.box, lm), face.score)
                return

    def prepare(self, frame: InFrame) -> Prepared:
        timings: dict[str, float] = {"queue": time.perf_counter() - frame.received}
        t0 = time.perf_counter()
        image = self.decode(frame)
        self.check(frame, image)
        timings["decode"] = time.perf_counter() - t0
        gray = to_gray(image)
        had_track = self.track is not None
        lm = self.locate(gray, timings)
        sources = None
        if lm is None:
            self.smoother.reset()
            self.chooser.reset()
        else:
            t0 = time.perf_counter()
            if not had_track:
                self.smoother.reset()
            if self.settings.smoothing:
                lm = self.smoother(lm, frame.capture_time or frame.received)
            query = self.centre.normalise(ap.describe(lm[None])[0])
            sources = self.chooser.choose(query)
            timings["choose"] = time.perf_counter() - t0
            self.faces_found += 1
        return Prepared(frame, image, lm, sources, timings)

    # -- parallel part -----------------------------------------------------------------------------
    def render(self, prep: Prepared) -> OutFrame:
        timings = prep.timings
        image = prep.image
        swapped = False
        if prep.landmarks is not None and prep.sources is not None:
            h, w = image.shape[:2]
            lm = prep.landmarks
            box = ap.roi_box(lm, w, h)
            x0, y0, x1, y1 = box
            if x1 - x0 >= 16 and y1 - y0 >= 16:
                decoded = None
                if self.model is not None:
                    # Hybrid: the decoder's B on A's aligned face, used where B's real mouth or
                    # eyes cannot follow A's.
                    t0 = time.perf_counter()
                    model = self.model
                    crop, matrix = align_face(image, lm, model.size, model.coverage)
                    faces, _ = decode_faces(model.net, crop[None], "b", model.device)
                    decoded = (faces[0], matrix)
                    timings["model"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                roi = image[y0:y1, x0:x1]
                if self.processes is None:
                    blended, seconds = swap_roi(roi, lm, box, prep.sources, self.bank, decoded)
                else:
                    blended, seconds = self.processes.swap(self.bank, roi, lm, box, prep.sources, decoded)
                    # The trip to the worker and back (the ROI both ways), beside its own stages.
                    timings["handoff"] = max(0.0, time.perf_counter() - t0 - sum(seconds.values()))
                timings.update(seconds)
                t0 = time.perf_counter()
                if not self.settings.reply_patch:
                    image = image.copy()
                    image[y0:y1, x0:x1] = blended
                timings["blend"] += time.perf_counter() - t0
                swapped = True
        t0 = time.perf_counter()
        out = OutFrame(prep.frame.sequence, prep.frame.capture_time, face_swapped=swapped)
        if self.settings.reply_patch:
            # Only the swapped region goes back (nothing when no face was swapped).
            image = blended if swapped else None
            if swapped:
                out.patch = (x0, y0, x1 - x0, y1 - y0)
        if image is not None:
            out.height, out.width = image.shape[:2]
            if self.settings.output_encoding == RAW:
                out.encoding, out.data = RAW, np.ascontiguousarray(image).tobytes()
            else:
                params = [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality]
                out.data = cv2.imencode(".jpg", image, params)[1].tobytes()
        timings["encode"] = time.perf_counter() - t0
        out.stage_seconds = timings
        return out


def _same_face(prev: np.ndarray, new: np.ndarray, max_move: float = 0.25, max_scale: float = 1.3) -> bool:
    """A carried-box fit still on the face: it moved less than ``max_move`` face sizes and kept its size."""
    size_prev = float(np.hypot(*(prev.max(0) - prev.min(0))))
    size_new = float(np.hypot(*(new.max(0) - new.min(0))))
    if size_prev < 1 or not 1 / max_scale <= size_new / size_prev <= max_scale:
        return False
    return float(np.linalg.norm(new - prev, axis=1).mean()) / size_prev <= max_move


def error_frame(frame: InFrame, exc: BaseException) -> OutFrame:
    if isinstance(exc, ServiceError):
        code, message = exc.code, exc.message
    else:
        code, message = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
    return OutFrame(frame.sequence, frame.capture_time, error=(code, message))


class LivePipeline:
    """A bounded, newest-wins queue in front of a session, and the in-order reply stream."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.settings = session.settings
        self._queue: deque[InFrame] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._stopped = threading.Event()
        self.frames_in = self.frames_out = self.frames_dropped = self.frame_errors = 0

    def put(self, frame: InFrame) -> None:
        """Queues a frame; when the queue is full the oldest queued one is dropped. Never blocks."""
        metrics.FRAMES_IN.inc()
        with self._cond:
            self.frames_in += 1
            self._queue.append(frame)
            while len(self._queue) > self.settings.queue_size:
                old = self._queue.popleft()
                self._queue[0].dropped_before[:0] = [*old.dropped_before, old.sequence]
                self.frames_dropped += 1
                metrics.FRAMES_DROPPED.inc()
            self._cond.notify()

    def close(self) -> None:
        """No more frames: the queued ones are still processed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop now (the client went away): queued frames are discarded."""
        self._stopped.set()
        self.close()

    def _wake(self, _future: object = None) -> None:
        with self._cond:
            self._cond.notify_all()

    def _take(self, head: Future | None) -> InFrame | bool | None:
        """The next queued frame; True when ``head`` finished first (reply it, then come back);
        None at the end."""
        with self._cond:
            while not self._queue and not self._closed and not (head is not None and head.done()):
                self._cond.wait(0.5)
            if self._stopped.is_set():
                return None
            if self._queue:
                return self._queue.popleft()
            return True if head is not None and head.done() else None

    def _finish(self, out: OutFrame, frame: InFrame) -> OutFrame:
        out.dropped = frame.dropped_before
        out.stage_seconds["server"] = time.perf_counter() - frame.received
        if out.error is None:
            self.frames_out += 1
            metrics.FRAMES_OUT.inc()
            metrics.LATENCY.observe(out.stage_seconds["server"])
            for stage, seconds in out.stage_seconds.items():
                if stage != "server":
                    metrics.STAGE_SECONDS.labels(stage).observe(seconds)
        else:
            self.frame_errors += 1
            metrics.FRAME_ERRORS.labels(out.error[0].name).inc()
        return out

    def results(self) -> Iterator[OutFrame]:
        """Replies in sequence order until the input ends (or ``stop``)."""
        pending: deque[tuple[InFrame, Future[OutFrame] | OutFrame]] = deque()
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="live-render") as pool:
            try:
                while not self._stopped.is_set():
                    # Reply whatever is done at the head; wait for it when the workers are full.
                    while pending and (
                        len(pending) >= self.settings.workers
                        or not isinstance(pending[0][1], Future)
                        or pending[0][1].done()
                    ):
                        frame, item = pending.popleft()
                        yield self._finish(self._outcome(frame, item), frame)
                    head = pending[0][1] if pending and isinstance(pending[0][1], Future) else None
                    frame = self._take(head)
                    if frame is True:
                        continue
                    if frame is None:
                        break
                    try:
                        prep = self.session.prepare(frame)
                    except Exception as exc:
                        pending.append((frame, error_frame(frame, exc)))
                        continue
                    future = pool.submit(self.session.render, prep)
                    future.add_done_callback(self._wake)
                    pending.append((frame, future))
                while pending and not self._stopped.is_set():
                    frame, item = pending.popleft()
                    yield self._finish(self._outcome(frame, item), frame)
            finally:
                for _frame, item in pending:
                    if isinstance(item, Future):
                        item.cancel()

    @staticmethod
    def _outcome(frame: InFrame, item: Future[OutFrame] | OutFrame) -> OutFrame:
        if not isinstance(item, Future):
            return item
        try:
            return item.result()
        except Exception as exc:
            return error_frame(frame, exc)
