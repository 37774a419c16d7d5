"""DetectOptions: the detector's knobs, one to one with faceswap.v1.DetectOptions, defined once.

The job API checks a submitted job's ``options.detect`` with ``from_proto`` + ``validate`` (a bad value
is refused at submit, naming the field), the detector service maps its requests with ``from_proto``,
``faceswap extract`` generates its flags from the fields. The vocabularies (detectors, fallbacks,
aligned-face sizes, the identity threshold) live here so the job API knows them without dlib;
faceswap/face imports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faceswap.errors import InvalidArgument
from faceswap.options import option, validate

DETECTORS = ("hog", "cnn")
# Rotated / CNN retries when nothing is found: auto (photos only), on (every frame), off.
FALLBACKS = ("auto", "on", "off")
MIN_SIZE, MAX_SIZE = 64, 512  # aligned face size in pixels
DEFAULT_THRESHOLD = 0.6  # 128-D embedding distance: dlib's "same person" threshold
MAX_PIXELS = 16384  # the longest side a frame may have (detect_max_side, min_face)


@dataclass
class DetectOptions:
    """faceswap.v1.DetectOptions. Over the proto a number left 0 (or a string left empty) keeps the
    default here, except ``upsample`` and ``recover_frames``, which are ``optional`` there so 0 can
    be asked for (their old spelling of 0, -1, still means 0)."""

    detector: str = option("hog", choices=DETECTORS, help="face detector")
    upsample: int = option(1, range=(0, 4), help="detector upsampling, finds smaller faces")
    size: int = option(64, range=(MIN_SIZE, MAX_SIZE), help="aligned face size in px")
    coverage: float = option(0.75, range=(0.1, 1.0), help="share of the crop the face spans")
    # Object keys (extract_face_set, gRPC) or local file paths (detect_images, CLI) of reference photos.
    reference_photos: list[str] = field(default_factory=list, metadata={"flag": False})
    identity_threshold: float = option(
        DEFAULT_THRESHOLD,
        range=(0.01, 2.0),
        help="identity distance threshold (with reference photos)",
        aliases=("--threshold",),
    )
    # Video fast path: detect on a copy this long when the faces to find are large enough there
    # (0 = always the full frame, else at least 64). Photos are detected at full resolution.
    detect_max_side: int = option(
        0,
        range=(0, MAX_PIXELS),
        help="video fast path: detect on a copy N px on the long side where the faces seen so far are "
        "large enough there, 0 = always the full frame (else >= 64); photos: always full",
    )
    save_faces: bool = option(True, help="write aligned face crops next to the alignments", flag=False)
    faces_prefix: str = option("", help="prefix aligned crops are written under", flag=False)
    min_sharpness: float = option(
        0.0, range=(0.0, 1e6), help="drop faces blurrier than this (Laplacian variance)"
    )
    dedupe_distance: int = option(
        0,
        range=(0, 64),
        help="drop near-duplicate faces within this 64-bit pHash distance (0 = keep all)",
        aliases=("--dedupe",),
    )
    track_interval: int = option(
        0, range=(0, 10_000), help="re-detect every N frames, track between (0 = off)"
    )
    jobs: int = option(0, range=(0, 1024), help="worker processes (0 = one per core)")
    min_face: int = option(
        0,
        range=(0, MAX_PIXELS),
        help="smallest face to find (box width, frame px); sets the detection scale "
        "(0: full resolution until faces are seen, then by the smallest seen)",
    )
    recover_frames: int = option(
        5,
        range=(0, 10_000),
        help="video: fill runs of up to N frames the detector missed between frames with a face, "
        "by tracking (verified) or interpolation; 0 = off",
    )
    fallback: str = option(
        "auto",
        choices=FALLBACKS,
        help="when nothing is found, retry on the frame turned 90/270/180 degrees and with the cnn "
        "detector: auto = photos only, on = every frame, off",
    )
    # Precomputed 128-D reference embeddings (filled from reference_photos when empty).
    reference_embeddings: list[Any] = field(default_factory=list, repr=False, metadata={"flag": False})

    def validate(self) -> DetectOptions:
        validate(self)
        if 0 < self.detect_max_side < MIN_SIZE:
            raise InvalidArgument(
                f"{self.detect_max_side} is neither 0 nor at least {MIN_SIZE}",
                field="options.detect_max_side",
            )
        return self

    @classmethod
    def from_proto(cls, msg: Any) -> DetectOptions:
        """Zero / empty fields keep the defaults; ``upsample`` and ``recover_frames`` by presence
        (a negative value, their old way to say none, is 0). Validated."""
        defaults = cls()
        if msg is None:
            return defaults.validate()

        def present(name: str, default: int) -> int:
            if not msg.HasField(name):
                return default
            return max(int(getattr(msg, name)), 0)

        return cls(
            detector=msg.detector or defaults.detector,
            upsample=present("upsample", defaults.upsample),
            size=int(msg.size) or defaults.size,
            coverage=float(msg.coverage) or defaults.coverage,
            reference_photos=[ref.key for ref in msg.reference_photos],
            identity_threshold=float(msg.identity_threshold) or defaults.identity_threshold,
            detect_max_side=int(msg.detect_max_side),
            save_faces=msg.save_faces,
            faces_prefix=msg.faces_prefix,
            min_sharpness=float(msg.min_sharpness),
            dedupe_distance=int(msg.dedupe_distance),
            track_interval=int(msg.track_interval),
            jobs=int(msg.jobs),
            min_face=int(msg.min_face),
            recover_frames=present("recover_frames", defaults.recover_frames),
            fallback=msg.fallback or defaults.fallback,
        ).validate()

    def to_proto(self, msg_cls: Any, ref_cls: Any = None, bucket: str = "") -> Any:
        """Every field set explicitly (upsample and recover_frames with presence); reference photos
        as object references when ``ref_cls`` is given."""
        msg = msg_cls(
            detector=self.detector,
            upsample=self.upsample,
            size=self.size,
            coverage=self.coverage,
            identity_threshold=self.identity_threshold,
            detect_max_side=self.detect_max_side,
            save_faces=self.save_faces,
            faces_prefix=self.faces_prefix,
            min_sharpness=self.min_sharpness,
            dedupe_distance=self.dedupe_distance,
            track_interval=self.track_interval,
            jobs=self.jobs,
            min_face=self.min_face,
            recover_frames=self.recover_frames,
            fallback=self.fallback,
        )
        if ref_cls is not None:
            msg.reference_photos.extend(ref_cls(bucket=bucket, key=key) for key in self.reference_photos)
        return msg
