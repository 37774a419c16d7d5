"""One face, one frame: crop the aligned face out, and put the swapped face back in.

All work after inference happens in a region of interest (ROI): the bounding box of the aligned
square warped back into the frame. A 1280x720 frame with a 300 px face then costs a 300x300 warp,
mask and blend instead of full-frame ones, and every pixel outside the ROI is untouched by
construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from faceswap.composite import appearance
from faceswap.composite.blend import alpha_blend, blend
from faceswap.composite.color import correct
from faceswap.composite.mask import build_mask
from faceswap.composite.reshape import lock_expression
from faceswap.options.convert import ConvertOptions

if TYPE_CHECKING:
    from faceswap.composite.face_bank import FaceBank


@dataclass
class FacePlan:
    """What the converter needs for one face: matrix to the model's input square (2x3, frame px
    -> model px, already smoothed) and the (smoothed) landmarks in frame pixels."""

    slot: int
    matrix: np.ndarray
    landmarks: np.ndarray
    # Faces of B per region with weights (appearance methods; None for the autoencoder's).
    sources: dict[str, list[tuple[int, float]]] | None = None


def refit_matrix(
    matrix: np.ndarray, align_size: int, align_coverage: float, model_size: int, model_coverage: float
) -> np.ndarray:
    """Maps an alignments matrix onto the model's input square when size or coverage differ.

    Aligned points are ``template * size * coverage + pad``: moving to another square scales them
    about its centre by (size' * coverage') / (size * coverage)."""
    m = np.asarray(matrix, np.float64)
    if align_size == model_size and math.isclose(align_coverage, model_coverage):
        return m
    k = (model_size * model_coverage) / (align_size * align_coverage)
    out = k * m
    out[:, 2] += model_size / 2 - k * align_size / 2
    return out


def crop_face(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The model's input: the aligned size x size face (same warp as the detector's align_face)."""
    downscale = matrix[0, 0] ** 2 + matrix[0, 1] ** 2 < 1
    return cv2.warpAffine(
        frame,
        matrix,
        (size, size),
        flags=cv2.INTER_AREA if downscale else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def face_roi(matrix: np.ndarray, size: int, width: int, height: int, margin: int = 2) -> tuple[int, ...]:
    """(x0, y0, x1, y1): the frame box covered by the aligned square, clipped to the frame."""
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    x0 = max(math.floor(pts[:, 0].min()) - margin, 0)
    y0 = max(math.floor(pts[:, 1].min()) - margin, 0)
    x1 = min(math.ceil(pts[:, 0].max()) + margin, width)
    y1 = min(math.ceil(pts[:, 1].max()) + margin, height)
    return x0, y0, x1, y1


@dataclass
class Pasted:
    """Where a face went: its ROI box in the frame and the alpha mask used there."""

    box: tuple[int, int, int, int]
    alpha: np.ndarray


def paste_real_face(
    frame: np.ndarray,
    plan: FacePlan,
    face: np.ndarray | None,
    bank: FaceBank,
) -> Pasted | None:
    """The appearance methods: B's real faces (``plan.sources``) placed on A's face, relit with A's
    light; with the decoder's ``face`` (hybrid) its shape and expression under B's detail."""
    if plan.sources is None:
        return None
    h, w = frame.shape[:2]
    box = appearance.roi_box(plan.landmarks, w, h)
    x0, y0, x1, y1 = box
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    roi = frame[y0:y1, x0:x1]
    decoded = None if face is None else appearance.decoded_in_roi(face, plan.matrix, box)
    composed = appearance.compose(
        roi, plan.landmarks, box, plan.sources, bank.images, bank.index.landmarks, decoded
    )
    if not composed.alpha.any():
        return None
    frame[y0:y1, x0:x1] = alpha_blend(composed.face, roi, composed.alpha)
    return Pasted(box, composed.alpha)


def paste_face(
    frame: np.ndarray,
    plan: FacePlan,
    face: np.ndarray | None,
    predicted: np.ndarray | None,
    options: ConvertOptions,
    bank: FaceBank | None = None,
) -> Pasted | None:
    """Warps the swapped face (float32 BGR 0..255, size x size) back into ``frame`` in place:
    mask, colour-correct, blend. None when the face lies outside the frame (nothing changed)."""
    if options.needs_faces_b:
        if bank is None:
            raise ValueError(f"method {options.method!r} needs B's face bank")
        return paste_real_face(frame, plan, face if options.method == "hybrid" else None, bank)
    assert face is not None
    size = face.shape[0]
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = face_roi(plan.matrix, size, w, h)
    if options.geometry == "source":
        # Keep A's expression: move the drawn face's landmarks onto A's (in aligned pixels).
        target = plan.landmarks @ plan.matrix[:, :2].T + plan.matrix[:, 2]
        face, predicted, _ = lock_expression(face, target, predicted)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    roi = frame[y0:y1, x0:x1]
    shape = (y1 - y0, x1 - x0)
    # The same transform expressed in ROI coordinates.
    m = plan.matrix.copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    dsize = (shape[1], shape[0])
    inverse = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
    # REFLECT fills the ROI corners with plausible face texture for colour stats and cloning;
    # the mask (limited to ``valid``) decides what is actually used.
    swapped = cv2.warpAffine(face, m, dsize, flags=inverse, borderMode=cv2.BORDER_REFLECT)
    valid = cv2.warpAffine(
        np.full((size, size), 255, np.uint8), m, dsize, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST
    )
    valid = cv2.erode(valid, np.ones((3, 3), np.uint8))
    mask_back = None
    if predicted is not None:
        mask_back = cv2.warpAffine(predicted, m, dsize, flags=inverse, borderMode=cv2.BORDER_CONSTANT)
    # Mask sizes are given at the aligned face's scale; convert to frame pixels.
    px = 1.0 / math.sqrt(abs(np.linalg.det(plan.matrix[:, :2])))
    landmarks = plan.landmarks - np.array([x0, y0], np.float64)
    alpha = build_mask(
        options.mask,
        landmarks,
        shape,
        options.mask_erode * px,
        options.mask_blur * px,
        predicted=mask_back,
        valid=valid,
    )
    if not alpha.any():
        return None
    region = alpha >= 0.5
    if not region.any():
        region = alpha > 0
    corrected = correct(options.color, swapped, roi, region)
    frame[y0:y1, x0:x1] = blend(options.blend, corrected, roi, alpha)
    return Pasted((x0, y0, x1, y1), alpha)
