"""B's face bank: B's real faces, cropped at their native resolution, for the appearance methods.

Built once per face set from the detector's alignments (landmarks) and B's own frames, then kept
as one object beside the alignments (``faces_bank.npz``), so later conversions of any video with
the same B skip the decoding. Crops are stored JPEG-encoded and decoded on demand through a small
cache: a long B video costs tens of megabytes, not gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import cv2
import numpy as np

from faceswap.composite.appearance import FaceIndex, face_sharpness, roi_box
from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound
from faceswap.face.alignments import Alignments
from faceswap.storage import ObjectStore, join_key

log = logging.getLogger("faceswap.converter")

BANK_NAME = "faces_bank.npz"
BANK_VERSION = 2  # 2: per-face sharpness
MAX_FACES = 1500  # more faces add little variety and cost memory and planning time
CROP_MARGIN = 0.45  # share of the landmark box kept around each face (room for the warp)
JPEG_QUALITY = 95


@dataclass
class FaceBank:
    """B's faces: ``index`` (landmarks in crop pixels + descriptors) and one JPEG crop per face."""

    index: FaceIndex
    crops: list[bytes]
    source: str = ""  # what it was built from (for messages)
    sharpness: list[float] | None = None  # per face (appearance.face_sharpness)
    seconds: float = 0.0  # how long building it took (0 when it was loaded)

    def __post_init__(self) -> None:
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.token = uuid.uuid4().hex  # names this bank to the processes it is sent to

    def __len__(self) -> int:
        return len(self.crops)

    def image(self, j: int) -> np.ndarray:
        """Face j's crop (BGR uint8), decoded once and kept in a small LRU cache."""
        with self._lock:
            hit = self._cache.get(j)
            if hit is not None:
                self._cache.move_to_end(j)
                return hit
        img = cv2.imdecode(np.frombuffer(self.crops[j], np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise FailedPrecondition(f"face bank {self.source!r}: crop {j} cannot be decoded")
        with self._lock:
            self._cache[j] = img
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return img

    @property
    def images(self) -> _Images:
        return _Images(self)

    # -- persistence ------------------------------------------------------------------------
    def dumps(self) -> bytes:
        lengths = np.array([len(c) for c in self.crops], np.int64)
        buf = io.BytesIO()
        np.savez(
            buf,
            version=np.array(BANK_VERSION),
            keys=np.array(self.index.keys),
            frames=self.index.frames,
            landmarks=self.index.landmarks.astype(np.float32),
            sharpness=np.asarray(self.sharpness, np.float64),
            lengths=lengths,
            crops=np.frombuffer(b"".join(self.crops), np.uint8),
        )
        return buf.getvalue()

    @classmethod
    def loads(cls, raw: bytes, source: str = "") -> FaceBank:
        try:
            data = np.load(io.BytesIO(raw), allow_pickle=False)
            if int(data["version"]) != BANK_VERSION:
                raise ValueError(f"version {int(data['version'])}")
            blob = data["crops"].tobytes()
            offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
            crops = [blob[offsets[i] : offsets[i + 1]] for i in range(len(data["lengths"]))]
            sharpness = [float(v) for v in data["sharpness"]]
            index = FaceIndex.build(
                [str(k) for k in data["keys"]],
                data["frames"],
                data["landmarks"].astype(np.float64),
                sharpness,
            )
        except (ValueError, KeyError, OSError) as exc:
            raise FailedPrecondition(f"face bank {source!r} is unreadable: {exc}") from exc
        return cls(index, crops, source, sharpness)


class _Images:
    """``images[j]`` for appearance.compose: decodes lazily."""

    def __init__(self, bank: FaceBank) -> None:
        self.bank = bank

    def __getitem__(self, j: int) -> np.ndarray:
        return self.bank.image(int(j))


def crop_face(image: np.ndarray, landmarks: np.ndarray) -> tuple[bytes, np.ndarray]:
    """JPEG crop around one face and its landmarks in the crop's pixels."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = roi_box(landmarks, w, h, CROP_MARGIN)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise FailedPrecondition("cannot encode a face crop")
    return buf.tobytes(), np.asarray(landmarks, np.float64) - (x0, y0)


def build_bank(faces: Iterable[tuple[int, str, np.ndarray, list[np.ndarray]]], source: str = "") -> FaceBank:
    """From (frame number, key, BGR image, [68 x 2 landmarks per face]) in frame order."""
    start = time.perf_counter()
    keys, frames, landmarks, crops, sharpness = [], [], [], [], []
    for number, key, image, faces_lm in faces:
        for slot, lm in enumerate(faces_lm):
            lm = np.asarray(lm, np.float64)
            if lm.shape != (68, 2) or not np.isfinite(lm).all():
                continue
            raw, local = crop_face(image, lm)
            sharpness.append(face_sharpness(image, lm))
            keys.append(f"{key}#{slot}")
            frames.append(number)
            landmarks.append(local)
            crops.append(raw)
    if not crops:
        raise FailedPrecondition(f"no face of B found in {source or 'the face set'}")
    index = FaceIndex.build(keys, frames, np.stack(landmarks), sharpness)
    return FaceBank(index, crops, source, sharpness, time.perf_counter() - start)


def _stride(n: int) -> int:
    return max(1, -(-n // MAX_FACES))


def bank_from_alignments(
    store: ObjectStore, alignments_key: str, on_progress: Callable[[int, int], None] | None = None
) -> FaceBank:
    """B's bank from a stored face set: its alignments and the frames they name (cached beside)."""
    try:
        raw = store.get_bytes(alignments_key)
    except NotFound:
        raise NotFound(f"faces_b alignments {alignments_key!r} not found: run the detector on B") from None
    digest = hashlib.sha256(raw).hexdigest()[:16]
    cache_key = join_key(str(PurePosixPath(alignments_key).parent).lstrip("."), f"{digest}.{BANK_NAME}")
    try:
        return FaceBank.loads(store.get_bytes(cache_key), cache_key)
    except (NotFound, FailedPrecondition):
        pass
    alignments = Alignments.loads(raw)
    records = [f for f in sorted(alignments.frames, key=lambda r: r.index) if f.status == "ok" and f.faces]
    if not records:
        raise FailedPrecondition(f"faces_b {alignments_key!r} has no face of B")
    stride = _stride(len(records))
    records = records[::stride]

    def faces() -> Iterator[tuple[int, str, np.ndarray, list[np.ndarray]]]:
        for n, rec in enumerate(records):
            try:
                data = store.get_bytes(rec.key)
            except NotFound:
                raise FailedPrecondition(
                    f"faces_b {alignments_key!r} names frame {rec.key!r}, which is not in the store "
                    "(the appearance methods need B's frames, not only the aligned crops)"
                ) from None
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if on_progress:
                on_progress(n + 1, len(records))
            if image is None:
                log.warning("faces_b frame %s cannot be decoded; skipped", rec.key)
                continue
            # Renumbered by stride so that B's consecutive frames stay consecutive in the bank.
            yield rec.index // stride, rec.key, image, [f.landmarks_array for f in rec.faces]

    bank = build_bank(faces(), alignments_key)
    try:
        store.put_bytes(cache_key, bank.dumps())
    except Exception as exc:  # a read-only store still converts; it only rebuilds next time
        log.warning("cannot cache the face bank at %s: %s", cache_key, exc)
    return bank


def bank_from_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detect: Callable[[np.ndarray], list[np.ndarray]],
    source: str,
    total: int = 0,
) -> FaceBank:
    """B's bank from decoded frames (a video or photos) and a landmark detector."""
    stride = _stride(total) if total else 1

    def faces() -> Iterator[tuple[int, str, np.ndarray, list[np.ndarray]]]:
        for number, image in frames:
            if number % stride:
                continue
            yield number // stride, f"{number:08d}", image, detect(image)

    return build_bank(faces(), source)


def require_faces_b(method: str, key: str) -> None:
    if not key:
        raise InvalidArgument(
            f"method {method!r} renders B from B's own footage: give B's face set (faces_b)",
            field="faces_b",
        )
