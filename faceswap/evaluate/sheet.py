"""Contact sheets: source and output face crops side by side, as one BGR image (numpy, OpenCV layout).

- ``face_crop(frame, box)``: a square crop around a face box, resized to ``thumb`` pixels.
- ``contact_sheet(pairs, ...)``: (source crop, output crop) pairs in a grid, each pair captioned.
- ``comparison_sheet(source_crops, rows, ...)``: one row of source crops, then one row per method with
  that method's output crops of the same frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

THUMB = 160  # face crop size, pixels
GAP = 6  # pixels between cells
CAPTION = 18  # caption strip height, pixels
BACKGROUND = (255, 255, 255)
TEXT = (40, 40, 40)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def face_crop(image: np.ndarray, box: Sequence[int], thumb: int = THUMB) -> np.ndarray:
    """Square crop of 1.8x the face box around its centre (forehead, chin and cheeks in view), padded
    with black where it leaves the frame, resized to ``thumb`` x ``thumb``."""
    left, top, right, bottom = (int(v) for v in box)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half = max(1, round(max(right - left, bottom - top) * 0.9))
    x0, y0 = round(cx) - half, round(cy) - half
    x1, y1 = x0 + 2 * half, y0 + 2 * half
    h, w = image.shape[:2]
    crop = np.zeros((2 * half, 2 * half, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    interpolation = cv2.INTER_AREA if 2 * half > thumb else cv2.INTER_CUBIC
    return cv2.resize(crop, (thumb, thumb), interpolation=interpolation)


def _fit(image: np.ndarray, thumb: int) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[:2] != (thumb, thumb):
        image = cv2.resize(image, (thumb, thumb), interpolation=cv2.INTER_AREA)
    return image


def _text(canvas: np.ndarray, text: str, x: int, y: int, width: int, scale: float = 0.42) -> None:
    """ASCII ``text`` at (x, baseline y), cut until it fits ``width`` pixels (OpenCV fonts are ASCII)."""
    text = text.encode("ascii", "replace").decode()
    while len(text) > 1 and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        text = text[:-1]
    cv2.putText(canvas, text, (x, y), FONT, scale, TEXT, 1, cv2.LINE_AA)


def contact_sheet(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    captions: Sequence[str] | None = None,
    *,
    thumb: int = THUMB,
    per_row: int = 4,
    title: str = "",
) -> np.ndarray:
    """A grid of (source crop, output crop) pairs, ``per_row`` pairs a row, each pair with its caption
    below (e.g. "#42 B 0.45"). Crops are BGR uint8 of any size (resized to ``thumb``). Returns a BGR
    uint8 image; an empty ``pairs`` gives a small sheet saying so."""
    captions = list(captions or [])
    per_row = max(1, min(per_row, len(pairs) or 1))
    rows = max(1, -(-len(pairs) // per_row))
    cell_w, cell_h = 2 * thumb + 2, thumb + CAPTION
    top = CAPTION + GAP if title or not pairs else 0
    width = GAP + per_row * (cell_w + GAP)
    height = top + GAP + rows * (cell_h + GAP)
    canvas = np.full((height, max(width, 2 * thumb), 3), BACKGROUND, np.uint8)
    if title or not pairs:
        _text(canvas, title or "no frame with a face", GAP, CAPTION, canvas.shape[1] - 2 * GAP, 0.5)
    for i, (source, output) in enumerate(pairs):
        x = GAP + (i % per_row) * (cell_w + GAP)
        y = top + GAP + (i // per_row) * (cell_h + GAP)
        canvas[y : y + thumb, x : x + thumb] = _fit(source, thumb)
        canvas[y : y + thumb, x + thumb + 2 : x + cell_w] = _fit(output, thumb)
        if i < len(captions):
            _text(canvas, captions[i], x + 2, y + thumb + CAPTION - 5, cell_w - 4)
    return canvas


def comparison_sheet(
    source_crops: Sequence[np.ndarray],
    rows: Sequence[tuple[str, Sequence[np.ndarray | None]]],
    column_captions: Sequence[str] | None = None,
    *,
    thumb: int = 128,
    label_width: int = 130,
) -> np.ndarray:
    """One row of source crops (labelled "source"), then one row per (method name, output crops); crop
    k of every row is the same frame (``None``: that method has no crop there, left grey)."""
    columns = max([len(source_crops), *[len(crops) for _, crops in rows]])
    all_rows = [("source", list(source_crops)), *[(name, list(crops)) for name, crops in rows]]
    top = CAPTION if column_captions else 0
    width = label_width + GAP + max(1, columns) * (thumb + GAP)
    height = top + GAP + len(all_rows) * (thumb + GAP)
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    for k, caption in enumerate(list(column_captions or [])[:columns]):
        _text(canvas, caption, label_width + GAP + k * (thumb + GAP), CAPTION - 5, thumb)
    for r, (name, crops) in enumerate(all_rows):
        y = top + GAP + r * (thumb + GAP)
        _text(canvas, name, GAP, y + thumb // 2 + 5, label_width - GAP, 0.5)
        for k in range(columns):
            x = label_width + GAP + k * (thumb + GAP)
            crop = crops[k] if k < len(crops) else None
            if crop is None:
                canvas[y : y + thumb, x : x + thumb] = 200
            else:
                canvas[y : y + thumb, x : x + thumb] = _fit(crop, thumb)
    return canvas


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode the contact sheet as PNG")
    return data.tobytes()
