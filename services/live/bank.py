"""B's face bank for a live stream: the library's ``FaceBank`` of B's real faces, built once per
face set and kept in memory.

A bank comes from a video or a photos folder on the server, or from stored objects under a prefix.
Up to ``max_faces`` frames, spread evenly over B's footage, are searched (dlib HOG on a copy of at
most 640 px, landmarks on the full frame); the largest face of each goes into the bank
(``face_bank.bank_from_frames``: a JPEG crop at native resolution, its landmarks, its sharpness,
its expression/pose descriptor). Banks are cached in the process and on disk by what they were
built from (path + size + mtime of every file, or the stored objects' digests), so only the first
stream on a face set pays for the detection.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from faceswap.composite.face_bank import BANK_NAME, FaceBank, bank_from_frames
from faceswap.config import data_dir
from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.face.detect import detect_faces, predict_landmarks, to_gray
from faceswap.face.images import decode_image
from faceswap.media.frames import read_frames
from faceswap.media.kinds import IMAGE_EXTENSIONS, is_image
from faceswap.media.probe import probe
from faceswap.storage import ObjectStore

CACHE_SIZE = 4
log = logging.getLogger(__name__)


def largest_face(image: np.ndarray, max_side: int = 640) -> np.ndarray | None:
    """Landmarks (frame px) of the largest face, or None."""
    gray = to_gray(image)
    found = detect_faces(image, gray=gray, upsample=0, max_side=max_side)
    if not found:
        found = detect_faces(image, gray=gray, upsample=1, max_side=max_side)
    if not found:
        return None
    best = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    return predict_landmarks(gray, best.box)


def build_bank(frames: Iterator[tuple[int, np.ndarray]], source: str) -> FaceBank:
    """A bank from (frame number, BGR image) pairs: the largest face of each."""

    def detect(image: np.ndarray) -> list[np.ndarray]:
        lm = largest_face(image)
        return [] if lm is None else [lm]

    try:
        return bank_from_frames(frames, detect, source)
    except FailedPrecondition:
        raise FailedPrecondition(f"no face found in B's face set {source}") from None


def video_frames(path: Path, max_faces: int) -> Iterator[tuple[int, np.ndarray]]:
    """Up to ``max_faces`` frames spread evenly over the video (the library's reader)."""
    try:
        info = probe(path, label=path.name)
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"cannot read {path.name} as a video: {exc.message}", field="config.faces_b_path"
        ) from None
    step = max(1, math.ceil((info.frame_count or max_faces) / max_faces))
    yield from read_frames(path, step=step, info=info, label=path.name)


def _spread(items: list, most: int) -> list:
    if len(items) <= most:
        return items
    return [items[round(i * (len(items) - 1) / (most - 1))] for i in range(most)] if most > 1 else items[:1]


def photo_frames(paths: list[Path], max_faces: int) -> Iterator[tuple[int, np.ndarray]]:
    for number, path in enumerate(_spread(paths, max_faces)):
        image = decode_image(path.read_bytes())
        if image is not None:
            yield number, image


_cache: OrderedDict[tuple, FaceBank] = OrderedDict()
_cache_lock = threading.Lock()
_build_locks: dict[tuple, threading.Lock] = {}


def _disk_path(key: tuple) -> Path:
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return data_dir() / "cache" / "live-banks" / f"{digest}.{BANK_NAME}"


def _from_disk(key: tuple) -> FaceBank | None:
    path = _disk_path(key)
    try:
        return FaceBank.loads(path.read_bytes(), path.name)
    except FileNotFoundError:
        return None
    except (OSError, FailedPrecondition) as exc:
        log.warning("rebuilding B's face bank: the cached one is unreadable (%s)", exc)
        return None


def _to_disk(key: tuple, bank: FaceBank) -> None:
    path = _disk_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(bank.dumps())
        os.replace(tmp, path)  # a reader never sees half a file
    except OSError as exc:
        log.warning("cannot cache B's face bank at %s: %s", path, exc)


def _cached(key: tuple, build: Callable[[], FaceBank]) -> tuple[FaceBank, bool]:
    """(bank, came from a cache); concurrent streams on one face set build it once. Banks are
    kept in memory and under FACESWAP_DATA_DIR/cache (keyed by what they were built from), so a
    restarted server or the next ``faceswap live`` does not detect B's faces again."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key], True
        lock = _build_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key], True
        bank = _from_disk(key)
        cached = bank is not None
        if bank is None:
            bank = build()
            _to_disk(key, bank)
        with _cache_lock:
            _cache[key] = bank
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
            _build_locks.pop(key, None)
        return bank, cached


def allowed_roots() -> list[Path]:
    """FACESWAP_LIVE_FACES_DIRS: folders (os.pathsep-separated) whose files a client may name."""
    raw = os.environ.get("FACESWAP_LIVE_FACES_DIRS", "")
    return [Path(p).resolve() for p in raw.split(os.pathsep) if p]


def bank_from_path(path: str, max_faces: int, roots: list[Path] | None = None) -> tuple[FaceBank, bool]:
    """The bank of a video file or photos folder on this machine, within ``roots``."""
    roots = allowed_roots() if roots is None else roots
    field = "config.faces_b_path"
    if not roots:
        raise FailedPrecondition(
            "server-side face sets are off here (set FACESWAP_LIVE_FACES_DIRS); use faces_b_prefix"
        )
    resolved = Path(path).resolve()
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise InvalidArgument(f"{path} is not under FACESWAP_LIVE_FACES_DIRS", field=field)
    if not resolved.exists():
        raise NotFound(f"B's face set {path} does not exist")
    if resolved.is_dir():
        photos = sorted(p for p in resolved.iterdir() if is_image(p) and p.is_file())
        if not photos:
            raise InvalidArgument(f"no photos ({', '.join(IMAGE_EXTENSIONS)}) in {path}", field=field)
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in photos)
        key = ("dir", str(resolved), stamp, max_faces)
        return _cached(key, lambda: build_bank(photo_frames(photos, max_faces), resolved.name))
    st = resolved.stat()
    key = ("file", str(resolved), st.st_size, st.st_mtime_ns, max_faces)
    return _cached(key, lambda: build_bank(video_frames(resolved, max_faces), resolved.name))


def bank_from_store(store: ObjectStore, prefix: str, max_faces: int) -> tuple[FaceBank, bool]:
    """The bank of the photos / frames stored under ``prefix``."""
    keys = sorted(k for k in store.list(prefix) if is_image(k))
    if not keys:
        raise NotFound(f"no images under {prefix!r}")
    keys = _spread(keys, max_faces)
    stamp = tuple((k, store.stat(k).sha256) for k in keys)
    key = ("store", store.bucket, prefix, stamp, max_faces)

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        for number, k in enumerate(keys):
            image = decode_image(store.get_bytes(k))
            if image is not None:
                yield number, image

    return _cached(key, lambda: build_bank(frames(), prefix))
