from services.common.pb.faceswap.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConvertOptions(_message.Message):
    __slots__ = ("mask", "mask_erode", "mask_blur", "color", "blend", "smooth", "direction", "batch_size", "geometry", "method")
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_ERODE_FIELD_NUMBER: _ClassVar[int]
    MASK_BLUR_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    SMOOTH_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GEOMETRY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    mask: str
    mask_erode: int
    mask_blur: int
    color: str
    blend: str
    smooth: str
    direction: str
    batch_size: int
    geometry: str
    method: str
    def __init__(self, mask: _Optional[str] = ..., mask_erode: _Optional[int] = ..., mask_blur: _Optional[int] = ..., color: _Optional[str] = ..., blend: _Optional[str] = ..., smooth: _Optional[str] = ..., direction: _Optional[str] = ..., batch_size: _Optional[int] = ..., geometry: _Optional[str] = ..., method: _Optional[str] = ...) -> None: ...

class ConvertFramesRequest(_message.Message):
    __slots__ = ("frames_prefix", "alignments", "model_prefix", "output_prefix", "range", "options", "faces_b")
    FRAMES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ALIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FACES_B_FIELD_NUMBER: _ClassVar[int]
    frames_prefix: str
    alignments: _common_pb2.ObjectRef
    model_prefix: str
    output_prefix: str
    range: _common_pb2.FrameRange
    options: ConvertOptions
    faces_b: _common_pb2.ObjectRef
    def __init__(self, frames_prefix: _Optional[str] = ..., alignments: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., model_prefix: _Optional[str] = ..., output_prefix: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.FrameRange, _Mapping]] = ..., options: _Optional[_Union[ConvertOptions, _Mapping]] = ..., faces_b: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class ConvertFramesResponse(_message.Message):
    __slots__ = ("frames_total", "frames_converted", "faces_swapped", "frame_errors", "frames_per_second", "stage_seconds", "wall_seconds")
    class StageSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FRAMES_CONVERTED_FIELD_NUMBER: _ClassVar[int]
    FACES_SWAPPED_FIELD_NUMBER: _ClassVar[int]
    FRAME_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    STAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    frames_total: int
    frames_converted: int
    faces_swapped: int
    frame_errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ErrorStatus]
    frames_per_second: float
    stage_seconds: _containers.ScalarMap[str, float]
    wall_seconds: float
    def __init__(self, frames_total: _Optional[int] = ..., frames_converted: _Optional[int] = ..., faces_swapped: _Optional[int] = ..., frame_errors: _Optional[_Iterable[_Union[_common_pb2.ErrorStatus, _Mapping]]] = ..., frames_per_second: _Optional[float] = ..., stage_seconds: _Optional[_Mapping[str, float]] = ..., wall_seconds: _Optional[float] = ...) -> None: ...
