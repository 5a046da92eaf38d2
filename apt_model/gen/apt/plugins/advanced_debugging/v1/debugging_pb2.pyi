from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalysisRequest(_message.Message):
    __slots__ = ("name", "data_path", "batches", "output_name", "seq_len", "batch_size", "seed", "dataset", "metrics_path", "metrics_dataset", "learning_rate", "device", "overwrite", "spike_z", "window", "job_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METRICS_PATH_FIELD_NUMBER: _ClassVar[int]
    METRICS_DATASET_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    SPIKE_Z_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_path: str
    batches: int
    output_name: str
    seq_len: int
    batch_size: int
    seed: int
    dataset: str
    metrics_path: str
    metrics_dataset: str
    learning_rate: float
    device: str
    overwrite: bool
    spike_z: float
    window: int
    job_id: str
    def __init__(self, name: _Optional[str] = ..., data_path: _Optional[str] = ..., batches: _Optional[int] = ..., output_name: _Optional[str] = ..., seq_len: _Optional[int] = ..., batch_size: _Optional[int] = ..., seed: _Optional[int] = ..., dataset: _Optional[str] = ..., metrics_path: _Optional[str] = ..., metrics_dataset: _Optional[str] = ..., learning_rate: _Optional[float] = ..., device: _Optional[str] = ..., overwrite: _Optional[bool] = ..., spike_z: _Optional[float] = ..., window: _Optional[int] = ..., job_id: _Optional[str] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("name", "step", "output_name", "top", "device", "overwrite")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    step: int
    output_name: str
    top: int
    device: str
    overwrite: bool
    def __init__(self, name: _Optional[str] = ..., step: _Optional[int] = ..., output_name: _Optional[str] = ..., top: _Optional[int] = ..., device: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ("run", "steps", "output_name", "device", "overwrite")
    RUN_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    run: str
    steps: int
    output_name: str
    device: str
    overwrite: bool
    def __init__(self, run: _Optional[str] = ..., steps: _Optional[int] = ..., output_name: _Optional[str] = ..., device: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ExportToTrackerRequest(_message.Message):
    __slots__ = ("job_id", "tracker", "log_dir", "name", "metrics_path", "metrics_dataset", "output_name", "overwrite")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METRICS_PATH_FIELD_NUMBER: _ClassVar[int]
    METRICS_DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    tracker: str
    log_dir: str
    name: str
    metrics_path: str
    metrics_dataset: str
    output_name: str
    overwrite: bool
    def __init__(self, job_id: _Optional[str] = ..., tracker: _Optional[str] = ..., log_dir: _Optional[str] = ..., name: _Optional[str] = ..., metrics_path: _Optional[str] = ..., metrics_dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ExportToTrackerResponse(_message.Message):
    __slots__ = ("location", "steps", "scalars", "tags", "files", "warnings", "next_step", "histograms", "hparams")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SCALARS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    HPARAMS_FIELD_NUMBER: _ClassVar[int]
    location: str
    steps: int
    scalars: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    files: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    next_step: str
    histograms: int
    hparams: int
    def __init__(self, location: _Optional[str] = ..., steps: _Optional[int] = ..., scalars: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., files: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., next_step: _Optional[str] = ..., histograms: _Optional[int] = ..., hparams: _Optional[int] = ...) -> None: ...

class GradientFlowResult(_message.Message):
    __slots__ = ("warnings", "model", "output", "steps", "blocks", "frozen", "never_updated", "tied", "verdict", "first_loss", "last_loss")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    NEVER_UPDATED_FIELD_NUMBER: _ClassVar[int]
    TIED_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FIRST_LOSS_FIELD_NUMBER: _ClassVar[int]
    LAST_LOSS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    output: str
    steps: int
    blocks: _containers.RepeatedCompositeFieldContainer[BlockFlow]
    frozen: _containers.RepeatedScalarFieldContainer[str]
    never_updated: _containers.RepeatedScalarFieldContainer[str]
    tied: _containers.RepeatedScalarFieldContainer[str]
    verdict: str
    first_loss: float
    last_loss: float
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., output: _Optional[str] = ..., steps: _Optional[int] = ..., blocks: _Optional[_Iterable[_Union[BlockFlow, _Mapping]]] = ..., frozen: _Optional[_Iterable[str]] = ..., never_updated: _Optional[_Iterable[str]] = ..., tied: _Optional[_Iterable[str]] = ..., verdict: _Optional[str] = ..., first_loss: _Optional[float] = ..., last_loss: _Optional[float] = ...) -> None: ...

class BlockFlow(_message.Message):
    __slots__ = ("name", "grad_norm", "weight_norm", "grad_weight_ratio", "update_weight_ratio", "zero_grad_share", "verdict", "groups")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_NORM_FIELD_NUMBER: _ClassVar[int]
    GRAD_WEIGHT_RATIO_FIELD_NUMBER: _ClassVar[int]
    UPDATE_WEIGHT_RATIO_FIELD_NUMBER: _ClassVar[int]
    ZERO_GRAD_SHARE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    grad_norm: float
    weight_norm: float
    grad_weight_ratio: float
    update_weight_ratio: float
    zero_grad_share: float
    verdict: str
    groups: _containers.RepeatedCompositeFieldContainer[ParameterGroupFlow]
    def __init__(self, name: _Optional[str] = ..., grad_norm: _Optional[float] = ..., weight_norm: _Optional[float] = ..., grad_weight_ratio: _Optional[float] = ..., update_weight_ratio: _Optional[float] = ..., zero_grad_share: _Optional[float] = ..., verdict: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[ParameterGroupFlow, _Mapping]]] = ...) -> None: ...

class ParameterGroupFlow(_message.Message):
    __slots__ = ("name", "grad_norm", "grad_weight_ratio", "update_weight_ratio", "zero_grad_share")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    GRAD_WEIGHT_RATIO_FIELD_NUMBER: _ClassVar[int]
    UPDATE_WEIGHT_RATIO_FIELD_NUMBER: _ClassVar[int]
    ZERO_GRAD_SHARE_FIELD_NUMBER: _ClassVar[int]
    name: str
    grad_norm: float
    grad_weight_ratio: float
    update_weight_ratio: float
    zero_grad_share: float
    def __init__(self, name: _Optional[str] = ..., grad_norm: _Optional[float] = ..., grad_weight_ratio: _Optional[float] = ..., update_weight_ratio: _Optional[float] = ..., zero_grad_share: _Optional[float] = ...) -> None: ...

class ActivationAnalysisResult(_message.Message):
    __slots__ = ("warnings", "model", "output", "batches", "modules", "first_nonfinite_module", "nonfinite_modules")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    FIRST_NONFINITE_MODULE_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_MODULES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    output: str
    batches: int
    modules: _containers.RepeatedCompositeFieldContainer[ModuleActivation]
    first_nonfinite_module: str
    nonfinite_modules: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., output: _Optional[str] = ..., batches: _Optional[int] = ..., modules: _Optional[_Iterable[_Union[ModuleActivation, _Mapping]]] = ..., first_nonfinite_module: _Optional[str] = ..., nonfinite_modules: _Optional[int] = ...) -> None: ...

class ModuleActivation(_message.Message):
    __slots__ = ("name", "mean", "std", "abs_max", "kurtosis", "dead_share", "massive_channels", "nonfinite")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    ABS_MAX_FIELD_NUMBER: _ClassVar[int]
    KURTOSIS_FIELD_NUMBER: _ClassVar[int]
    DEAD_SHARE_FIELD_NUMBER: _ClassVar[int]
    MASSIVE_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    mean: float
    std: float
    abs_max: float
    kurtosis: float
    dead_share: float
    massive_channels: _containers.RepeatedScalarFieldContainer[int]
    nonfinite: bool
    def __init__(self, name: _Optional[str] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., abs_max: _Optional[float] = ..., kurtosis: _Optional[float] = ..., dead_share: _Optional[float] = ..., massive_channels: _Optional[_Iterable[int]] = ..., nonfinite: _Optional[bool] = ...) -> None: ...

class AnomalyDetectionResult(_message.Message):
    __slots__ = ("warnings", "source", "output", "steps", "repeated_steps", "findings", "counts", "metrics")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REPEATED_STEPS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    source: str
    output: str
    steps: int
    repeated_steps: int
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    counts: _containers.ScalarMap[str, int]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., output: _Optional[str] = ..., steps: _Optional[int] = ..., repeated_steps: _Optional[int] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., counts: _Optional[_Mapping[str, int]] = ..., metrics: _Optional[_Iterable[str]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("kind", "step", "end_step", "severity", "metric", "value", "expected", "action")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    END_STEP_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    step: int
    end_step: int
    severity: str
    metric: str
    value: float
    expected: float
    action: str
    def __init__(self, kind: _Optional[str] = ..., step: _Optional[int] = ..., end_step: _Optional[int] = ..., severity: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., expected: _Optional[float] = ..., action: _Optional[str] = ...) -> None: ...

class ProfileResult(_message.Message):
    __slots__ = ("warnings", "model", "output", "steps", "device", "top_operators", "peak_memory_bytes")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TOP_OPERATORS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    output: str
    steps: int
    device: str
    top_operators: _containers.RepeatedCompositeFieldContainer[OperatorTime]
    peak_memory_bytes: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., output: _Optional[str] = ..., steps: _Optional[int] = ..., device: _Optional[str] = ..., top_operators: _Optional[_Iterable[_Union[OperatorTime, _Mapping]]] = ..., peak_memory_bytes: _Optional[int] = ...) -> None: ...

class OperatorTime(_message.Message):
    __slots__ = ("name", "calls", "self_cpu_ms", "cpu_total_ms", "self_device_ms", "self_cpu_memory_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    SELF_CPU_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    SELF_DEVICE_MS_FIELD_NUMBER: _ClassVar[int]
    SELF_CPU_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    calls: int
    self_cpu_ms: float
    cpu_total_ms: float
    self_device_ms: float
    self_cpu_memory_bytes: int
    def __init__(self, name: _Optional[str] = ..., calls: _Optional[int] = ..., self_cpu_ms: _Optional[float] = ..., cpu_total_ms: _Optional[float] = ..., self_device_ms: _Optional[float] = ..., self_cpu_memory_bytes: _Optional[int] = ...) -> None: ...

class ReplayResult(_message.Message):
    __slots__ = ("warnings", "model", "output", "step", "micro_batches", "windows", "documents")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MICRO_BATCHES_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    output: str
    step: int
    micro_batches: int
    windows: _containers.RepeatedCompositeFieldContainer[ReplayWindow]
    documents: _containers.RepeatedCompositeFieldContainer[ReplayDocument]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., output: _Optional[str] = ..., step: _Optional[int] = ..., micro_batches: _Optional[int] = ..., windows: _Optional[_Iterable[_Union[ReplayWindow, _Mapping]]] = ..., documents: _Optional[_Iterable[_Union[ReplayDocument, _Mapping]]] = ...) -> None: ...

class ReplayWindow(_message.Message):
    __slots__ = ("micro_batch", "row", "start_token", "loss", "documents")
    MICRO_BATCH_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    START_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    micro_batch: int
    row: int
    start_token: int
    loss: float
    documents: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, micro_batch: _Optional[int] = ..., row: _Optional[int] = ..., start_token: _Optional[int] = ..., loss: _Optional[float] = ..., documents: _Optional[_Iterable[int]] = ...) -> None: ...

class ReplayDocument(_message.Message):
    __slots__ = ("index", "loss", "preview")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    index: int
    loss: float
    preview: str
    def __init__(self, index: _Optional[int] = ..., loss: _Optional[float] = ..., preview: _Optional[str] = ...) -> None: ...

class ProbeResult(_message.Message):
    __slots__ = ("warnings", "run", "output", "checkpoint_step", "steps", "stopped", "first_nonfinite_step", "first_nonfinite_block")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    FIRST_NONFINITE_STEP_FIELD_NUMBER: _ClassVar[int]
    FIRST_NONFINITE_BLOCK_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    run: str
    output: str
    checkpoint_step: int
    steps: _containers.RepeatedCompositeFieldContainer[ProbeStep]
    stopped: str
    first_nonfinite_step: int
    first_nonfinite_block: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., run: _Optional[str] = ..., output: _Optional[str] = ..., checkpoint_step: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[ProbeStep, _Mapping]]] = ..., stopped: _Optional[str] = ..., first_nonfinite_step: _Optional[int] = ..., first_nonfinite_block: _Optional[int] = ...) -> None: ...

class ProbeStep(_message.Message):
    __slots__ = ("step", "loss", "lr", "grad_norm", "blocks")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    lr: float
    grad_norm: float
    blocks: _containers.RepeatedCompositeFieldContainer[ProbeBlock]
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ..., lr: _Optional[float] = ..., grad_norm: _Optional[float] = ..., blocks: _Optional[_Iterable[_Union[ProbeBlock, _Mapping]]] = ...) -> None: ...

class ProbeBlock(_message.Message):
    __slots__ = ("block", "grad_norm", "weight_norm", "update_ratio", "output_rms", "output_abs_max", "nonfinite")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_NORM_FIELD_NUMBER: _ClassVar[int]
    UPDATE_RATIO_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_RMS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ABS_MAX_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_FIELD_NUMBER: _ClassVar[int]
    block: int
    grad_norm: float
    weight_norm: float
    update_ratio: float
    output_rms: float
    output_abs_max: float
    nonfinite: bool
    def __init__(self, block: _Optional[int] = ..., grad_norm: _Optional[float] = ..., weight_norm: _Optional[float] = ..., update_ratio: _Optional[float] = ..., output_rms: _Optional[float] = ..., output_abs_max: _Optional[float] = ..., nonfinite: _Optional[bool] = ...) -> None: ...
