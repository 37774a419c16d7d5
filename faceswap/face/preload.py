"""Imported once by the worker pool's fork server: workers are forked with dlib, OpenCV and the
HOG + 68-landmark models already loaded (shared copy-on-write), so none pays the load time."""

from __future__ import annotations

import logging

from faceswap.face import frame_worker  # noqa: F401  (imports dlib, cv2, numpy)
from faceswap.face.models import get_model

try:
    get_model("hog")
    get_model("landmarks")
except Exception as exc:  # workers load lazily and report the error themselves
    logging.getLogger("faceswap.detector").warning("model preload failed: %s", exc)
