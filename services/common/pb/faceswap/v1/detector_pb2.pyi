from services.common.pb.faceswap.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectOptions(_message.Message):
    __slots__ = ("detector", "upsample", "size", "coverage", "reference_photos", "identity_threshold", "detect_max_side", "save_faces", "faces_prefix", "min_sharpness", "dedupe_distance", "track_interval", "jobs", "min_face", "recover_frames", "fallback")
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    UPSAMPLE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PHOTOS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DETECT_MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    SAVE_FACES_FIELD_NUMBER: _ClassVar[int]
    FACES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    MIN_SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    DEDUPE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    TRACK_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_FIELD_NUMBER: _ClassVar[int]
    RECOVER_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    detector: str
    upsample: int
    size: int
    coverage: float
    reference_photos: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectRef]
    identity_threshold: float
    detect_max_side: int
    save_faces: bool
    faces_prefix: str
    min_sharpness: float
    dedupe_distance: int
    track_interval: int
    jobs: int
    min_face: int
    recover_frames: int
    fallback: str
    def __init__(self, detector: _Optional[str] = ..., upsample: _Optional[int] = ..., size: _Optional[int] = ..., coverage: _Optional[float] = ..., reference_photos: _Optional[_Iterable[_Union[_common_pb2.ObjectRef, _Mapping]]] = ..., identity_threshold: _Optional[float] = ..., detect_max_side: _Optional[int] = ..., save_faces: _Optional[bool] = ..., faces_prefix: _Optional[str] = ..., min_sharpness: _Optional[float] = ..., dedupe_distance: _Optional[int] = ..., track_interval: _Optional[int] = ..., jobs: _Optional[int] = ..., min_face: _Optional[int] = ..., recover_frames: _Optional[int] = ..., fallback: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("left", "top", "right", "bottom")
    LEFT_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_FIELD_NUMBER: _ClassVar[int]
    left: int
    top: int
    right: int
    bottom: int
    def __init__(self, left: _Optional[int] = ..., top: _Optional[int] = ..., right: _Optional[int] = ..., bottom: _Optional[int] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("box", "score", "landmarks", "matrix", "identity_distance", "aligned", "reason", "source", "rotation", "detector")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    box: Box
    score: float
    landmarks: _containers.RepeatedCompositeFieldContainer[Point]
    matrix: _containers.RepeatedScalarFieldContainer[float]
    identity_distance: float
    aligned: _common_pb2.ObjectRef
    reason: str
    source: str
    rotation: int
    detector: str
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., matrix: _Optional[_Iterable[float]] = ..., identity_distance: _Optional[float] = ..., aligned: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., reason: _Optional[str] = ..., source: _Optional[str] = ..., rotation: _Optional[int] = ..., detector: _Optional[str] = ...) -> None: ...

class FrameFaces(_message.Message):
    __slots__ = ("frame_index", "key", "faces", "error", "width", "height", "status", "rejected")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    key: str
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    error: _common_pb2.ErrorStatus
    width: int
    height: int
    status: str
    rejected: _containers.RepeatedCompositeFieldContainer[Face]
    def __init__(self, frame_index: _Optional[int] = ..., key: _Optional[str] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., error: _Optional[_Union[_common_pb2.ErrorStatus, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., status: _Optional[str] = ..., rejected: _Optional[_Iterable[_Union[Face, _Mapping]]] = ...) -> None: ...

class FrameKey(_message.Message):
    __slots__ = ("frame_index", "key")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    key: str
    def __init__(self, frame_index: _Optional[int] = ..., key: _Optional[str] = ...) -> None: ...

class DetectFacesRequest(_message.Message):
    __slots__ = ("frames", "options")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[FrameKey]
    options: DetectOptions
    def __init__(self, frames: _Optional[_Iterable[_Union[FrameKey, _Mapping]]] = ..., options: _Optional[_Union[DetectOptions, _Mapping]] = ...) -> None: ...

class DetectFacesResponse(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[FrameFaces]
    def __init__(self, frames: _Optional[_Iterable[_Union[FrameFaces, _Mapping]]] = ...) -> None: ...

class StreamDetectFacesRequest(_message.Message):
    __slots__ = ("frames", "options")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[FrameKey]
    options: DetectOptions
    def __init__(self, frames: _Optional[_Iterable[_Union[FrameKey, _Mapping]]] = ..., options: _Optional[_Union[DetectOptions, _Mapping]] = ...) -> None: ...

class StreamDetectFacesResponse(_message.Message):
    __slots__ = ("frame",)
    FRAME_FIELD_NUMBER: _ClassVar[int]
    frame: FrameFaces
    def __init__(self, frame: _Optional[_Union[FrameFaces, _Mapping]] = ...) -> None: ...

class ExtractFaceSetRequest(_message.Message):
    __slots__ = ("source_prefix", "output_prefix", "options", "range")
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    source_prefix: str
    output_prefix: str
    options: DetectOptions
    range: _common_pb2.FrameRange
    def __init__(self, source_prefix: _Optional[str] = ..., output_prefix: _Optional[str] = ..., options: _Optional[_Union[DetectOptions, _Mapping]] = ..., range: _Optional[_Union[_common_pb2.FrameRange, _Mapping]] = ...) -> None: ...

class ExtractFaceSetResponse(_message.Message):
    __slots__ = ("frames_total", "faces_total", "frames_without_face", "frames_unreadable", "alignments", "frames_filtered", "faces_rejected", "seconds", "faces_tracked", "faces_interpolated", "faces_rotated")
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FACES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITHOUT_FACE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    ALIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FILTERED_FIELD_NUMBER: _ClassVar[int]
    FACES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    FACES_TRACKED_FIELD_NUMBER: _ClassVar[int]
    FACES_INTERPOLATED_FIELD_NUMBER: _ClassVar[int]
    FACES_ROTATED_FIELD_NUMBER: _ClassVar[int]
    frames_total: int
    faces_total: int
    frames_without_face: int
    frames_unreadable: int
    alignments: _common_pb2.ObjectRef
    frames_filtered: int
    faces_rejected: int
    seconds: float
    faces_tracked: int
    faces_interpolated: int
    faces_rotated: int
    def __init__(self, frames_total: _Optional[int] = ..., faces_total: _Optional[int] = ..., frames_without_face: _Optional[int] = ..., frames_unreadable: _Optional[int] = ..., alignments: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., frames_filtered: _Optional[int] = ..., faces_rejected: _Optional[int] = ..., seconds: _Optional[float] = ..., faces_tracked: _Optional[int] = ..., faces_interpolated: _Optional[int] = ..., faces_rotated: _Optional[int] = ...) -> None: ...
