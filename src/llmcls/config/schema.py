"""The whole config (`Config`): its sections, the keys that may be `auto` or change on resume, and validation into
it with one-line messages that name the file and the key."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from llmcls.config.sections import (
    DataConfig,
    EmbeddingsConfig,
    ModelConfig,
    TokenizerConfig,
    VocabConfig,
    _Section,
)
from llmcls.config.training import ENCODER_DEFAULTS, ChunkingConfig, DistillConfig, TrainConfig
from llmcls.errors import ConfigError, clip, echo

# Keys that may be `auto`: chosen from the training data when training starts, and saved resolved.
AUTO_KEYS = ("tokenizer.max_tokens", "model.pooling", "model.wide", "train.epochs", "distill.copies")


def _get(config: BaseModel, key: str) -> Any:
    section, leaf = key.split(".")
    return getattr(getattr(config, section), leaf)


# Keys that may change when a run is resumed: they do not alter what has been computed so far.
SAFE_ON_RESUME = frozenset(
    {
        "train.epochs",
        "train.patience",
        "train.eval_batch_size",
        "train.eval_batch_tokens",
        "train.threads",
        "train.checkpoint_every_steps",
        "train.tensorboard",
        "train.plots",
        "train.export_onnx",
        "tokenizer.cache",
        "tokenizer.cache_dir",
        "tokenizer.predict_max_tokens",
        "chunking.max_tokens",
        "chunking.stride",
        "chunking.aggregate",
    }
)


class Config(_Section):
    """The whole config of one run."""

    name: str = Field("run", min_length=1)
    seed: int = Field(13, ge=0, le=2**32 - 1, description="NumPy's legacy seeding takes at most 2**32 - 1")
    output_dir: str = "runs"
    data: DataConfig
    tokenizer: TokenizerConfig = TokenizerConfig()
    vocab: VocabConfig = VocabConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    distill: DistillConfig = DistillConfig()

    @property
    def uses_encoder(self) -> bool:
        """Whether the run fine-tunes a pretrained language model (model.encoder) rather than the BiLSTM."""
        return self.model.encoder is not None

    @model_validator(mode="after")
    def _encoder_settings(self) -> Config:
        if not self.uses_encoder:
            return self
        if self.model.wide is True and "wide" in self.model.model_fields_set:
            raise ValueError("model.wide: the n-gram branch belongs to the BiLSTM; set it false with model.encoder")
        if self.distill.teacher is not None:
            raise ValueError("distill.teacher: the student must be a BiLSTM config (model.encoder is set)")
        for section, defaults in ENCODER_DEFAULTS.items():
            part = getattr(self, section)
            for key, value in defaults.items():
                if key not in part.model_fields_set:
                    setattr(part, key, value)  # written into the resolved config
        return self

    @model_validator(mode="after")
    def _distill_settings(self) -> Config:
        if self.distill.teacher is not None and self.train.class_weights != "none":
            raise ValueError("train.class_weights: a distilled student learns the teacher's logits; set it to none")
        return self

    @model_validator(mode="after")
    def _embedding_dim_known(self) -> Config:
        if self.embeddings.source == "none" and self.embeddings.dim is None:
            raise ValueError("embeddings.dim is required when embeddings.source is none")
        return self

    @model_validator(mode="after")
    def _multi_label_settings(self) -> Config:
        if self.data.multi_label:
            if "select_metric" not in self.train.model_fields_set:
                self.train.select_metric = "micro_f1"  # written into the resolved config
        else:
            if self.train.select_metric == "micro_f1":
                raise ValueError(
                    "train.select_metric: micro_f1 is for multi-label runs (data.multi_label: true); "
                    "for a single-label run it equals accuracy"
                )
            if self.train.threshold != 0.5:
                raise ValueError("train.threshold applies to multi-label runs only (data.multi_label: true)")
        return self

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def auto_keys(self) -> list[str]:
        """The dotted keys set to `auto`: chosen from the training data when training starts
        (`llmcls.adapt.choices.resolve_auto`)."""
        return [
            key
            for key in AUTO_KEYS
            if _get(self, key) == "auto" and (key != "distill.copies" or self.distill.teacher is not None)
        ]  # used by distillation only

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _known_keys(ann, prefix + name + ".")
    return keys


def _describe(key: str, errors: list[dict[str, Any]]) -> str:
    error, key = errors[0], clip(key)
    if error["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(key, _known_keys(Config), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown key '{key}'{suggestion}"
    if error["type"] == "missing":
        return f"missing required key '{key}'"
    if error["type"] == "value_error":  # our own validators name their keys
        return error["msg"].removeprefix("Value error, ")
    messages = " or ".join(dict.fromkeys(e["msg"] for e in errors))  # a union reports once per member
    return f"{key}: {messages} (got {echo(error.get('input'))})"


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "constrained-int"}


MAX_PROBLEMS = 5  # keys a message names: a file of a thousand wrong keys still makes one short line


def _problems(exc: ValidationError) -> str:
    by_key: dict[str, list[Any]] = {}  # pydantic's ErrorDetails
    for error in exc.errors():
        # drop the union-member tags pydantic puts in the location, e.g. "int" or "literal['none','auto']"
        key = ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in _TYPE_TAGS)))
        by_key.setdefault(key, []).append(error)
    shown = [_describe(key, errors) for key, errors in list(by_key.items())[:MAX_PROBLEMS]]
    more = f"; and {len(by_key) - MAX_PROBLEMS} more keys" if len(by_key) > MAX_PROBLEMS else ""
    return "; ".join(shown) + more


def validate_config(raw: Any, source: str) -> Config:
    """Validate a parsed mapping into a Config.

    Raises:
        ConfigError: naming the source and the first offending key.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_problems(exc)}") from None
