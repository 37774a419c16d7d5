"""Frames from a camera (a V4L2 device such as /dev/video0, or an OpenCV device index): the one place a
capture device is opened. Files go through ``faceswap.media.frames.read_frames`` (ffmpeg)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from faceswap.errors import InvalidArgument


def is_camera(source: str | int) -> bool:
    text = str(source)
    return text.isdigit() or text.startswith("/dev/video")


def open_camera(source: str | int) -> tuple[Iterator[np.ndarray], float]:
    """(BGR frames as the camera delivers them, its nominal frame rate; 30 when it does not say)."""
    device: str | int = int(source) if str(source).isdigit() else str(source)
    cap = cv2.VideoCapture(device)
    if not cap.isOpened():
        cap.release()
        raise InvalidArgument(f"cannot open the camera {source}", field="input")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 30.0)

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    return
                yield image
        finally:
            cap.release()

    return frames(), fps
