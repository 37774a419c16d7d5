"""dlib face analysis for the metrics: HOG detection, 68 landmarks and the 128-D identity embedding.

The model files are found by the library's lookup (``faceswap.face.models``: FACESWAP_DLIB_MODELS,
else the ``face_recognition_models`` package).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from faceswap.face.models import FACE_RECOGNITION, SHAPE_PREDICTOR_68, model_path

LANDMARKS_FILE = SHAPE_PREDICTOR_68
EMBEDDING_FILE = FACE_RECOGNITION
# dlib's own same-person threshold for its 128-D embedding (LFW accuracy 99.38% at 0.6).
SAME_PERSON_DISTANCE = 0.6


@dataclass(frozen=True)
class Face:
    """One detected face in full-resolution frame coordinates."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)


class FaceAnalyzer:
    """Loads the dlib models once; methods take BGR uint8 images (OpenCV's layout)."""

    _shared: FaceAnalyzer | None = None
    _lock = threading.Lock()

    def __init__(self, detect_max_side: int = 640, upsample: int = 1) -> None:
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model_path(LANDMARKS_FILE)))
        self._encoder = dlib.face_recognition_model_v1(str(model_path(EMBEDDING_FILE)))
        # dlib's DNN keeps working buffers in the net object: one call at a time per instance (the
        # orchestrator may evaluate two jobs in threads; dlib holds the GIL anyway, so nothing is lost).
        self._busy = threading.Lock()

    @classmethod
    def shared(cls) -> FaceAnalyzer:
        """A process-wide instance: loading the models takes ~0.5 s, so do it once."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def detect(self, image_bgr: np.ndarray, max_side: int | None = None, retry: bool = True) -> list[Face]:
        """HOG faces, largest first, in full-resolution coordinates.

        Detection runs on a copy scaled to ``max_side`` (small images are scaled up to 320 px so face
        crops still yield a face), first without upsampling (4x cheaper, finds faces >= 80 px there),
        then, when ``retry`` and nothing was found, with ``self.upsample``."""
        max_side = max_side or self.detect_max_side
        height, width = image_bgr.shape[:2]
        longest = max(height, width)
        scale = max_side / longest if longest > max_side else (320 / longest if longest < 320 else 1.0)
        small = image_bgr if scale == 1.0 else cv2.resize(image_bgr, None, fx=scale, fy=scale)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        with self._busy:
            rects, scores, _ = self._detector.run(rgb, 0, 0.0)
            if not len(rects) and retry and self.upsample > 0:
                rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            box = (
                max(0, round(rect.left() / scale)),
                max(0, round(rect.top() / scale)),
                min(width, round(rect.right() / scale)),
                min(height, round(rect.bottom() / scale)),
            )
            faces.append(Face(box, float(score)))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def landmarks(self, image_bgr: np.ndarray, box: tuple[int, int, int, int]) -> dlib.full_object_detection:
        rgb = _rgb(image_bgr)
        with self._busy:
            return self._predictor(rgb, dlib.rectangle(*[int(v) for v in box]))

    def embed(self, image_bgr: np.ndarray, shape: dlib.full_object_detection) -> np.ndarray:
        """128-D embedding of the face whose 68 landmarks are ``shape`` (no jitter: deterministic)."""
        rgb = _rgb(image_bgr)
        with self._busy:
            return np.asarray(self._encoder.compute_face_descriptor(rgb, shape), dtype=np.float64)

    def analyse(self, image_bgr: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(68x2 landmarks, 128-D embedding) of the face in ``box``; one RGB conversion for both."""
        rgb = _rgb(image_bgr)
        with self._busy:
            shape = self._predictor(rgb, dlib.rectangle(*[int(v) for v in box]))
            embedding = np.asarray(self._encoder.compute_face_descriptor(rgb, shape), dtype=np.float64)
        return shape_to_array(shape), embedding


def _rgb(image_bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))


def shape_to_array(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
