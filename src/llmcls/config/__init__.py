"""Typed configuration: YAML files validated into pydantic models, and dotted `--set` overrides.

Every key has a type, a range and a default; unknown keys are rejected. Paths are kept as written and
resolved against the current directory when used. The sections (`sections`, `training`), the whole config and its
validation (`schema`), the bounded YAML reader (`yaml_loader`), and loading, overriding, resuming and saving
(`loading`). Which way a selection metric is better (`is_better`) is said here once, for training, its
schedules and tune.
"""

from llmcls.config.loading import (
    apply_overrides,
    config_drift,
    flatten,
    load_config,
    merge_chunking,
    parse_override,
    save_config,
)
from llmcls.config.schema import AUTO_KEYS, SAFE_ON_RESUME, Config, validate_config
from llmcls.config.sections import (
    MAX_BATCH,
    MAX_BATCH_TOKENS,
    MAX_TOKENS,
    MAX_WIDTH,
    MAX_WORDS,
    DataConfig,
    EmbeddingsConfig,
    ModelConfig,
    TokenizerConfig,
    VocabConfig,
)
from llmcls.config.training import (
    ENCODER_DEFAULTS,
    ChunkingConfig,
    DistillConfig,
    TrainConfig,
    is_better,
    lower_is_better,
)
from llmcls.config.yaml_loader import MAX_ALIAS_VALUES, MAX_YAML_DEPTH, parse_config_text, parse_yaml

__all__ = [
    "AUTO_KEYS",
    "ENCODER_DEFAULTS",
    "MAX_ALIAS_VALUES",
    "MAX_BATCH",
    "MAX_BATCH_TOKENS",
    "MAX_TOKENS",
    "MAX_WIDTH",
    "MAX_WORDS",
    "MAX_YAML_DEPTH",
    "SAFE_ON_RESUME",
    "ChunkingConfig",
    "Config",
    "DataConfig",
    "DistillConfig",
    "EmbeddingsConfig",
    "ModelConfig",
    "TokenizerConfig",
    "TrainConfig",
    "VocabConfig",
    "apply_overrides",
    "config_drift",
    "flatten",
    "is_better",
    "load_config",
    "lower_is_better",
    "merge_chunking",
    "parse_config_text",
    "parse_override",
    "parse_yaml",
    "save_config",
    "validate_config",
]
