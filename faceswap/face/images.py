"""Decoding frames and photos: whatever the bytes, an image or None, never an exception."""

from __future__ import annotations

import tempfile

import cv2
import numpy as np

from faceswap.limits import image_size, load_limits


def decode_image(data: bytes) -> np.ndarray | None:
    """BGR uint8 image from encoded bytes, or None when they are not a readable image.

    cv2.imdecode rejects a truncated JPEG outright while cv2.imread keeps the part that decodes
    (the rest grey), so a JPEG that fails in memory gets a second try through a temporary file.
    """
    if not data:
        return None
    # Dimensions from the file's structure first (never decoded when unknown or over the limit): a
    # JPEG whose frame header hides behind 1 MiB of segments or a TIFF named .png is no way around it.
    size = image_size(data)
    if size is None or min(size) <= 0 or max(size) > load_limits().max_resolution:
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None and data[:2] == b"\xff\xd8":
        image = _imread_bytes(data, ".jpg")
    return image if image is not None and image.size else None


def _imread_bytes(data: bytes, suffix: str) -> np.ndarray | None:
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            return cv2.imread(tmp.name, cv2.IMREAD_COLOR)
        except cv2.error:
            return None
