"""The config's sections about training, long texts at prediction time (chunking) and distillation, and the
training defaults of a pretrained encoder."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from llmcls.config.sections import MAX_BATCH, MAX_BATCH_TOKENS, MAX_TOKENS, _Section
from llmcls.errors import clip


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of a `train.select_metric` is better: the loss is minimised, the others maximised."""
    return metric == "loss"


def is_better(metric: str, value: float, best: float | None) -> bool:
    """Whether `value` of `metric` beats `best` (None: nothing yet to beat)."""
    return best is None or (value < best if lower_is_better(metric) else value > best)


UNTUNED_THRESHOLD = 0.5  # train.threshold: tune's threshold before it is tuned (while training; a stopped run)


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

    @property
    def fixed_threshold(self) -> float:
        """The threshold every class of a multi-label run has where none was tuned: train.threshold, or 0.5 while
        `tune` waits for the end of training (and for a run that never got there)."""
        return UNTUNED_THRESHOLD if self.threshold == "tune" else float(self.threshold)

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
ENCODER_DEFAULTS: dict[str, dict[str, Any]] = {
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
