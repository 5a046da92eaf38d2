from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CotTrainingRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "max_steps", "target", "ablation", "batch_size", "learning_rate", "seed", "eval_questions", "max_new_tokens", "eval_every", "checkpoint_every", "resume", "overwrite", "device", "warmup_steps", "workers", "nodes", "sharding")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ABLATION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EVAL_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EVAL_EVERY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    max_steps: int
    target: str
    ablation: bool
    batch_size: int
    learning_rate: float
    seed: int
    eval_questions: int
    max_new_tokens: int
    eval_every: int
    checkpoint_every: int
    resume: bool
    overwrite: bool
    device: str
    warmup_steps: int
    workers: int
    nodes: int
    sharding: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., max_steps: _Optional[int] = ..., target: _Optional[str] = ..., ablation: _Optional[bool] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., seed: _Optional[int] = ..., eval_questions: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., eval_every: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., resume: _Optional[bool] = ..., overwrite: _Optional[bool] = ..., device: _Optional[str] = ..., warmup_steps: _Optional[int] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ...) -> None: ...

class VerifierTrainingRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "max_steps", "kind", "batch_size", "learning_rate", "seed", "corrupt_rate", "eval_examples", "checkpoint_every", "resume", "overwrite", "device", "workers", "nodes", "sharding")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_RATE_FIELD_NUMBER: _ClassVar[int]
    EVAL_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    max_steps: int
    kind: str
    batch_size: int
    learning_rate: float
    seed: int
    corrupt_rate: float
    eval_examples: int
    checkpoint_every: int
    resume: bool
    overwrite: bool
    device: str
    workers: int
    nodes: int
    sharding: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., max_steps: _Optional[int] = ..., kind: _Optional[str] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., seed: _Optional[int] = ..., corrupt_rate: _Optional[float] = ..., eval_examples: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., resume: _Optional[bool] = ..., overwrite: _Optional[bool] = ..., device: _Optional[str] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ...) -> None: ...

class TreeSearchRequest(_message.Message):
    __slots__ = ("model", "verifier", "prompt", "beam_width", "max_depth", "strategy", "token_budget", "max_new_tokens", "temperature", "dataset", "max_questions", "output_name", "seed", "device", "overwrite", "expand", "exploration")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MAX_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    EXPAND_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    model: str
    verifier: str
    prompt: str
    beam_width: int
    max_depth: int
    strategy: str
    token_budget: int
    max_new_tokens: int
    temperature: float
    dataset: str
    max_questions: int
    output_name: str
    seed: int
    device: str
    overwrite: bool
    expand: int
    exploration: float
    def __init__(self, model: _Optional[str] = ..., verifier: _Optional[str] = ..., prompt: _Optional[str] = ..., beam_width: _Optional[int] = ..., max_depth: _Optional[int] = ..., strategy: _Optional[str] = ..., token_budget: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., dataset: _Optional[str] = ..., max_questions: _Optional[int] = ..., output_name: _Optional[str] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., overwrite: _Optional[bool] = ..., expand: _Optional[int] = ..., exploration: _Optional[float] = ...) -> None: ...

class GenerateTasksRequest(_message.Message):
    __slots__ = ("output_name", "train_size", "eval_size", "min_steps", "max_steps", "languages", "held_out_templates", "distractor_rate", "max_number", "seed", "overwrite", "held_out_numbers", "countdown_share", "countdown_numbers", "countdown_max_target")
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    EVAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    DISTRACTOR_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    COUNTDOWN_SHARE_FIELD_NUMBER: _ClassVar[int]
    COUNTDOWN_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    COUNTDOWN_MAX_TARGET_FIELD_NUMBER: _ClassVar[int]
    output_name: str
    train_size: int
    eval_size: int
    min_steps: int
    max_steps: int
    languages: _containers.RepeatedScalarFieldContainer[str]
    held_out_templates: int
    distractor_rate: float
    max_number: int
    seed: int
    overwrite: bool
    held_out_numbers: bool
    countdown_share: float
    countdown_numbers: int
    countdown_max_target: int
    def __init__(self, output_name: _Optional[str] = ..., train_size: _Optional[int] = ..., eval_size: _Optional[int] = ..., min_steps: _Optional[int] = ..., max_steps: _Optional[int] = ..., languages: _Optional[_Iterable[str]] = ..., held_out_templates: _Optional[int] = ..., distractor_rate: _Optional[float] = ..., max_number: _Optional[int] = ..., seed: _Optional[int] = ..., overwrite: _Optional[bool] = ..., held_out_numbers: _Optional[bool] = ..., countdown_share: _Optional[float] = ..., countdown_numbers: _Optional[int] = ..., countdown_max_target: _Optional[int] = ...) -> None: ...

class CotTrainingResult(_message.Message):
    __slots__ = ("warnings", "model", "target", "steps", "eval_exact_match", "eval_questions", "eval_unparseable", "loss", "tokens_seen", "ablation_model", "ablation_exact_match", "ablation_unparseable")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    EVAL_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    EVAL_UNPARSEABLE_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SEEN_FIELD_NUMBER: _ClassVar[int]
    ABLATION_MODEL_FIELD_NUMBER: _ClassVar[int]
    ABLATION_EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    ABLATION_UNPARSEABLE_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    target: str
    steps: int
    eval_exact_match: float
    eval_questions: int
    eval_unparseable: int
    loss: float
    tokens_seen: int
    ablation_model: str
    ablation_exact_match: float
    ablation_unparseable: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., target: _Optional[str] = ..., steps: _Optional[int] = ..., eval_exact_match: _Optional[float] = ..., eval_questions: _Optional[int] = ..., eval_unparseable: _Optional[int] = ..., loss: _Optional[float] = ..., tokens_seen: _Optional[int] = ..., ablation_model: _Optional[str] = ..., ablation_exact_match: _Optional[float] = ..., ablation_unparseable: _Optional[int] = ...) -> None: ...

class VerifierTrainingResult(_message.Message):
    __slots__ = ("warnings", "model", "kind", "steps", "loss", "eval_examples", "auroc", "first_wrong_step_accuracy", "step_accuracy")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    EVAL_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    AUROC_FIELD_NUMBER: _ClassVar[int]
    FIRST_WRONG_STEP_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    STEP_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    kind: str
    steps: int
    loss: float
    eval_examples: int
    auroc: float
    first_wrong_step_accuracy: float
    step_accuracy: float
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., kind: _Optional[str] = ..., steps: _Optional[int] = ..., loss: _Optional[float] = ..., eval_examples: _Optional[int] = ..., auroc: _Optional[float] = ..., first_wrong_step_accuracy: _Optional[float] = ..., step_accuracy: _Optional[float] = ...) -> None: ...

class TreeSearchResult(_message.Message):
    __slots__ = ("warnings", "dataset", "strategy", "questions", "exact_match", "unparseable", "tokens_generated", "token_budget", "answer", "tree_json")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    UNPARSEABLE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TREE_JSON_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    dataset: str
    strategy: str
    questions: int
    exact_match: float
    unparseable: int
    tokens_generated: int
    token_budget: int
    answer: str
    tree_json: str
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., dataset: _Optional[str] = ..., strategy: _Optional[str] = ..., questions: _Optional[int] = ..., exact_match: _Optional[float] = ..., unparseable: _Optional[int] = ..., tokens_generated: _Optional[int] = ..., token_budget: _Optional[int] = ..., answer: _Optional[str] = ..., tree_json: _Optional[str] = ...) -> None: ...

class GenerateTasksResult(_message.Message):
    __slots__ = ("warnings", "dataset", "train_rows", "eval_rows", "train_templates", "eval_templates")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    EVAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    EVAL_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    dataset: str
    train_rows: int
    eval_rows: int
    train_templates: _containers.RepeatedScalarFieldContainer[str]
    eval_templates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., dataset: _Optional[str] = ..., train_rows: _Optional[int] = ..., eval_rows: _Optional[int] = ..., train_templates: _Optional[_Iterable[str]] = ..., eval_templates: _Optional[_Iterable[str]] = ...) -> None: ...

class RLTrainingRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "max_steps", "questions_per_step", "group", "loss_type", "beta", "epsilon_low", "epsilon_high", "learning_rate", "temperature", "max_new_tokens", "patience", "eval_questions", "seed", "device", "overwrite", "checkpoint_every", "resume", "format_weight", "verifier", "verifier_weight", "workers", "nodes", "sharding")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    LOSS_TYPE_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    EPSILON_LOW_FIELD_NUMBER: _ClassVar[int]
    EPSILON_HIGH_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    EVAL_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    max_steps: int
    questions_per_step: int
    group: int
    loss_type: str
    beta: float
    epsilon_low: float
    epsilon_high: float
    learning_rate: float
    temperature: float
    max_new_tokens: int
    patience: int
    eval_questions: int
    seed: int
    device: str
    overwrite: bool
    checkpoint_every: int
    resume: bool
    format_weight: float
    verifier: str
    verifier_weight: float
    workers: int
    nodes: int
    sharding: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., max_steps: _Optional[int] = ..., questions_per_step: _Optional[int] = ..., group: _Optional[int] = ..., loss_type: _Optional[str] = ..., beta: _Optional[float] = ..., epsilon_low: _Optional[float] = ..., epsilon_high: _Optional[float] = ..., learning_rate: _Optional[float] = ..., temperature: _Optional[float] = ..., max_new_tokens: _Optional[int] = ..., patience: _Optional[int] = ..., eval_questions: _Optional[int] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., overwrite: _Optional[bool] = ..., checkpoint_every: _Optional[int] = ..., resume: _Optional[bool] = ..., format_weight: _Optional[float] = ..., verifier: _Optional[str] = ..., verifier_weight: _Optional[float] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ...) -> None: ...

class RLTrainingResult(_message.Message):
    __slots__ = ("warnings", "model", "steps", "eval_exact_match", "eval_questions", "eval_unparseable", "stopped", "reward_mean", "frac_reward_zero_std", "entropy", "kl", "completion_length")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    EVAL_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    EVAL_UNPARSEABLE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    REWARD_MEAN_FIELD_NUMBER: _ClassVar[int]
    FRAC_REWARD_ZERO_STD_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    KL_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_LENGTH_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    steps: int
    eval_exact_match: float
    eval_questions: int
    eval_unparseable: int
    stopped: str
    reward_mean: float
    frac_reward_zero_std: float
    entropy: float
    kl: float
    completion_length: float
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., steps: _Optional[int] = ..., eval_exact_match: _Optional[float] = ..., eval_questions: _Optional[int] = ..., eval_unparseable: _Optional[int] = ..., stopped: _Optional[str] = ..., reward_mean: _Optional[float] = ..., frac_reward_zero_std: _Optional[float] = ..., entropy: _Optional[float] = ..., kl: _Optional[float] = ..., completion_length: _Optional[float] = ...) -> None: ...
