from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PluginStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLUGIN_STATUS_UNSPECIFIED: _ClassVar[PluginStatus]
    PLUGIN_STATUS_NOT_AVAILABLE_YET: _ClassVar[PluginStatus]
    PLUGIN_STATUS_AVAILABLE: _ClassVar[PluginStatus]
    PLUGIN_STATUS_INSTALLED: _ClassVar[PluginStatus]
    PLUGIN_STATUS_UNHEALTHY: _ClassVar[PluginStatus]
PLUGIN_STATUS_UNSPECIFIED: PluginStatus
PLUGIN_STATUS_NOT_AVAILABLE_YET: PluginStatus
PLUGIN_STATUS_AVAILABLE: PluginStatus
PLUGIN_STATUS_INSTALLED: PluginStatus
PLUGIN_STATUS_UNHEALTHY: PluginStatus

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GatewayStatus(_message.Message):
    __slots__ = ("version", "apt_home", "deployer", "uptime_seconds", "plugins_installed", "plugins_healthy", "jobs_active", "torch_version", "cuda_available")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    APT_HOME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYER_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_HEALTHY_FIELD_NUMBER: _ClassVar[int]
    JOBS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TORCH_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    version: str
    apt_home: str
    deployer: str
    uptime_seconds: float
    plugins_installed: int
    plugins_healthy: int
    jobs_active: int
    torch_version: str
    cuda_available: bool
    def __init__(self, version: _Optional[str] = ..., apt_home: _Optional[str] = ..., deployer: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., plugins_installed: _Optional[int] = ..., plugins_healthy: _Optional[int] = ..., jobs_active: _Optional[int] = ..., torch_version: _Optional[str] = ..., cuda_available: _Optional[bool] = ...) -> None: ...

class FileInfo(_message.Message):
    __slots__ = ("path", "size", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class TokenizerSummary(_message.Message):
    __slots__ = ("vocab_size", "type", "special_tokens", "has_chat_template")
    class SpecialTokensEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HAS_CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    vocab_size: int
    type: str
    special_tokens: _containers.ScalarMap[str, str]
    has_chat_template: bool
    def __init__(self, vocab_size: _Optional[int] = ..., type: _Optional[str] = ..., special_tokens: _Optional[_Mapping[str, str]] = ..., has_chat_template: _Optional[bool] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "architecture", "model_type", "config", "parameters", "dtype", "files", "tokenizer", "lineage", "metrics", "created", "size_bytes", "training_log")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_LOG_FIELD_NUMBER: _ClassVar[int]
    name: str
    architecture: str
    model_type: str
    config: _struct_pb2.Struct
    parameters: int
    dtype: str
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    tokenizer: TokenizerSummary
    lineage: _struct_pb2.Struct
    metrics: _containers.ScalarMap[str, float]
    created: str
    size_bytes: int
    training_log: TrainingLogSummary
    def __init__(self, name: _Optional[str] = ..., architecture: _Optional[str] = ..., model_type: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parameters: _Optional[int] = ..., dtype: _Optional[str] = ..., files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., tokenizer: _Optional[_Union[TokenizerSummary, _Mapping]] = ..., lineage: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., created: _Optional[str] = ..., size_bytes: _Optional[int] = ..., training_log: _Optional[_Union[TrainingLogSummary, _Mapping]] = ...) -> None: ...

class TrainingLogSummary(_message.Message):
    __slots__ = ("steps", "first_loss", "last_loss", "min_loss", "min_loss_step", "max_grad_norm", "max_grad_norm_step", "last_grad_norm", "tokens_per_s", "validation_points", "spikes")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FIRST_LOSS_FIELD_NUMBER: _ClassVar[int]
    LAST_LOSS_FIELD_NUMBER: _ClassVar[int]
    MIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    MIN_LOSS_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_POINTS_FIELD_NUMBER: _ClassVar[int]
    SPIKES_FIELD_NUMBER: _ClassVar[int]
    steps: int
    first_loss: float
    last_loss: float
    min_loss: float
    min_loss_step: int
    max_grad_norm: float
    max_grad_norm_step: int
    last_grad_norm: float
    tokens_per_s: float
    validation_points: int
    spikes: _containers.RepeatedCompositeFieldContainer[LossSpike]
    def __init__(self, steps: _Optional[int] = ..., first_loss: _Optional[float] = ..., last_loss: _Optional[float] = ..., min_loss: _Optional[float] = ..., min_loss_step: _Optional[int] = ..., max_grad_norm: _Optional[float] = ..., max_grad_norm_step: _Optional[int] = ..., last_grad_norm: _Optional[float] = ..., tokens_per_s: _Optional[float] = ..., validation_points: _Optional[int] = ..., spikes: _Optional[_Iterable[_Union[LossSpike, _Mapping]]] = ...) -> None: ...

class LossSpike(_message.Message):
    __slots__ = ("step", "loss", "median_before")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_BEFORE_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    median_before: float
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ..., median_before: _Optional[float] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("name", "training_log")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAINING_LOG_FIELD_NUMBER: _ClassVar[int]
    name: str
    training_log: bool
    def __init__(self, name: _Optional[str] = ..., training_log: _Optional[bool] = ...) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "size_bytes", "parameters", "created", "parent", "operation", "architecture")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    parameters: int
    created: str
    parent: str
    operation: str
    architecture: str
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., parameters: _Optional[int] = ..., created: _Optional[str] = ..., parent: _Optional[str] = ..., operation: _Optional[str] = ..., architecture: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("filter", "order_by", "descending")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    filter: str
    order_by: str
    descending: bool
    def __init__(self, filter: _Optional[str] = ..., order_by: _Optional[str] = ..., descending: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class GetModelSizeRequest(_message.Message):
    __slots__ = ("name", "batch_size", "seq_len")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    batch_size: int
    seq_len: int
    def __init__(self, name: _Optional[str] = ..., batch_size: _Optional[int] = ..., seq_len: _Optional[int] = ...) -> None: ...

class ModelSize(_message.Message):
    __slots__ = ("total_parameters", "trainable_parameters", "parameters_by_module_type", "disk_bytes", "inference_bytes_fp32", "inference_bytes_fp16", "inference_bytes_int8", "training_bytes", "training_breakdown")
    class ParametersByModuleTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_BY_MODULE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_BYTES_FP32_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_BYTES_FP16_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_BYTES_INT8_FIELD_NUMBER: _ClassVar[int]
    TRAINING_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    total_parameters: int
    trainable_parameters: int
    parameters_by_module_type: _containers.ScalarMap[str, int]
    disk_bytes: int
    inference_bytes_fp32: int
    inference_bytes_fp16: int
    inference_bytes_int8: int
    training_bytes: int
    training_breakdown: _struct_pb2.Struct
    def __init__(self, total_parameters: _Optional[int] = ..., trainable_parameters: _Optional[int] = ..., parameters_by_module_type: _Optional[_Mapping[str, int]] = ..., disk_bytes: _Optional[int] = ..., inference_bytes_fp32: _Optional[int] = ..., inference_bytes_fp16: _Optional[int] = ..., inference_bytes_int8: _Optional[int] = ..., training_bytes: _Optional[int] = ..., training_breakdown: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GenerationOptions(_message.Message):
    __slots__ = ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "seed")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DO_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    seed: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., do_sample: _Optional[bool] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class TestModelRequest(_message.Message):
    __slots__ = ("name", "eval_text", "eval_path", "eval_dataset", "prompts", "generation", "max_eval_tokens", "stride")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    EVAL_PATH_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASET_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    MAX_EVAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    name: str
    eval_text: str
    eval_path: str
    eval_dataset: str
    prompts: _containers.RepeatedScalarFieldContainer[str]
    generation: GenerationOptions
    max_eval_tokens: int
    stride: int
    def __init__(self, name: _Optional[str] = ..., eval_text: _Optional[str] = ..., eval_path: _Optional[str] = ..., eval_dataset: _Optional[str] = ..., prompts: _Optional[_Iterable[str]] = ..., generation: _Optional[_Union[GenerationOptions, _Mapping]] = ..., max_eval_tokens: _Optional[int] = ..., stride: _Optional[int] = ...) -> None: ...

class CompareModelsRequest(_message.Message):
    __slots__ = ("names", "eval_text", "eval_path", "eval_dataset", "prompts", "generation", "max_eval_tokens")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    EVAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    EVAL_PATH_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASET_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    MAX_EVAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    eval_text: str
    eval_path: str
    eval_dataset: str
    prompts: _containers.RepeatedScalarFieldContainer[str]
    generation: GenerationOptions
    max_eval_tokens: int
    def __init__(self, names: _Optional[_Iterable[str]] = ..., eval_text: _Optional[str] = ..., eval_path: _Optional[str] = ..., eval_dataset: _Optional[str] = ..., prompts: _Optional[_Iterable[str]] = ..., generation: _Optional[_Union[GenerationOptions, _Mapping]] = ..., max_eval_tokens: _Optional[int] = ...) -> None: ...

class TestModelResult(_message.Message):
    __slots__ = ("name", "parameters", "size_bytes", "device", "perplexity", "nll", "tokens_scored", "eval_seconds", "eval_tokens_per_s", "generations", "prefill_tokens_per_s", "decode_tokens_per_s", "first_token_ms", "per_token_ms", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    NLL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SCORED_FIELD_NUMBER: _ClassVar[int]
    EVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EVAL_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    PER_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    parameters: int
    size_bytes: int
    device: str
    perplexity: float
    nll: float
    tokens_scored: int
    eval_seconds: float
    eval_tokens_per_s: float
    generations: _containers.RepeatedCompositeFieldContainer[Generation]
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    first_token_ms: float
    per_token_ms: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., parameters: _Optional[int] = ..., size_bytes: _Optional[int] = ..., device: _Optional[str] = ..., perplexity: _Optional[float] = ..., nll: _Optional[float] = ..., tokens_scored: _Optional[int] = ..., eval_seconds: _Optional[float] = ..., eval_tokens_per_s: _Optional[float] = ..., generations: _Optional[_Iterable[_Union[Generation, _Mapping]]] = ..., prefill_tokens_per_s: _Optional[float] = ..., decode_tokens_per_s: _Optional[float] = ..., first_token_ms: _Optional[float] = ..., per_token_ms: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("prompt", "text", "prompt_tokens", "new_tokens", "prefill_seconds", "decode_seconds", "prefill_tokens_per_s", "decode_tokens_per_s")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DECODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    text: str
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    def __init__(self, prompt: _Optional[str] = ..., text: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., new_tokens: _Optional[int] = ..., prefill_seconds: _Optional[float] = ..., decode_seconds: _Optional[float] = ..., prefill_tokens_per_s: _Optional[float] = ..., decode_tokens_per_s: _Optional[float] = ...) -> None: ...

class CompareModelsResult(_message.Message):
    __slots__ = ("models", "generations", "best_perplexity", "warnings")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    BEST_PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[TestModelResult]
    generations: _containers.RepeatedCompositeFieldContainer[PromptOutputs]
    best_perplexity: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[_Union[TestModelResult, _Mapping]]] = ..., generations: _Optional[_Iterable[_Union[PromptOutputs, _Mapping]]] = ..., best_perplexity: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class PromptOutputs(_message.Message):
    __slots__ = ("prompt", "outputs")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    outputs: _containers.ScalarMap[str, str]
    def __init__(self, prompt: _Optional[str] = ..., outputs: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DebugModelRequest(_message.Message):
    __slots__ = ("name", "data_path", "data_dataset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_DATASET_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_path: str
    data_dataset: str
    def __init__(self, name: _Optional[str] = ..., data_path: _Optional[str] = ..., data_dataset: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("check", "severity", "message", "hint")
    CHECK_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    check: str
    severity: str
    message: str
    hint: str
    def __init__(self, check: _Optional[str] = ..., severity: _Optional[str] = ..., message: _Optional[str] = ..., hint: _Optional[str] = ...) -> None: ...

class DebugReport(_message.Message):
    __slots__ = ("name", "findings", "healthy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    name: str
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    healthy: bool
    def __init__(self, name: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., healthy: _Optional[bool] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("name", "preset", "size", "config_json", "corpus_paths", "dataset", "text_field", "vocab_size", "tokenizer_from", "seq_len", "batch_size", "grad_accum", "max_steps", "learning_rate", "min_lr_ratio", "warmup_steps", "weight_decay", "grad_clip", "eval_every", "eval_fraction", "seed", "checkpoint_every", "resume", "device", "overwrite", "threads", "max_minutes", "workers", "nodes", "sharding")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CORPUS_PATHS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FROM_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRAD_ACCUM_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    MIN_LR_RATIO_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    EVAL_EVERY_FIELD_NUMBER: _ClassVar[int]
    EVAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    MAX_MINUTES_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    name: str
    preset: str
    size: str
    config_json: str
    corpus_paths: _containers.RepeatedScalarFieldContainer[str]
    dataset: str
    text_field: str
    vocab_size: int
    tokenizer_from: str
    seq_len: int
    batch_size: int
    grad_accum: int
    max_steps: int
    learning_rate: float
    min_lr_ratio: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    eval_every: int
    eval_fraction: float
    seed: int
    checkpoint_every: int
    resume: bool
    device: str
    overwrite: bool
    threads: int
    max_minutes: float
    workers: int
    nodes: int
    sharding: str
    def __init__(self, name: _Optional[str] = ..., preset: _Optional[str] = ..., size: _Optional[str] = ..., config_json: _Optional[str] = ..., corpus_paths: _Optional[_Iterable[str]] = ..., dataset: _Optional[str] = ..., text_field: _Optional[str] = ..., vocab_size: _Optional[int] = ..., tokenizer_from: _Optional[str] = ..., seq_len: _Optional[int] = ..., batch_size: _Optional[int] = ..., grad_accum: _Optional[int] = ..., max_steps: _Optional[int] = ..., learning_rate: _Optional[float] = ..., min_lr_ratio: _Optional[float] = ..., warmup_steps: _Optional[int] = ..., weight_decay: _Optional[float] = ..., grad_clip: _Optional[float] = ..., eval_every: _Optional[int] = ..., eval_fraction: _Optional[float] = ..., seed: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., resume: _Optional[bool] = ..., device: _Optional[str] = ..., overwrite: _Optional[bool] = ..., threads: _Optional[int] = ..., max_minutes: _Optional[float] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ...) -> None: ...

class TrainResult(_message.Message):
    __slots__ = ("model", "train_loss", "steps", "tokens_seen", "train_seconds", "tokens_per_s", "parameters", "val_loss", "val_perplexity", "loss_curve", "val_curve", "warnings")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SEEN_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    LOSS_CURVE_FIELD_NUMBER: _ClassVar[int]
    VAL_CURVE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    train_loss: float
    steps: int
    tokens_seen: int
    train_seconds: float
    tokens_per_s: float
    parameters: int
    val_loss: float
    val_perplexity: float
    loss_curve: _containers.RepeatedCompositeFieldContainer[LossPoint]
    val_curve: _containers.RepeatedCompositeFieldContainer[ValidationPoint]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., train_loss: _Optional[float] = ..., steps: _Optional[int] = ..., tokens_seen: _Optional[int] = ..., train_seconds: _Optional[float] = ..., tokens_per_s: _Optional[float] = ..., parameters: _Optional[int] = ..., val_loss: _Optional[float] = ..., val_perplexity: _Optional[float] = ..., loss_curve: _Optional[_Iterable[_Union[LossPoint, _Mapping]]] = ..., val_curve: _Optional[_Iterable[_Union[ValidationPoint, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class LossPoint(_message.Message):
    __slots__ = ("step", "loss", "lr", "step_seconds", "grad_norm")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    lr: float
    step_seconds: float
    grad_norm: float
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ..., lr: _Optional[float] = ..., step_seconds: _Optional[float] = ..., grad_norm: _Optional[float] = ...) -> None: ...

class ValidationPoint(_message.Message):
    __slots__ = ("step", "loss")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("name", "overwrite", "files")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    name: str
    overwrite: bool
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    def __init__(self, name: _Optional[str] = ..., overwrite: _Optional[bool] = ..., files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("path", "data")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadModelRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: FileChunk
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class DownloadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DownloadModelResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: FileChunk
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DatasetInfo(_message.Message):
    __slots__ = ("name", "files", "size_bytes", "created", "operation", "lineage", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    name: str
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    size_bytes: int
    created: str
    operation: str
    lineage: _struct_pb2.Struct
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., size_bytes: _Optional[int] = ..., created: _Optional[str] = ..., operation: _Optional[str] = ..., lineage: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class DatasetSummary(_message.Message):
    __slots__ = ("name", "size_bytes", "file_count", "created", "operation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    file_count: int
    created: str
    operation: str
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., file_count: _Optional[int] = ..., created: _Optional[str] = ..., operation: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: str
    def __init__(self, filter: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetSummary]
    def __init__(self, datasets: _Optional[_Iterable[_Union[DatasetSummary, _Mapping]]] = ...) -> None: ...

class GetDatasetInfoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UploadDatasetRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: FileChunk
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class DownloadDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DownloadDatasetResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: FileChunk
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PluginInfo(_message.Message):
    __slots__ = ("name", "version", "description", "status", "status_message", "endpoints", "deployer", "replicas", "wants_gpu", "services", "requirements", "install_command")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYER_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    WANTS_GPU_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    INSTALL_COMMAND_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    status: PluginStatus
    status_message: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    deployer: str
    replicas: int
    wants_gpu: bool
    services: _containers.RepeatedScalarFieldContainer[str]
    requirements: _containers.RepeatedScalarFieldContainer[str]
    install_command: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., status: _Optional[_Union[PluginStatus, str]] = ..., status_message: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ..., deployer: _Optional[str] = ..., replicas: _Optional[int] = ..., wants_gpu: _Optional[bool] = ..., services: _Optional[_Iterable[str]] = ..., requirements: _Optional[_Iterable[str]] = ..., install_command: _Optional[str] = ...) -> None: ...

class ListPluginsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPluginsResponse(_message.Message):
    __slots__ = ("plugins",)
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    plugins: _containers.RepeatedCompositeFieldContainer[PluginInfo]
    def __init__(self, plugins: _Optional[_Iterable[_Union[PluginInfo, _Mapping]]] = ...) -> None: ...

class GetPluginRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class InstallPluginRequest(_message.Message):
    __slots__ = ("name", "replicas")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    replicas: int
    def __init__(self, name: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class UninstallPluginRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
