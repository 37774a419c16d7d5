"""Small real face sets for the trainer tests, built from ../shared/data photos with dlib.

The face sets follow the detector's layout ({prefix}/faces/*.png + alignments.json), built here
directly with dlib so the trainer tests do not depend on the detector's extraction options.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceswap.face.alignments import Alignments, FaceRecord, FrameRecord
from faceswap.face.geometry import umeyama
from faceswap.storage import ObjectStore, join_key

SIZE = 64


@dataclass
class RawFace:
    name: str
    frame_shape: tuple[int, int]
    landmarks: np.ndarray  # 68x2 frame pixels
    matrix: np.ndarray  # 2x3 frame -> aligned (at SIZE)
    crop: np.ndarray  # SIZE x SIZE BGR


def _models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "models"


def _template(size: int) -> np.ndarray:
    # Eye centres and mouth centre of an aligned face (coverage ~0.75).
    return np.array([[0.34, 0.40], [0.66, 0.40], [0.50, 0.74]]) * size


def extract_faces(folder: Path, size: int = SIZE) -> list[RawFace]:
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(_models_dir() / "shape_predictor_68_face_landmarks.dat"))
    faces = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        scale = min(1.0, 640 / max(image.shape[:2]))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        dets = detector(rgb, 1)
        if not dets:
            continue
        det = max(dets, key=lambda r: r.width() * r.height())
        shape = predictor(rgb, det)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64) / scale
        anchors = np.array([pts[36:42].mean(0), pts[42:48].mean(0), pts[48:68].mean(0)])
        matrix = umeyama(anchors, _template(size))[:2]
        crop = cv2.warpAffine(
            image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        faces.append(RawFace(path.stem, image.shape[:2], pts, matrix, crop))
    return faces


def write_face_set(store: ObjectStore, prefix: str, faces: list[RawFace], size: int = SIZE) -> str:
    frames = []
    for i, face in enumerate(faces):
        key = f"faces/{i:08d}_0.png"
        crop = face.crop if face.crop.shape[0] == size else cv2.resize(face.crop, (size, size))
        store.put_bytes(join_key(prefix, key), cv2.imencode(".png", crop)[1].tobytes())
        frames.append(
            FrameRecord(
                index=i,
                key=f"{face.name}.jpg",
                width=face.frame_shape[1],
                height=face.frame_shape[0],
                faces=[
                    FaceRecord(
                        box=[0, 0, 1, 1],
                        score=1.0,
                        landmarks=face.landmarks.tolist(),
                        matrix=face.matrix.tolist(),
                        face_key=key,
                    )
                ],
            )
        )
    store.put_bytes(join_key(prefix, "alignments.json"), Alignments(size=size, frames=frames).dumps())
    return prefix
