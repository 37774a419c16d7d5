"""Face-set extraction and batch detection: the detector's plain-Python core (no gRPC here).

``extract_face_set`` reads frames (``{prefix}/{index:08d}.png`` from the media service) or a folder
of photos from object storage, runs the per-frame pipeline (services/detector/worker.py) in a pool of
processes, and writes ``{output_prefix}/faces/{frame:08d}_{n}.png`` plus
``{output_prefix}/alignments.json``. ``detect_images`` runs the same pipeline on in-memory images.

Throughput choices (2-core CPU): one process per core, because dlib holds the GIL and its models are
single-threaded; detection on a downscaled copy (``detect_max_side``) with landmarks on the full
frame; optional tracking that re-detects only every ``track_interval``-th frame.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from services.common.errors import InvalidArgument
from services.common.storage import ObjectInfo, ObjectStore, join_key, validate_prefix
from services.detector import metrics
from services.detector.align import check_size
from services.detector.alignments import Alignments, FrameRecord
from services.detector.detect import check_detector
from services.detector.identity import DEFAULT_THRESHOLD, reference_embedding
from services.detector.images import decode_image
from services.detector.worker import FrameOptions, FrameResult, FrameTask, Source, _init_worker, process_chunk

log = logging.getLogger("faceswap.detector")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PHOTO_MAX_SIDE = 1600  # photos are detected on a copy no larger than this (landmarks stay full-size)
ALIGNMENTS_NAME = "alignments.json"
FACES_DIR = "faces"


@dataclass
class DetectOptions:
    """Mirrors faceswap.v1.DetectOptions (a zero proto field means "use the default")."""

    detector: str = "hog"
    upsample: int = 1
    size: int = 64
    coverage: float = 0.75
    # Object keys (extract_face_set, gRPC) or local file paths (detect_images, CLI) of reference photos.
    reference_photos: list[str] = field(default_factory=list)
    identity_threshold: float = DEFAULT_THRESHOLD
    detect_max_side: int = 0  # 0 = detect on the full frame
    save_faces: bool = True
    faces_prefix: str = ""
    min_sharpness: float = 0.0  # Laplacian variance; 0 keeps blurry faces
    dedupe_distance: int = 0  # perceptual-hash Hamming distance; 0 keeps near-duplicates
    track_interval: int = 0  # 0/1 = detect every frame
    jobs: int = 0  # worker processes; 0 = one per available core
    # Precomputed 128-D reference embeddings (filled from reference_photos when empty).
    reference_embeddings: list[np.ndarray] = field(default_factory=list, repr=False)

    def validate(self) -> DetectOptions:
        check_detector(self.detector)
        check_size(self.size, self.coverage)
        if not 0 <= self.upsample <= 4:
            raise InvalidArgument(f"upsample must be 0..4, got {self.upsample}", field="upsample")
        if self.identity_threshold <= 0:
            raise InvalidArgument(
                f"identity_threshold must be > 0, got {self.identity_threshold}", field="identity_threshold"
            )
        for name in ("detect_max_side", "dedupe_distance", "track_interval", "jobs"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"{name} must be >= 0, got {getattr(self, name)}", field=name)
        if 0 < self.detect_max_side < 64:
            raise InvalidArgument(
                f"detect_max_side must be 0 or >= 64, got {self.detect_max_side}", field="detect_max_side"
            )
        if self.min_sharpness < 0:
            raise InvalidArgument(
                f"min_sharpness must be >= 0, got {self.min_sharpness}", field="min_sharpness"
            )
        return self

    def frame_options(self, max_side: int | None = None, want_crops: bool = True) -> FrameOptions:
        return FrameOptions(
            detector=self.detector,
            upsample=self.upsample,
            size=self.size,
            coverage=self.coverage,
            detect_max_side=self.detect_max_side if max_side is None else max_side,
            track_interval=self.track_interval,
            identity_threshold=self.identity_threshold,
            references=list(self.reference_embeddings),
            min_sharpness=self.min_sharpness,
            want_crops=want_crops,
        )


@dataclass
class ExtractSummary:
    frames_total: int = 0
    faces_total: int = 0
    frames_without_face: int = 0  # no face kept: no_face + filtered
    frames_unreadable: int = 0
    frames_filtered: int = 0
    faces_rejected: int = 0
    alignments_key: str = ""
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames_total / self.seconds if self.seconds > 0 else 0.0


# --- worker pool -------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pools: dict[int, ProcessPoolExecutor] = {}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs: int) -> int:
    """Worker count: 0 = one per core; more than twice the cores only adds memory, so capped."""
    return min(jobs, 2 * available_cores()) if jobs > 0 else available_cores()


def get_pool(jobs: int) -> ProcessPoolExecutor:
    """A process pool per worker count, kept for the life of the process (a running service pays
    the start once; concurrent calls share it).

    forkserver, not fork: the gRPC server's threads make fork unsafe; the fork server preloads dlib,
    OpenCV and the HOG + landmark models, so workers start ready. A ProcessPoolExecutor (not
    multiprocessing.Pool) so a dying worker breaks the pool loudly instead of hanging the run.
    """
    with _pool_lock:
        pool = _pools.get(jobs)
        if pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["services.detector.preload"])
            pool = _pools[jobs] = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker)
        return pool


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    with _pool_lock:
        for jobs, known in list(_pools.items()):
            if known is pool:
                del _pools[jobs]
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def close_pool() -> None:
    with _pool_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(tasks: Iterable[FrameTask], size: int) -> Iterator[list[FrameTask]]:
    chunk: list[FrameTask] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_frames(tasks: Iterable[FrameTask], opts: FrameOptions, jobs: int = 0) -> Iterator[FrameResult]:
    """Results in frame order. Chunks of consecutive frames go to the pool with a bounded number
    in flight, so a long video never sits in memory; one job runs in this process. If the pool
    breaks (a worker killed, e.g. by the OOM killer), the remaining chunks run in this process.
    """
    jobs = resolve_jobs(jobs)
    chunk_size = opts.track_interval if opts.track_interval > 1 else 4
    if jobs == 1:
        for chunk in _chunks(tasks, chunk_size):
            yield from process_chunk(chunk, opts)
        return
    pool: ProcessPoolExecutor | None = get_pool(jobs)
    pending: deque[tuple[list[FrameTask], Future | None]] = deque()

    def collect() -> list[FrameResult]:
        nonlocal pool
        chunk, future = pending.popleft()
        if future is not None:
            try:
                return future.result()
            except (BrokenProcessPool, CancelledError):
                if pool is not None:
                    log.warning("detector worker pool broke; continuing in this process")
                    _drop_pool(pool)
                    pool = None
        return process_chunk(chunk, opts)

    for chunk in _chunks(tasks, chunk_size):
        future = None
        if pool is not None:
            try:
                future = pool.submit(process_chunk, chunk, opts)
            except (BrokenProcessPool, RuntimeError):  # broken, or shut down at exit
                _drop_pool(pool)
                pool = None
        pending.append((chunk, future))
        while len(pending) >= 2 * jobs:
            yield from collect()
    while pending:
        yield from collect()


# --- sources -------------------------------------------------------------------------------------


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def index_names(names: Sequence[str]) -> list[tuple[int, str]]:
    """(frame index, name): numbered frames keep their number, other photos their sorted position."""
    names = sorted(names)
    stems = [PurePosixPath(n).stem for n in names]
    if names and all(s.isdigit() for s in stems):
        return sorted((int(s), n) for s, n in zip(stems, names, strict=True))
    return list(enumerate(names))


def list_store_images(store: ObjectStore, prefix: str) -> list[tuple[int, str]]:
    """Image keys directly under prefix (index.json and sub-folders ignored), with frame indices."""
    prefix = validate_prefix(prefix)
    start = len(prefix) + 1 if prefix else 0
    names = [key[start:] for key in store.list(prefix)]
    found = index_names([n for n in names if "/" not in n and _is_image_name(n)])
    return [(i, join_key(prefix, n)) for i, n in found]


def list_dir_images(folder: Path) -> list[tuple[int, Path]]:
    names = [p.name for p in folder.iterdir() if p.is_file() and _is_image_name(p.name)]
    return [(i, folder / n) for i, n in index_names(names)]


def select_range(items: list, start: int = 0, end: int | None = None, step: int = 1) -> list:
    """Items (index, ...) with start <= index < end, every step-th."""
    if step < 1:
        raise InvalidArgument(f"step must be >= 1, got {step}", field="range.step")
    if start < 0 or (end is not None and end < 0):
        raise InvalidArgument("range start/end must be >= 0", field="range")
    chosen = [it for it in items if it[0] >= start and (end is None or it[0] < end)]
    return chosen[::step]


def store_tasks(store: ObjectStore, items: list[tuple[int, str]]) -> Iterator[FrameTask]:
    """Local backends hand workers a path (no copy through this process); others send bytes."""
    for index, key in items:
        path = store.local_path(key)
        source: Source
        if path is not None:
            source = str(path)
        else:
            try:
                source = store.get_bytes(key, verify=False)
            except Exception as exc:  # a missing or failing object is recorded, not fatal
                log.warning("cannot read %s: %s", key, exc)
                source = None
        yield FrameTask(index, key, source)


def looks_like_photos(keys: Sequence[str]) -> bool:
    """Photos (named anything) rather than numbered video frames."""
    return not all(PurePosixPath(k).stem.isdigit() for k in keys)


# --- dedupe -------------------------------------------------------------------------------------


def perceptual_hash(crop: np.ndarray) -> int:
    """64-bit pHash: signs of the low DCT frequencies of a 32x32 grey thumbnail vs their median."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


class Deduper:
    """Keeps a face unless one already kept is within max_distance bits (pHash Hamming)."""

    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        self.kept: list[int] = []

    def is_duplicate(self, crop: np.ndarray) -> tuple[bool, int]:
        h = perceptual_hash(crop)
        nearest = min((bin(h ^ k).count("1") for k in self.kept), default=65)
        if nearest <= self.max_distance:
            return True, nearest
        self.kept.append(h)
        return False, nearest


# --- running -------------------------------------------------------------------------------------


def load_reference_embeddings(options: DetectOptions, read: Callable[[str], bytes | None]) -> None:
    """Fills options.reference_embeddings from options.reference_photos (once)."""
    if options.reference_embeddings or not options.reference_photos:
        return
    embeddings = []
    for name in options.reference_photos:
        try:
            data = read(name)
        except Exception as exc:
            raise InvalidArgument(
                f"reference photo {name!r} cannot be read: {exc}", field="reference_photos"
            ) from exc
        image = decode_image(data) if data else None
        embeddings.append(reference_embedding(image, name))
    options.reference_embeddings = embeddings


def _record_metrics(result: FrameResult, detector: str) -> None:
    record = result.record
    metrics.FRAMES.labels(record.status).inc()
    metrics.FACES.inc(len(record.faces))
    if record.status in ("no_face", "filtered"):
        metrics.FRAMES_WITHOUT_FACE.inc()
    for face in record.rejected:
        metrics.FACES_REJECTED.labels(face.reason.split(" ")[0].rstrip(":")).inc()
    if result.detected:
        metrics.DETECT_LATENCY.labels(detector).observe(result.detect_seconds)


def apply_dedupe(result: FrameResult, deduper: Deduper | None) -> None:
    """Moves near-duplicate faces of this frame to rejected (order-dependent, so done here)."""
    if deduper is None:
        return
    record = result.record
    kept_faces, kept_crops = [], []
    for face, crop in zip(record.faces, result.crops, strict=True):
        duplicate, distance = deduper.is_duplicate(crop)
        if duplicate:
            face.reason = f"duplicate: phash distance {distance} <= {deduper.max_distance}"
            record.rejected.append(face)
        else:
            kept_faces.append(face)
            kept_crops.append(crop)
    record.faces, result.crops = kept_faces, kept_crops
    if not record.faces and record.rejected and record.status == "ok":
        record.status = "filtered"
        record.reason = "; ".join(f.reason for f in record.rejected)


def encode_png(crop: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", crop)
    if not ok:
        raise RuntimeError("PNG encoding of an aligned face failed")
    return buf.tobytes()


def run_extraction(
    tasks: Iterable[FrameTask],
    options: DetectOptions,
    out_store: ObjectStore,
    output_prefix: str,
    max_side: int | None = None,
    on_progress: Callable[[int, FrameRecord], None] | None = None,
) -> ExtractSummary:
    """Runs the pipeline over tasks and writes faces + alignments.json under output_prefix."""
    output_prefix = validate_prefix(output_prefix)
    summary = ExtractSummary()
    alignments = Alignments(size=options.size, coverage=options.coverage, detector=options.detector)
    deduper = Deduper(options.dedupe_distance) if options.dedupe_distance > 0 else None
    start = time.perf_counter()
    written: set[str] = set()
    for result in run_frames(tasks, options.frame_options(max_side), options.jobs):
        apply_dedupe(result, deduper)
        record = result.record
        for n, (face, crop) in enumerate(zip(record.faces, result.crops, strict=True)):
            if options.save_faces:
                face.face_key = join_key(FACES_DIR, f"{record.index:08d}_{n}.png")
                written.add(out_store.put_bytes(join_key(output_prefix, face.face_key), encode_png(crop)).key)
        alignments.frames.append(record)
        _record_metrics(result, options.detector)
        summary.frames_total += 1
        summary.faces_total += len(record.faces)
        summary.faces_rejected += len(record.rejected)
        summary.frames_without_face += record.status in ("no_face", "filtered")
        summary.frames_filtered += record.status == "filtered"
        summary.frames_unreadable += record.status == "unreadable"
        if on_progress:
            on_progress(summary.frames_total, record)
    summary.seconds = time.perf_counter() - start
    metrics.FRAMES_PER_SECOND.set(summary.frames_per_second)
    summary.alignments_key = join_key(output_prefix, ALIGNMENTS_NAME)
    out_store.put_bytes(summary.alignments_key, alignments.dumps())
    # Crops left by an earlier run into the same folder would leak into training: drop them,
    # only now that the new set is complete.
    for key in list(out_store.list(join_key(output_prefix, FACES_DIR))):
        if key not in written:
            out_store.delete(key)
    log.info(
        "extracted %d faces from %d frames in %.1fs (%.2f frames/s)",
        summary.faces_total,
        summary.frames_total,
        summary.seconds,
        summary.frames_per_second,
    )
    return summary


def extract_face_set(
    store: ObjectStore,
    source_prefix: str,
    output_prefix: str,
    options: DetectOptions,
    start: int = 0,
    end: int | None = None,
    step: int = 1,
    on_progress: Callable[[int, FrameRecord], None] | None = None,
) -> ExtractSummary:
    """Aligned face set from frames or photos under source_prefix (same store for the output)."""
    options.validate()
    try:
        items = list_store_images(store, source_prefix)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field="source_prefix") from exc
    items = select_range(items, start, end, step)
    if not items:
        raise InvalidArgument(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {source_prefix!r} in the selected range",
            field="source_prefix",
        )
    load_reference_embeddings(options, lambda key: store.get_bytes(key, verify=False))
    max_side = _photo_max_side(options, [k for _, k in items])
    return run_extraction(store_tasks(store, items), options, store, output_prefix, max_side, on_progress)


def _photo_max_side(options: DetectOptions, names: Sequence[str]) -> int:
    # Photos can be 4000 px wide: always detect on a reduced copy for them (landmarks stay full-size).
    if looks_like_photos(names):
        return min(options.detect_max_side or PHOTO_MAX_SIDE, PHOTO_MAX_SIDE)
    return options.detect_max_side


def extract_from_path(
    input_path: Path,
    output_dir: Path,
    options: DetectOptions,
    on_progress: Callable[[int, FrameRecord], None] | None = None,
) -> ExtractSummary:
    """CLI entry: a folder of frames or photos, or a video file -> faces/ + alignments.json."""
    from services.common.storage import LocalStore

    options.validate()
    load_reference_embeddings(options, lambda p: Path(p).read_bytes())
    out_store = LocalStore(output_dir, "")
    if input_path.is_dir():
        items = list_dir_images(input_path)
        if not items:
            raise InvalidArgument(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {input_path}", field="input")
        tasks = (FrameTask(i, p.name, str(p)) for i, p in items)
        max_side = _photo_max_side(options, [p.name for _, p in items])
        return run_extraction(tasks, options, out_store, "", max_side, on_progress)
    if input_path.is_file() and _is_image_name(input_path.name):  # a single photo
        tasks = iter([FrameTask(0, input_path.name, str(input_path))])
        return run_extraction(
            tasks, options, out_store, "", _photo_max_side(options, [input_path.name]), on_progress
        )
    if input_path.is_file():
        tasks = (FrameTask(i, f"{i:08d}", frame) for i, frame in read_video_frames(input_path))
        return run_extraction(tasks, options, out_store, "", None, on_progress)
    raise InvalidArgument(f"input {input_path} does not exist", field="input")


def read_video_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Decoded BGR frames of a video, through the media service's ffmpeg reader when available."""
    try:
        from services.media.core import read_frames
    except ImportError:
        read_frames = None
    if read_frames is not None:
        yield from read_frames(str(path))
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InvalidArgument(f"cannot open video {path}", field="input")
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield index, frame
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise InvalidArgument(f"video {path} has no decodable frames", field="input")


def detect_images(
    images: Sequence[np.ndarray | None], options: DetectOptions | None = None
) -> list[FrameRecord]:
    """In-process detection on decoded BGR images; frame index = position, no crops written.

    options.reference_photos are local file paths here (or pass reference_embeddings).
    """
    options = (options or DetectOptions()).validate()
    if not images:
        raise InvalidArgument("no images given", field="images")
    load_reference_embeddings(options, lambda p: Path(p).read_bytes())
    tasks = [FrameTask(i, "", img) for i, img in enumerate(images)]
    jobs = 1 if len(images) <= 2 else options.jobs
    results = run_frames(tasks, options.frame_options(want_crops=False), jobs)
    return [r.record for r in results]


def detect_stored_frames(
    store: ObjectStore,
    frames: Sequence[tuple[int, str]],
    options: DetectOptions,
    written: dict[str, ObjectInfo] | None = None,
) -> Iterator[FrameRecord]:
    """Detection on stored frames (the DetectFaces RPC), in order; crops are written to
    ``{faces_prefix}/{frame:08d}_{n}.png`` when options.save_faces and options.faces_prefix are set
    (face_key then holds the full object key, and ``written`` gets each crop's size and digest).
    """
    options.validate()
    if not frames:
        raise InvalidArgument("no frames given", field="frames")
    for _, key in frames:
        try:
            validate_prefix(key)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field="frames.key") from exc
    faces_prefix = validate_prefix(options.faces_prefix) if options.faces_prefix else ""
    load_reference_embeddings(options, lambda key: store.get_bytes(key, verify=False))
    save = options.save_faces and bool(faces_prefix)
    opts = options.frame_options(want_crops=save)
    for result in run_frames(store_tasks(store, list(frames)), opts, options.jobs):
        record = result.record
        if save:
            for n, (face, crop) in enumerate(zip(record.faces, result.crops, strict=True)):
                face.face_key = join_key(faces_prefix, f"{record.index:08d}_{n}.png")
                info = store.put_bytes(face.face_key, encode_png(crop))
                if written is not None:
                    written[info.key] = info
        _record_metrics(result, options.detector)
        yield record
