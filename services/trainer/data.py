"""Face sets for training: aligned crops + landmark masks read from object storage, and fingerprints.

A face set lives under a prefix: ``{prefix}/faces/*.png`` (aligned crops, all the same square size)
and ``{prefix}/alignments.json`` (faceswap/face/alignments.py). The landmarks there are in frame
pixels; the face's matrix maps frame -> aligned crop, so aligned landmarks = matrix @ [x, y, 1].
From them we draw the face hull (loss weighting, mask target) and the eyes + mouth regions.

The fingerprint identifies what a checkpoint was trained on, so that a warm start is never used
silently for another pair: the sha256 of the sorted face keys + byte sizes (exact), the keys alone,
and a 16x16 mean face. Two sets match when the sha256 is equal, or when their mean faces are within
a few levels (the same clip re-extracted elsewhere, or with another frame step, gives other PNG bytes
but the same mean face; another person's set differs by far more).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from faceswap.face.alignments import Alignments, alignments_key
from faceswap.storage import ObjectStore, join_key, validate_prefix

log = logging.getLogger("faceswap.trainer")

MIN_FACES = 4
MEAN_FACE_SIZE = 16
# A re-extracted copy of the same face set: mean faces within this mean absolute difference (0..255).
MEAN_FACE_TOLERANCE = 6.0
EYES = (slice(36, 42), slice(42, 48))
MOUTH = slice(48, 68)


@dataclass
class FaceSet:
    prefix: str
    images: np.ndarray  # (N, S, S, 3) uint8 BGR
    masks: np.ndarray  # (N, S, S) uint8 0/255: landmark hull
    regions: np.ndarray  # (N, S, S) uint8 0/255: eyes + mouth
    keys: list[str]
    size: int
    coverage: float
    fingerprint: dict[str, Any] = field(default_factory=dict)
    landmarks: list[np.ndarray | None] = field(default_factory=list)  # aligned, at `size`

    def __len__(self) -> int:
        return len(self.keys)


def face_keys(store: ObjectStore, prefix: str) -> list[str]:
    faces_prefix = join_key(prefix, "faces")
    return [k for k in store.list(faces_prefix) if k.lower().endswith(".png")]


def fingerprint(store: ObjectStore, prefix: str, keys: list[str], images: np.ndarray) -> dict[str, Any]:
    rel = sorted(k[len(prefix) + 1 :] if prefix else k for k in keys)
    exact = hashlib.sha256()
    names = hashlib.sha256()
    for key in rel:
        size = store.stat(join_key(prefix, key)).size
        exact.update(f"{key}\t{size}\n".encode())
        names.update(f"{key}\n".encode())
    mean = images.astype(np.float32).mean(axis=0)
    small = cv2.resize(mean, (MEAN_FACE_SIZE, MEAN_FACE_SIZE), interpolation=cv2.INTER_AREA)
    return {
        "sha256": exact.hexdigest(),
        "keys_sha256": names.hexdigest(),
        "count": len(rel),
        "mean_face": np.clip(small.round(), 0, 255).astype(int).ravel().tolist(),
    }


def same_face_set(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[bool, str]:
    """Whether two fingerprints name the same face set (exactly, or the same clip re-extracted)."""
    if not recorded or not current:
        return False, "no fingerprint recorded"
    if recorded.get("sha256") == current.get("sha256"):
        return True, "identical face set"
    mean_a = np.asarray(recorded.get("mean_face") or [], dtype=np.float32)
    mean_b = np.asarray(current.get("mean_face") or [], dtype=np.float32)
    if mean_a.shape != mean_b.shape or mean_a.size == 0:
        return False, "different face set"
    diff = float(np.abs(mean_a - mean_b).mean())
    if diff <= MEAN_FACE_TOLERANCE:
        same_keys = recorded.get("keys_sha256") == current.get("keys_sha256")
        how = "same face keys" if same_keys else f"{current.get('count')} vs {recorded.get('count')} faces"
        return True, f"same faces re-extracted ({how}, mean face within {diff:.1f}/255)"
    return False, f"different face set (mean face differs by {diff:.1f}/255)"


def _decode(data: bytes, key: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidArgument(f"face image {key!r} cannot be decoded", field="faces")
    return image


def _load_alignments(store: ObjectStore, prefix: str) -> Alignments | None:
    key = alignments_key(prefix)
    try:
        return Alignments.loads(store.get_bytes(key))
    except NotFound:
        log.warning("face set %r has no alignments.json: using an elliptic face mask", prefix)
        return None


def _landmarks_by_key(alignments: Alignments | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if alignments is None:
        return out
    for frame in alignments.frames:
        for face in frame.faces:
            if not face.face_key or len(face.landmarks) != 68:
                continue
            pts = face.landmarks_array
            mat = face.matrix_array
            out[face.face_key] = pts @ mat[:, :2].T + mat[:, 2]
    return out


def _fill_hull(mask: np.ndarray, pts: np.ndarray) -> None:
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)


def region_masks(landmarks: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(face hull, eyes + mouth) masks of one aligned face, uint8 0/255."""
    hull = np.zeros((size, size), np.uint8)
    regions = np.zeros((size, size), np.uint8)
    if landmarks is None:
        # No landmarks: the aligned template puts the face in the middle; an ellipse stands in.
        c = size // 2
        cv2.ellipse(hull, (c, int(size * 0.55)), (int(size * 0.36), int(size * 0.42)), 0, 0, 360, 255, -1)
        return hull, regions
    _fill_hull(hull, landmarks[:68])
    for part in (*EYES, MOUTH):
        _fill_hull(regions, landmarks[part])
    grow = max(1, size // 24)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    regions = cv2.dilate(regions, kernel)
    return hull, regions


def load_face_set(store: ObjectStore, prefix: str, size: int | None = None, field: str = "faces") -> FaceSet:
    """Reads a face set; InvalidArgument / FailedPrecondition name the field and the problem."""
    try:
        prefix = validate_prefix(prefix)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field=field) from exc
    if not prefix:
        raise InvalidArgument("face set prefix is empty", field=field)
    keys = face_keys(store, prefix)
    if not keys:
        raise FailedPrecondition(
            f"{field}: no faces at {join_key(prefix, 'faces')}/*.png (run extract first)"
        )
    if len(keys) < MIN_FACES:
        raise FailedPrecondition(
            f"{field}: face set {prefix!r} has {len(keys)} faces, at least {MIN_FACES} needed"
        )
    try:
        alignments = _load_alignments(store, prefix)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{prefix}/alignments.json: {exc.message}", field=field) from exc
    aligned = _landmarks_by_key(alignments)
    images = []
    first_shape: tuple[int, ...] | None = None
    for key in keys:
        try:
            image = _decode(store.get_bytes(key), key)
        except ServiceError as exc:
            raise InvalidArgument(exc.message, field=field) from exc
        if image.shape[0] != image.shape[1]:
            raise InvalidArgument(
                f"face {key!r} is {image.shape[1]}x{image.shape[0]}, not square", field=field
            )
        if first_shape is None:
            first_shape = image.shape
        elif image.shape != first_shape:
            raise InvalidArgument(
                f"face {key!r} is {image.shape[1]}x{image.shape[0]} but the set's faces are "
                f"{first_shape[1]}x{first_shape[0]}",
                field=field,
            )
        images.append(image)
    stored_size = int(first_shape[0]) if first_shape else 0
    if alignments is not None and alignments.size != stored_size:
        raise InvalidArgument(
            f"faces are {stored_size}px but alignments.json says {alignments.size}px", field=field
        )
    size = int(size or stored_size)
    if size > stored_size:
        raise InvalidArgument(
            f"faces are {stored_size}px, smaller than the model's {size}px (extract at size {size})",
            field=field,
        )
    stack = np.stack(images)
    fp = fingerprint(store, prefix, keys, stack)
    scale = size / stored_size
    if size != stored_size:
        stack = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    masks, regions, marks = [], [], []
    for key in keys:
        pts = aligned.get(key[len(prefix) + 1 :])
        pts = None if pts is None else pts * scale
        hull, reg = region_masks(pts, size)
        masks.append(hull)
        regions.append(reg)
        marks.append(pts)
    coverage = alignments.coverage if alignments is not None else 0.0
    return FaceSet(
        prefix=prefix,
        images=stack,
        masks=np.stack(masks),
        regions=np.stack(regions),
        keys=keys,
        size=size,
        coverage=coverage,
        fingerprint=fp,
        landmarks=marks,
    )
