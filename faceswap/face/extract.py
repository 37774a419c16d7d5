"""Face-set extraction and batch detection: the detector's plain-Python core (no gRPC here).

``extract_face_set`` reads frames (``{prefix}/{index:08d}.png`` from the media service) or a folder
of photos from object storage, runs the per-frame pipeline (faceswap/face/frame_worker.py) in a pool of
processes, and writes ``{output_prefix}/faces/{frame:08d}_{n}.png`` plus
``{output_prefix}/alignments.json``. ``detect_images`` runs the same pipeline on in-memory images.

Throughput choices (2-core CPU): one process per core, because dlib holds the GIL and its models are
single-threaded; detection on a downscaled copy (``detect_max_side``) with landmarks on the full
frame, only where the faces seen so far are large enough at that scale; optional tracking that
re-detects only every ``track_interval``-th frame. Video frames the detector misses between frames
with a face are recovered by ``faceswap/face/recover.py``.
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
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.face import events
from faceswap.face.alignments import ALIGNMENTS_NAME, FACES_DIR, Alignments, FrameRecord
from faceswap.face.frame_worker import (
    FrameOptions,
    FrameResult,
    FrameTask,
    Source,
    _init_worker,
    process_chunk,
    smallest_face,
)
from faceswap.face.identity import reference_embedding
from faceswap.face.images import decode_image
from faceswap.face.recover import Recoverer
from faceswap.media.frames import read_frames
from faceswap.media.kinds import IMAGE_EXTENSIONS
from faceswap.media.store import select_range
from faceswap.options.detect import DetectOptions
from faceswap.storage import ObjectInfo, ObjectStore, join_key, validate_prefix

log = logging.getLogger("faceswap.detector")

# Auto scale in video: the first chunks (nothing seen yet) and then one chunk in every this many
# frames start with a full-resolution detection, so a smaller face that enters later is found too.
FULL_SCALE_EVERY = 90


def frame_options(
    options: DetectOptions, max_side: int | None = None, want_crops: bool = True, sequence: bool = True
) -> FrameOptions:
    """The per-frame worker's options from a stage's DetectOptions; ``sequence``: frames of one video (False: unrelated photos)."""
    return FrameOptions(
        detector=options.detector,
        upsample=options.upsample,
        size=options.size,
        coverage=options.coverage,
        detect_max_side=options.detect_max_side if max_side is None else max_side,
        track_interval=options.track_interval,
        identity_threshold=options.identity_threshold,
        references=list(options.reference_embeddings),
        min_sharpness=options.min_sharpness,
        want_crops=want_crops,
        min_face=options.min_face,
        fallback=options.fallback,
        sequence=sequence,
        recover_frames=options.recover_frames if sequence else 0,
    )


@dataclass
class ExtractSummary:
    frames_total: int = 0
    faces_total: int = 0
    frames_without_face: int = 0  # no face kept: no_face + filtered
    frames_unreadable: int = 0
    frames_filtered: int = 0
    faces_rejected: int = 0
    faces_tracked: int = 0  # recovered in frames the detector missed (see recover.py)
    faces_interpolated: int = 0
    faces_rotated: int = 0  # found on the frame turned by 90/180/270 degrees
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
            ctx.set_forkserver_preload(["faceswap.face.preload"])
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

    Video frames (``opts.sequence``): each chunk is told the smallest face seen in the results so
    far (its detection scale follows from it), and missed frames between frames with a face are
    recovered (``opts.recover_frames``).
    """
    if not (opts.sequence and opts.recover_frames > 0):
        yield from _run_frames(tasks, opts, jobs)
        return
    sources: dict[int, Source] = {}

    def remember(items: Iterable[FrameTask]) -> Iterator[FrameTask]:
        for task in items:
            sources[task.index] = task.source
            yield task

    yield from Recoverer(opts, sources)(_run_frames(remember(tasks), opts, jobs))


def _chunk_options(opts: FrameOptions, chunk: list[FrameTask], seen: float) -> FrameOptions:
    if not opts.sequence or opts.min_face > 0:
        return opts
    if chunk and chunk[0].index % FULL_SCALE_EVERY < len(chunk):
        seen = 0.0  # a periodic full-resolution look
    return opts if seen == opts.seen_face_px else replace(opts, seen_face_px=seen)


def _run_frames(tasks: Iterable[FrameTask], opts: FrameOptions, jobs: int = 0) -> Iterator[FrameResult]:
    jobs = resolve_jobs(jobs)
    chunk_size = opts.track_interval if opts.track_interval > 1 else 4
    seen = 0.0  # smallest face width in the results so far

    def note(results: list[FrameResult]) -> list[FrameResult]:
        nonlocal seen
        for result in results:
            seen = smallest_face(result.record, seen)
        return results

    if jobs == 1:
        for chunk in _chunks(tasks, chunk_size):
            yield from note(process_chunk(chunk, _chunk_options(opts, chunk, seen)))
        return
    pool: ProcessPoolExecutor | None = get_pool(jobs)
    pending: deque[tuple[list[FrameTask], FrameOptions, Future | None]] = deque()

    def collect() -> list[FrameResult]:
        nonlocal pool
        chunk, chunk_opts, future = pending.popleft()
        if future is not None:
            try:
                return note(future.result())
            except (BrokenProcessPool, CancelledError):
                if pool is not None:
                    log.warning("detector worker pool broke; continuing in this process")
                    _drop_pool(pool)
                    pool = None
        return note(process_chunk(chunk, chunk_opts))

    for chunk in _chunks(tasks, chunk_size):
        future = None
        chunk_opts = _chunk_options(opts, chunk, seen)
        if pool is not None:
            try:
                future = pool.submit(process_chunk, chunk, chunk_opts)
            except (BrokenProcessPool, RuntimeError):  # broken, or shut down at exit
                _drop_pool(pool)
                pool = None
        pending.append((chunk, chunk_opts, future))
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
    events.frame(result, detector)


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
    sequence: bool = True,
    on_progress: Callable[[int, FrameRecord], None] | None = None,
) -> ExtractSummary:
    """Runs the pipeline over tasks and writes faces + alignments.json under output_prefix;
    ``sequence``: the tasks are frames of one video (False: photos)."""
    output_prefix = validate_prefix(output_prefix)
    summary = ExtractSummary()
    alignments = Alignments(size=options.size, coverage=options.coverage, detector=options.detector)
    deduper = Deduper(options.dedupe_distance) if options.dedupe_distance > 0 else None
    start = time.perf_counter()
    written: set[str] = set()
    for result in run_frames(tasks, frame_options(options, sequence=sequence), options.jobs):
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
        summary.faces_tracked += sum(f.source == "tracked" for f in record.faces)
        summary.faces_interpolated += sum(f.source == "interpolated" for f in record.faces)
        summary.faces_rotated += sum(f.rotation != 0 for f in record.faces)
        if on_progress:
            on_progress(summary.frames_total, record)
    summary.seconds = time.perf_counter() - start
    events.run(summary.frames_per_second)
    summary.alignments_key = join_key(output_prefix, ALIGNMENTS_NAME)
    out_store.put_bytes(summary.alignments_key, alignments.dumps())
    # Crops left by an earlier run into the same folder would leak into training: drop them,
    # only now that the new set is complete.
    for key in list(out_store.list(join_key(output_prefix, FACES_DIR))):
        if key not in written:
            out_store.delete(key)
    log.info(
        "extracted %d faces (%d tracked, %d interpolated, %d rotated) from %d frames in %.1fs (%.2f frames/s)",
        summary.faces_total,
        summary.faces_tracked,
        summary.faces_interpolated,
        summary.faces_rotated,
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
    sequence = not looks_like_photos([k for _, k in items])
    return run_extraction(store_tasks(store, items), options, store, output_prefix, sequence, on_progress)


def extract_from_path(
    input_path: Path,
    output_dir: Path,
    options: DetectOptions,
    on_progress: Callable[[int, FrameRecord], None] | None = None,
) -> ExtractSummary:
    """CLI entry: a folder of frames or photos, or a video file -> faces/ + alignments.json."""
    from faceswap.storage import LocalStore

    options.validate()
    load_reference_embeddings(options, lambda p: Path(p).read_bytes())
    out_store = LocalStore(output_dir, "")
    if input_path.is_dir():
        items = list_dir_images(input_path)
        if not items:
            raise InvalidArgument(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {input_path}", field="input")
        tasks = (FrameTask(i, p.name, str(p)) for i, p in items)
        sequence = not looks_like_photos([p.name for _, p in items])
        return run_extraction(tasks, options, out_store, "", sequence, on_progress)
    if input_path.is_file() and _is_image_name(input_path.name):  # a single photo
        tasks = iter([FrameTask(0, input_path.name, str(input_path))])
        return run_extraction(tasks, options, out_store, "", False, on_progress)
    if input_path.is_file():
        tasks = (FrameTask(i, f"{i:08d}", frame) for i, frame in read_frames(str(input_path)))
        return run_extraction(tasks, options, out_store, "", True, on_progress)
    raise InvalidArgument(f"input {input_path} does not exist", field="input")


def detect_images(
    images: Sequence[np.ndarray | None], options: DetectOptions | None = None, sequence: bool = False
) -> list[FrameRecord]:
    """In-process detection on decoded BGR images; frame index = position, no crops written.

    ``sequence``: the images are consecutive frames of one video (scale from the faces seen,
    temporal recovery); by default they are photos. options.reference_photos are local file paths
    here (or pass reference_embeddings).
    """
    options = (options or DetectOptions()).validate()
    if not images:
        raise InvalidArgument("no images given", field="images")
    load_reference_embeddings(options, lambda p: Path(p).read_bytes())
    tasks = [FrameTask(i, "", img) for i, img in enumerate(images)]
    jobs = 1 if len(images) <= 2 else options.jobs
    results = run_frames(tasks, frame_options(options, want_crops=False, sequence=sequence), jobs)
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
    opts = frame_options(options, want_crops=save, sequence=not looks_like_photos([k for _, k in frames]))
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
