from services.common.pb.faceswap.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_ENCODING_UNSPECIFIED: _ClassVar[FrameEncoding]
    FRAME_ENCODING_JPEG: _ClassVar[FrameEncoding]
    FRAME_ENCODING_RAW_BGR: _ClassVar[FrameEncoding]
FRAME_ENCODING_UNSPECIFIED: FrameEncoding
FRAME_ENCODING_JPEG: FrameEncoding
FRAME_ENCODING_RAW_BGR: FrameEncoding

class LiveImage(_message.Message):
    __slots__ = ("encoding", "data", "width", "height")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    encoding: FrameEncoding
    data: bytes
    width: int
    height: int
    def __init__(self, encoding: _Optional[_Union[FrameEncoding, str]] = ..., data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class LiveOptions(_message.Message):
    __slots__ = ("detect_max_side", "detect_interval", "queue_size", "workers", "output_encoding", "jpeg_quality", "switch_margin", "hold_frames", "crossfade_frames", "smooth_min_cutoff", "smooth_beta", "smoothing_disabled", "max_faces_b", "stall_timeout_s", "reply_patch")
    DETECT_MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    DETECT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    JPEG_QUALITY_FIELD_NUMBER: _ClassVar[int]
    SWITCH_MARGIN_FIELD_NUMBER: _ClassVar[int]
    HOLD_FRAMES_FIELD_NUMBER: _ClassVar[int]
    CROSSFADE_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SMOOTH_MIN_CUTOFF_FIELD_NUMBER: _ClassVar[int]
    SMOOTH_BETA_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_DISABLED_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_B_FIELD_NUMBER: _ClassVar[int]
    STALL_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    REPLY_PATCH_FIELD_NUMBER: _ClassVar[int]
    detect_max_side: int
    detect_interval: int
    queue_size: int
    workers: int
    output_encoding: FrameEncoding
    jpeg_quality: int
    switch_margin: float
    hold_frames: int
    crossfade_frames: int
    smooth_min_cutoff: float
    smooth_beta: float
    smoothing_disabled: bool
    max_faces_b: int
    stall_timeout_s: float
    reply_patch: bool
    def __init__(self, detect_max_side: _Optional[int] = ..., detect_interval: _Optional[int] = ..., queue_size: _Optional[int] = ..., workers: _Optional[int] = ..., output_encoding: _Optional[_Union[FrameEncoding, str]] = ..., jpeg_quality: _Optional[int] = ..., switch_margin: _Optional[float] = ..., hold_frames: _Optional[int] = ..., crossfade_frames: _Optional[int] = ..., smooth_min_cutoff: _Optional[float] = ..., smooth_beta: _Optional[float] = ..., smoothing_disabled: _Optional[bool] = ..., max_faces_b: _Optional[int] = ..., stall_timeout_s: _Optional[float] = ..., reply_patch: _Optional[bool] = ...) -> None: ...

class PatchBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class LiveConfig(_message.Message):
    __slots__ = ("faces_b_path", "faces_b_prefix", "options", "model")
    FACES_B_PATH_FIELD_NUMBER: _ClassVar[int]
    FACES_B_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    faces_b_path: str
    faces_b_prefix: str
    options: LiveOptions
    model: str
    def __init__(self, faces_b_path: _Optional[str] = ..., faces_b_prefix: _Optional[str] = ..., options: _Optional[_Union[LiveOptions, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class LiveReady(_message.Message):
    __slots__ = ("faces_b", "bank_seconds", "bank_cached", "workers", "queue_size")
    FACES_B_FIELD_NUMBER: _ClassVar[int]
    BANK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BANK_CACHED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    faces_b: int
    bank_seconds: float
    bank_cached: bool
    workers: int
    queue_size: int
    def __init__(self, faces_b: _Optional[int] = ..., bank_seconds: _Optional[float] = ..., bank_cached: _Optional[bool] = ..., workers: _Optional[int] = ..., queue_size: _Optional[int] = ...) -> None: ...

class LiveFrame(_message.Message):
    __slots__ = ("config", "sequence", "capture_time", "image", "stage_seconds", "error", "dropped", "face_swapped", "ready", "patch")
    class StageSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    FACE_SWAPPED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    config: LiveConfig
    sequence: int
    capture_time: float
    image: LiveImage
    stage_seconds: _containers.ScalarMap[str, float]
    error: _common_pb2.ErrorStatus
    dropped: _containers.RepeatedScalarFieldContainer[int]
    face_swapped: bool
    ready: LiveReady
    patch: PatchBox
    def __init__(self, config: _Optional[_Union[LiveConfig, _Mapping]] = ..., sequence: _Optional[int] = ..., capture_time: _Optional[float] = ..., image: _Optional[_Union[LiveImage, _Mapping]] = ..., stage_seconds: _Optional[_Mapping[str, float]] = ..., error: _Optional[_Union[_common_pb2.ErrorStatus, _Mapping]] = ..., dropped: _Optional[_Iterable[int]] = ..., face_swapped: _Optional[bool] = ..., ready: _Optional[_Union[LiveReady, _Mapping]] = ..., patch: _Optional[_Union[PatchBox, _Mapping]] = ...) -> None: ...
