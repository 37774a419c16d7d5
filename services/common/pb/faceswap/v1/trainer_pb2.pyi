from services.common.pb.faceswap.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_STATE_UNSPECIFIED: _ClassVar[TrainingState]
    TRAINING_STATE_RUNNING: _ClassVar[TrainingState]
    TRAINING_STATE_STOPPING: _ClassVar[TrainingState]
    TRAINING_STATE_SUCCEEDED: _ClassVar[TrainingState]
    TRAINING_STATE_STOPPED: _ClassVar[TrainingState]
    TRAINING_STATE_FAILED: _ClassVar[TrainingState]
TRAINING_STATE_UNSPECIFIED: TrainingState
TRAINING_STATE_RUNNING: TrainingState
TRAINING_STATE_STOPPING: TrainingState
TRAINING_STATE_SUCCEEDED: TrainingState
TRAINING_STATE_STOPPED: TrainingState
TRAINING_STATE_FAILED: TrainingState

class TrainOptions(_message.Message):
    __slots__ = ("preset", "steps", "batch_size", "learning_rate", "loss", "save_every", "seed", "max_seconds", "warm_start", "allow_foreign_warm_start", "from_scratch", "size", "amp")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    SAVE_EVERY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARM_START_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FOREIGN_WARM_START_FIELD_NUMBER: _ClassVar[int]
    FROM_SCRATCH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    AMP_FIELD_NUMBER: _ClassVar[int]
    preset: str
    steps: int
    batch_size: int
    learning_rate: float
    loss: str
    save_every: int
    seed: int
    max_seconds: float
    warm_start: _common_pb2.ObjectRef
    allow_foreign_warm_start: bool
    from_scratch: bool
    size: int
    amp: str
    def __init__(self, preset: _Optional[str] = ..., steps: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., loss: _Optional[str] = ..., save_every: _Optional[int] = ..., seed: _Optional[int] = ..., max_seconds: _Optional[float] = ..., warm_start: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., allow_foreign_warm_start: _Optional[bool] = ..., from_scratch: _Optional[bool] = ..., size: _Optional[int] = ..., amp: _Optional[str] = ...) -> None: ...

class TrainingStatus(_message.Message):
    __slots__ = ("model_prefix", "state", "step", "total_steps", "loss_a", "loss_b", "samples_per_second", "eta_seconds", "checkpoint", "preview", "error", "message", "warm_start", "data_wait_share", "elapsed_seconds", "preset")
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_A_FIELD_NUMBER: _ClassVar[int]
    LOSS_B_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WARM_START_FIELD_NUMBER: _ClassVar[int]
    DATA_WAIT_SHARE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    model_prefix: str
    state: TrainingState
    step: int
    total_steps: int
    loss_a: float
    loss_b: float
    samples_per_second: float
    eta_seconds: float
    checkpoint: _common_pb2.ObjectRef
    preview: _common_pb2.ObjectRef
    error: _common_pb2.ErrorStatus
    message: str
    warm_start: str
    data_wait_share: float
    elapsed_seconds: float
    preset: str
    def __init__(self, model_prefix: _Optional[str] = ..., state: _Optional[_Union[TrainingState, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss_a: _Optional[float] = ..., loss_b: _Optional[float] = ..., samples_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., checkpoint: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., preview: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorStatus, _Mapping]] = ..., message: _Optional[str] = ..., warm_start: _Optional[str] = ..., data_wait_share: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ..., preset: _Optional[str] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("faces_a_prefix", "faces_b_prefix", "model_prefix", "options")
    FACES_A_PREFIX_FIELD_NUMBER: _ClassVar[int]
    FACES_B_PREFIX_FIELD_NUMBER: _ClassVar[int]
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    faces_a_prefix: str
    faces_b_prefix: str
    model_prefix: str
    options: TrainOptions
    def __init__(self, faces_a_prefix: _Optional[str] = ..., faces_b_prefix: _Optional[str] = ..., model_prefix: _Optional[str] = ..., options: _Optional[_Union[TrainOptions, _Mapping]] = ...) -> None: ...

class StartTrainingResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: TrainingStatus
    def __init__(self, status: _Optional[_Union[TrainingStatus, _Mapping]] = ...) -> None: ...

class GetTrainingRequest(_message.Message):
    __slots__ = ("model_prefix",)
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    model_prefix: str
    def __init__(self, model_prefix: _Optional[str] = ...) -> None: ...

class GetTrainingResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: TrainingStatus
    def __init__(self, status: _Optional[_Union[TrainingStatus, _Mapping]] = ...) -> None: ...

class WatchTrainingRequest(_message.Message):
    __slots__ = ("model_prefix",)
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    model_prefix: str
    def __init__(self, model_prefix: _Optional[str] = ...) -> None: ...

class WatchTrainingResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: TrainingStatus
    def __init__(self, status: _Optional[_Union[TrainingStatus, _Mapping]] = ...) -> None: ...

class StopTrainingRequest(_message.Message):
    __slots__ = ("model_prefix",)
    MODEL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    model_prefix: str
    def __init__(self, model_prefix: _Optional[str] = ...) -> None: ...

class StopTrainingResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: TrainingStatus
    def __init__(self, status: _Optional[_Union[TrainingStatus, _Mapping]] = ...) -> None: ...
