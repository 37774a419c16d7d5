from services.common.pb.faceswap.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VideoInfo(_message.Message):
    __slots__ = ("duration_seconds", "fps", "frame_count", "width", "height", "rotation", "video_codec", "audio_codec", "has_audio", "pixel_format", "container", "audio_duration_seconds")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CODEC_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CODEC_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    PIXEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    fps: _common_pb2.Rational
    frame_count: int
    width: int
    height: int
    rotation: int
    video_codec: str
    audio_codec: str
    has_audio: bool
    pixel_format: str
    container: str
    audio_duration_seconds: float
    def __init__(self, duration_seconds: _Optional[float] = ..., fps: _Optional[_Union[_common_pb2.Rational, _Mapping]] = ..., frame_count: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., rotation: _Optional[int] = ..., video_codec: _Optional[str] = ..., audio_codec: _Optional[str] = ..., has_audio: _Optional[bool] = ..., pixel_format: _Optional[str] = ..., container: _Optional[str] = ..., audio_duration_seconds: _Optional[float] = ...) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ("video",)
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.ObjectRef
    def __init__(self, video: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class ProbeResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: VideoInfo
    def __init__(self, info: _Optional[_Union[VideoInfo, _Mapping]] = ...) -> None: ...

class ExtractFramesRequest(_message.Message):
    __slots__ = ("video", "output_prefix", "image_format", "range", "quality")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.ObjectRef
    output_prefix: str
    image_format: str
    range: _common_pb2.FrameRange
    quality: int
    def __init__(self, video: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., output_prefix: _Optional[str] = ..., image_format: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.FrameRange, _Mapping]] = ..., quality: _Optional[int] = ...) -> None: ...

class ExtractFramesResponse(_message.Message):
    __slots__ = ("frame_count", "index", "info")
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    frame_count: int
    index: _common_pb2.ObjectRef
    info: VideoInfo
    def __init__(self, frame_count: _Optional[int] = ..., index: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., info: _Optional[_Union[VideoInfo, _Mapping]] = ...) -> None: ...

class EncodeVideoRequest(_message.Message):
    __slots__ = ("frames_prefix", "output", "audio_from", "fps", "codec", "crf", "preset", "pixel_format", "lossless")
    FRAMES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FROM_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CRF_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    PIXEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    LOSSLESS_FIELD_NUMBER: _ClassVar[int]
    frames_prefix: str
    output: _common_pb2.ObjectRef
    audio_from: _common_pb2.ObjectRef
    fps: _common_pb2.Rational
    codec: str
    crf: int
    preset: str
    pixel_format: str
    lossless: bool
    def __init__(self, frames_prefix: _Optional[str] = ..., output: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., audio_from: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., fps: _Optional[_Union[_common_pb2.Rational, _Mapping]] = ..., codec: _Optional[str] = ..., crf: _Optional[int] = ..., preset: _Optional[str] = ..., pixel_format: _Optional[str] = ..., lossless: _Optional[bool] = ...) -> None: ...

class EncodeVideoResponse(_message.Message):
    __slots__ = ("output", "frame_count", "info")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    output: _common_pb2.ObjectRef
    frame_count: int
    info: VideoInfo
    def __init__(self, output: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., frame_count: _Optional[int] = ..., info: _Optional[_Union[VideoInfo, _Mapping]] = ...) -> None: ...
