"""Where dlib's model files live, and a per-process cache of the loaded models.

The files come from the ``face_recognition_models`` package. Its ``__init__`` imports
``pkg_resources`` (slow, deprecated, missing in lean setuptools), so the package directory is found
through ``importlib.util.find_spec`` without importing it. ``FACESWAP_DLIB_MODELS`` overrides it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

from faceswap.errors import FailedPrecondition

SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"

_lock = threading.Lock()


@cache
def models_dir() -> Path:
    override = os.environ.get("FACESWAP_DLIB_MODELS")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FailedPrecondition(
            "dlib model files not found: install the face-recognition-models package "
            "or set FACESWAP_DLIB_MODELS to a folder holding the .dat files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise FailedPrecondition(f"dlib model file {path} is missing")
    return path


def _load(name: str) -> Any:
    import dlib  # imported lazily: worker processes and the CLI's --help need not pay for it

    if name == "hog":
        return dlib.get_frontal_face_detector()
    if name == "cnn":
        return dlib.cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR)))
    if name == "landmarks":
        return dlib.shape_predictor(str(model_path(SHAPE_PREDICTOR_68)))
    if name == "recognition":
        return dlib.face_recognition_model_v1(str(model_path(FACE_RECOGNITION)))
    raise KeyError(name)


_cache: dict[str, Any] = {}


def get_model(name: str) -> Any:
    """The loaded model ("hog", "cnn", "landmarks" or "recognition"), once per process.

    dlib models are not documented as thread-safe for concurrent calls, so callers that share one
    across threads hold ``model_lock(name)``.
    """
    with _lock:
        model = _cache.get(name)
        if model is None:
            model = _cache[name] = _load(name)
        return model


_model_locks: dict[str, threading.Lock] = {}


def model_lock(name: str) -> threading.Lock:
    with _lock:
        return _model_locks.setdefault(name, threading.Lock())
