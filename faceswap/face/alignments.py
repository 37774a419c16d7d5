"""The alignments file: what the detector found in every frame, read by trainer and converter.

Schema (JSON, ``version`` 1)::

    {
      "version": 1,
      "size": 64,                # aligned face size in pixels
      "coverage": 0.75,          # share of the crop the landmark template spans
      "detector": "hog",
      "frames": [
        {
          "index": 0,            # frame number in the source
          "key": "jobs/x/frames/00000000.png",   # object key (or file name) of the frame
          "width": 1280, "height": 720,
          "status": "ok",        # ok | no_face | filtered | unreadable
          "reason": "",          # why, when status is not ok
          "faces": [
            {
              "box": [left, top, right, bottom],
              "score": 1.2,                  # detector confidence
              "landmarks": [[x, y], ...],    # 68 points, frame pixels
              "matrix": [[a, b, tx], [c, d, ty]],   # frame -> aligned face (cv2.warpAffine)
              "identity_distance": 0.41,     # to the nearest reference embedding, -1 if none
              "face_key": "faces/00000000_0.png",   # aligned crop, when saved
              "source": "detected",          # detected | tracked | interpolated (see below)
              "rotation": 0,                 # degrees clockwise the frame was turned to find it
              "detector": "hog"              # the detector that found it (hog | cnn)
            }
          ],
          "rejected": [          # faces found but not kept (same fields), each with its reason
            {..., "reason": "identity distance 0.81 > 0.6"}
          ]
        }
      ]
    }

Frames with no face or that could not be read stay in the file with their reason.

``source``: ``detected`` (a detector found the face, on the whole frame or, with tracking, in the
window around its last position); ``tracked`` (a video frame the detector missed: the 68 landmarks
were fitted in the box carried from the neighbouring frame and verified against it by identity
embedding and landmark agreement); ``interpolated`` (missed, and the fit did not verify: landmarks
interpolated between the neighbouring frames' faces). Recovered faces have ``score`` 0.

``rotation``: a face found only after turning the frame (90, 180 or 270 degrees clockwise) still has
its box, landmarks and matrix in the frame's own, unrotated pixels (the matrix rotates it upright),
so consumers need no change; the field says how it was found. The frame's pixels are those of the
decoded image, EXIF orientation applied (as OpenCV decodes it for every consumer).

``source``, ``rotation`` and ``detector`` were added in version 1 with defaults: older files load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from faceswap.errors import InvalidArgument
from faceswap.storage import join_key

VERSION = 1
# A face set under a prefix: {prefix}/alignments.json and the aligned crops {prefix}/faces/*.png.
ALIGNMENTS_NAME = "alignments.json"
FACES_DIR = "faces"
STATUSES = ("ok", "no_face", "filtered", "unreadable")
SOURCES = ("detected", "tracked", "interpolated")


def alignments_key(prefix: str) -> str:
    """The alignments file of the face set under ``prefix``."""
    return join_key(prefix, ALIGNMENTS_NAME)


@dataclass
class FaceRecord:
    box: list[int]
    score: float
    landmarks: list[list[float]]
    matrix: list[list[float]]
    identity_distance: float = -1.0
    face_key: str = ""
    reason: str = ""  # why a face in FrameRecord.rejected was not kept
    source: str = "detected"  # detected | tracked | interpolated
    rotation: int = 0  # degrees clockwise the frame was turned for the detector to find it
    detector: str = ""  # hog | cnn ("" in files written before the field existed)

    @property
    def landmarks_array(self) -> np.ndarray:
        return np.asarray(self.landmarks, dtype=np.float64)

    @property
    def matrix_array(self) -> np.ndarray:
        return np.asarray(self.matrix, dtype=np.float64)


@dataclass
class FrameRecord:
    index: int
    key: str
    width: int = 0
    height: int = 0
    status: str = "ok"
    reason: str = ""
    faces: list[FaceRecord] = field(default_factory=list)
    rejected: list[FaceRecord] = field(default_factory=list)


@dataclass
class Alignments:
    size: int = 64
    coverage: float = 0.75
    detector: str = "hog"
    frames: list[FrameRecord] = field(default_factory=list)
    version: int = VERSION

    def by_index(self) -> dict[int, FrameRecord]:
        return {f.index: f for f in self.frames}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alignments:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise InvalidArgument(
                f"alignments version {data.get('version') if isinstance(data, dict) else None!r} "
                f"is not supported (expected {VERSION})",
                field="alignments",
            )
        try:
            frames = [
                FrameRecord(
                    **{k: v for k, v in f.items() if k not in ("faces", "rejected")},
                    faces=[FaceRecord(**face) for face in f.get("faces", [])],
                    rejected=[FaceRecord(**face) for face in f.get("rejected", [])],
                )
                for f in data["frames"]
            ]
            return cls(
                size=int(data["size"]),
                coverage=float(data["coverage"]),
                detector=str(data.get("detector", "")),
                frames=frames,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"alignments file is malformed: {exc}", field="alignments") from exc

    @classmethod
    def loads(cls, raw: bytes | str) -> Alignments:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"alignments file is not JSON: {exc}", field="alignments") from exc
        return cls.from_dict(data)
