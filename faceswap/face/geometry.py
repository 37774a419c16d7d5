"""Face alignment: Umeyama similarity against a mean-face template, then cv2.warpAffine.

The template is the classic deepfakes/faceswap mean face: landmarks 17..67 of dlib's 68-point
layout in normalised [0, 1] coordinates (eyebrows on top, mouth at the bottom). Points 0..16 (the
jaw) are not used for alignment, because the jaw line moves with pose and expression; they are
included in ``MEAN_FACE_68`` (measured by aligning real faces to the 51-point template and taking the
median) so masks and tests can use a full 68-point mean face.

``coverage`` is the share of the crop's side the template's [0, 1] square spans: 0.75 at 64 px puts
the template in a 48 px square centred in the crop, leaving room for the forehead and chin.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.options.detect import MAX_SIZE, MIN_SIZE

# Landmarks used for the similarity fit: eyebrows, nose, eyes, mouth (dlib indices 17..67).
ALIGN_POINTS = slice(17, 68)

_MEAN_FACE_X = [
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
]  # fmt: skip
_MEAN_FACE_Y = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
]  # fmt: skip
# Jaw (0..16), measured on real faces aligned to the 51-point template, made left/right symmetric.
_MEAN_JAW = [
    [-0.0681, 0.2449], [-0.0613, 0.3928], [-0.0396, 0.5468], [-0.0101, 0.6988], [0.031, 0.8395],
    [0.1045, 0.9685], [0.2134, 1.0732], [0.3452, 1.1522], [0.4901, 1.1752], [0.635, 1.1522],
    [0.7668, 1.0732], [0.8757, 0.9685], [0.9493, 0.8395], [0.9903, 0.6988], [1.0199, 0.5468],
    [1.0415, 0.3928], [1.0483, 0.2449],
]  # fmt: skip

#: 68 x 2 mean face in normalised template coordinates (x right, y down).
MEAN_FACE_68: np.ndarray = np.concatenate(
    [np.asarray(_MEAN_JAW, dtype=np.float64), np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], axis=1)]
)
MEAN_FACE_68.setflags(write=False)

LEFT_EYE = slice(36, 42)  # the subject's right eye, on the image's left
RIGHT_EYE = slice(42, 48)


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
    PAMI 1991. Returns a 3x3 homogeneous matrix T with dst ~= T @ [src, 1].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2:
        raise ValueError(f"umeyama needs two N x D point sets of one shape, got {src.shape} and {dst.shape}")
    num, dim = src.shape
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_demean = src - src_mean
    dst_demean = dst - dst_mean
    cov = dst_demean.T @ src_demean / num  # eq. (38)
    d = np.ones(dim)
    if np.linalg.det(cov) < 0:  # eq. (39): avoid a reflection
        d[-1] = -1
    u, s, vt = np.linalg.svd(cov)
    t = np.eye(dim + 1)
    rank = np.linalg.matrix_rank(cov)
    if rank == 0:
        return np.full((dim + 1, dim + 1), np.nan)
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(vt) > 0:
        t[:dim, :dim] = u @ vt
    elif rank == dim - 1:
        d_adj = d.copy()
        d_adj[-1] = -1
        t[:dim, :dim] = u @ np.diag(d_adj) @ vt
    else:
        t[:dim, :dim] = u @ np.diag(d) @ vt  # eq. (40)
    scale = (s @ d) / src_demean.var(axis=0).sum() if estimate_scale else 1.0  # eq. (42)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean)  # eq. (41)
    t[:dim, :dim] *= scale
    return t


def check_size(size: int, coverage: float) -> None:
    """Raises InvalidArgument for an aligned-face size or coverage the pipeline does not support."""
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise InvalidArgument(
            f"aligned face size must be {MIN_SIZE}..{MAX_SIZE} px, got {size!r}", field="size"
        )
    if not 0.0 < float(coverage) <= 1.0:
        raise InvalidArgument(f"coverage must be in (0, 1], got {coverage!r}", field="coverage")


def template_points(size: int, coverage: float = 0.75) -> np.ndarray:
    """MEAN_FACE_68 in pixel coordinates of a size x size aligned crop."""
    pad = size * (1.0 - coverage) / 2.0
    return MEAN_FACE_68 * (size * coverage) + pad


def alignment_matrix(landmarks: np.ndarray, size: int = 64, coverage: float = 0.75) -> np.ndarray:
    """2x3 matrix mapping frame pixels to a size x size aligned face (for cv2.warpAffine)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise InvalidArgument(f"expected 68 x 2 landmarks, got {landmarks.shape}", field="landmarks")
    unit = umeyama(landmarks[ALIGN_POINTS], MEAN_FACE_68[ALIGN_POINTS], True)[:2]
    # The fit targets the unit template; scale it into the crop and centre it with padding.
    pad = size * (1.0 - coverage) / 2.0
    mat = unit * (size * coverage)
    mat[:, 2] += pad
    return mat


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    """2x3 inverse: aligned-face pixels back to frame pixels."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Applies a 2x3 affine matrix to N x 2 points."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = 64, coverage: float = 0.75
) -> tuple[np.ndarray, np.ndarray]:
    """The aligned size x size crop of one face and its frame -> crop 2x3 matrix."""
    check_size(size, coverage)
    mat = alignment_matrix(landmarks, size, coverage)
    crop = cv2.warpAffine(
        image,
        mat,
        (size, size),
        flags=cv2.INTER_AREA if mat[0, 0] ** 2 + mat[0, 1] ** 2 < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return crop, mat


def eye_centers(landmarks: np.ndarray) -> np.ndarray:
    """2 x 2 array: centre of the image-left eye, centre of the image-right eye."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.stack([landmarks[LEFT_EYE].mean(axis=0), landmarks[RIGHT_EYE].mean(axis=0)])


def paste_back(
    frame: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Warps an aligned face back onto a copy of the frame (hard paste, or alpha with mask)."""
    h, w = frame.shape[:2]
    warped = cv2.warpAffine(
        face, matrix, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    if mask is None:
        mask = np.ones(face.shape[:2], dtype=np.float32)
    alpha = cv2.warpAffine(
        mask.astype(np.float32), matrix, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
    )
    if warped.ndim == 3:
        alpha = alpha[..., None]
    out = frame.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(frame.dtype)
