from services.common.pb.faceswap.v1 import common_pb2 as _common_pb2
from services.common.pb.faceswap.v1 import converter_pb2 as _converter_pb2
from services.common.pb.faceswap.v1 import detector_pb2 as _detector_pb2
from services.common.pb.faceswap.v1 import trainer_pb2 as _trainer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLING: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLING: JobState
JOB_STATE_CANCELLED: JobState

class SwapOptions(_message.Message):
    __slots__ = ("detect", "train", "convert", "output_codec", "output_crf", "model_prefix", "skip_evaluate", "evaluate_max_frames")
    DETECT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    CONVERT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CODEC_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CRF_FIELD_NUMBER: _ClassVar[int]
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    SKIP_EVALUATE_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    detect: _detector_pb2.DetectOptions
    train: _trainer_pb2.TrainOptions
    convert: _converter_pb2.ConvertOptions
    output_codec: str
    output_crf: int
    model_prefix: str
    skip_evaluate: bool
    evaluate_max_frames: int
    def __init__(self, detect: _Optional[_Union[_detector_pb2.DetectOptions, _Mapping]] = ..., train: _Optional[_Union[_trainer_pb2.TrainOptions, _Mapping]] = ..., convert: _Optional[_Union[_converter_pb2.ConvertOptions, _Mapping]] = ..., output_codec: _Optional[str] = ..., output_crf: _Optional[int] = ..., model_prefix: _Optional[str] = ..., skip_evaluate: _Optional[bool] = ..., evaluate_max_frames: _Optional[int] = ...) -> None: ...

class SwapJobSpec(_message.Message):
    __slots__ = ("video", "faces_b", "reference_photos", "options")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    FACES_B_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PHOTOS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.ObjectRef
    faces_b: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectRef]
    reference_photos: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectRef]
    options: SwapOptions
    def __init__(self, video: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., faces_b: _Optional[_Iterable[_Union[_common_pb2.ObjectRef, _Mapping]]] = ..., reference_photos: _Optional[_Iterable[_Union[_common_pb2.ObjectRef, _Mapping]]] = ..., options: _Optional[_Union[SwapOptions, _Mapping]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("stage", "done", "total", "eta_seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    done: int
    total: int
    eta_seconds: float
    def __init__(self, stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "state", "progress", "error", "output", "report", "request_id", "spec", "owner", "create_time", "update_time", "preview")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: JobState
    progress: JobProgress
    error: _common_pb2.ErrorStatus
    output: _common_pb2.ObjectRef
    report: _common_pb2.ObjectRef
    request_id: str
    spec: SwapJobSpec
    owner: str
    create_time: str
    update_time: str
    preview: _common_pb2.ObjectRef
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[JobProgress, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorStatus, _Mapping]] = ..., output: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., report: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., request_id: _Optional[str] = ..., spec: _Optional[_Union[SwapJobSpec, _Mapping]] = ..., owner: _Optional[str] = ..., create_time: _Optional[str] = ..., update_time: _Optional[str] = ..., preview: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("sequence", "time", "state", "progress", "message", "preview")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: str
    state: JobState
    progress: JobProgress
    message: str
    preview: _common_pb2.ObjectRef
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[JobProgress, _Mapping]] = ..., message: _Optional[str] = ..., preview: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class SubmitSwapJobRequest(_message.Message):
    __slots__ = ("request_id", "spec")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    spec: SwapJobSpec
    def __init__(self, request_id: _Optional[str] = ..., spec: _Optional[_Union[SwapJobSpec, _Mapping]] = ...) -> None: ...

class SubmitSwapJobResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    created: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("name", "after_sequence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_sequence: int
    def __init__(self, name: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job", "event")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    job: Job
    event: JobEvent
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., event: _Optional[_Union[JobEvent, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("filename", "chunk", "last")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    filename: str
    chunk: bytes
    last: bool
    def __init__(self, filename: _Optional[str] = ..., chunk: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class UploadFileResponse(_message.Message):
    __slots__ = ("object",)
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    object: _common_pb2.ObjectRef
    def __init__(self, object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class DownloadFileRequest(_message.Message):
    __slots__ = ("object",)
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    object: _common_pb2.ObjectRef
    def __init__(self, object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class DownloadFileResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...
