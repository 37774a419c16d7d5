"""Identity: dlib's 128-D face embeddings (ResNet) and distances to reference photos.

Two faces of one person are usually closer than 0.6 in this embedding space (dlib's documented
operating point, ~99.4% on LFW), hence the default threshold.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.face.detect import detect_faces, predict_landmarks, to_gray
from faceswap.face.models import get_model, model_lock

REFERENCE_MAX_SIDE = 1024  # reference photos can be huge; faces in them are large


def face_embedding(
    image_bgr: np.ndarray, landmarks: np.ndarray, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """128-D embedding of one face given its 68 landmarks (frame pixels)."""
    import dlib

    landmarks = np.asarray(landmarks, dtype=np.float64)
    if box is None:
        x0, y0 = landmarks.min(axis=0)
        x1, y1 = landmarks.max(axis=0)
        box = (int(x0), int(y0), int(x1), int(y1))
    shape = dlib.full_object_detection(
        dlib.rectangle(*(int(v) for v in box)),
        dlib.points([dlib.point(round(x), round(y)) for x, y in landmarks]),
    )
    rgb = (
        cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        if image_bgr.ndim == 3
        else cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
    )
    model = get_model("recognition")
    with model_lock("recognition"):
        vec = model.compute_face_descriptor(rgb, shape)
    return np.asarray(vec, dtype=np.float64)


def nearest_distance(embedding: np.ndarray, references: Iterable[np.ndarray]) -> float:
    """Euclidean distance to the closest reference embedding (inf when there is none)."""
    refs = np.asarray(list(references), dtype=np.float64)
    if refs.size == 0:
        return float("inf")
    return float(np.linalg.norm(refs - embedding[None, :], axis=1).min())


def reference_embedding(image_bgr: np.ndarray | None, name: str, detector: str = "hog") -> np.ndarray:
    """The embedding of the largest face in a reference photo; InvalidArgument when there is none."""
    if image_bgr is None:
        raise InvalidArgument(
            f"reference photo {name!r} cannot be read as an image", field="reference_photos"
        )
    gray = to_gray(image_bgr)
    faces = detect_faces(image_bgr, detector, upsample=1, max_side=REFERENCE_MAX_SIDE, gray=gray)
    if not faces:
        raise InvalidArgument(f"no face found in reference photo {name!r}", field="reference_photos")
    best = max(faces, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    landmarks = predict_landmarks(gray, best.box)
    return face_embedding(image_bgr, landmarks, best.box)
