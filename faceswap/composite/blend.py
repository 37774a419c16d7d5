"""Blending the (colour-corrected) swapped face into the frame.

- ``alpha``: feathered alpha compositing with the soft mask.
- ``seamless``: Poisson image editing (``cv2.seamlessClone``): keeps the swapped face's gradients
  and takes the frame's colours at the mask border, so no visible edge remains. The result is then
  composited with the same soft mask, so nothing outside it changes.

Both leave every pixel where alpha == 0 bit-identical to the frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np

log = logging.getLogger(__name__)

BlendFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

# seamlessClone needs the mask strictly inside the destination; a reflected margin guarantees it
# when a face touches the frame border.
_PAD = 4


def alpha_blend(swapped: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composites swapped (float or uint8) over target (uint8) with alpha (0..1). Over the whole
    array, no boolean indexing (faster when the face fills most of it); where alpha is 0 the
    target's pixels come back unchanged (s * 0 + t * 1 is t exactly)."""
    alpha = alpha.astype(np.float32, copy=False)
    mixed = cv2.blendLinear(
        swapped.astype(np.float32, copy=False), target.astype(np.float32), alpha, 1.0 - alpha
    )
    return cv2.convertScaleAbs(np.maximum(mixed, 0))


def seamless_blend(swapped: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    support = np.where(alpha > 0, 255, 0).astype(np.uint8)
    if not support.any():
        return target.copy()
    src = np.clip(np.rint(swapped), 0, 255).astype(np.uint8)
    pad = ((_PAD, _PAD), (_PAD, _PAD), (0, 0))
    src_p = np.pad(src, pad, mode="reflect")
    dst_p = np.pad(target, pad, mode="reflect")
    mask_p = np.pad(support, pad[:2])
    x, y, w, h = cv2.boundingRect(mask_p)
    try:
        # OpenCV places the mask's bounding box with its top-left at center - (w//2, h//2).
        cloned = cv2.seamlessClone(src_p, dst_p, mask_p, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    except cv2.error as exc:  # degenerate masks: fall back rather than fail the frame
        log.debug("seamlessClone failed, using alpha blend: %s", exc)
        return alpha_blend(swapped, target, alpha)
    cloned = cloned[_PAD:-_PAD, _PAD:-_PAD]
    return alpha_blend(cloned, target, alpha)


BLENDS: dict[str, BlendFn] = {"alpha": alpha_blend, "seamless": seamless_blend}


def blend(kind: str, swapped: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return BLENDS[kind](swapped, target, alpha)
