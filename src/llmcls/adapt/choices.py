"""The settings a data profile suggests, each with a one-line reason: the one place where the adaptive defaults
are decided (`llmcls init` writes them into a config; `auto` values are resolved by them when training starts).
A profile of a BiLSTM config gets the BiLSTM's settings; one of a `model.encoder` config (lengths in the model's
WordPiece tokens) gets fine-tuning settings.

The numbers are first guesses to be tuned by experiment; they are all here, named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from llmcls.adapt.profile import DataProfile, EncoderFacts, profile_data
from llmcls.config import Config, ModelConfig
from llmcls.events import EventHandler, Info, ignore

# tokenizer.max_tokens
SHORT_P99 = 128  # no cut when 99% of texts have at most this many tokens
CUT_PERCENTILE = 95  # otherwise cut near this percentile of the lengths ...
CUT_ROUND_TO = 50  # ... rounded up to a multiple of this
# model.pooling
LONG_P50 = 40  # texts with a median length above this many tokens pool the maximum beside the final states
# model.wide
FRAGMENT_RATIO = 2.0  # validation texts whose median is this many times the training median: training holds fragments
# train.epochs, train.patience
TOKEN_BUDGET = 6_000_000  # training tokens that a run costs: epochs = budget / tokens per epoch ...
MIN_EPOCHS, MAX_EPOCHS = 3, 20  # ... within these bounds
PATIENCE = 3  # stop after this many epochs without a better validation score
# distill.copies
MAX_COPIES = 10  # augmented copies of each training text in a distillation's transfer set ...
TRANSFER_TEXTS = 200_000  # ... fewer where the transfer set would exceed this many texts
# train.lr, train.batch_size
SMALL_LR_TEXTS, SMALL_LR, LR = 10_000, 2e-3, 1e-3  # fewer training texts than this take the larger step
SMALL_BATCH_TEXTS, SMALL_BATCH, BATCH = 5_000, 32, 64  # fewer training texts than this take smaller batches

# With model.encoder: fine-tuning a pretrained BERT-family model, lengths in its WordPiece content tokens.
# tokenizer.max_tokens: length-bucketed batches make the long tail cheap, so the cut keeps nearly every text whole
ENCODER_CUT_PERCENTILE = 99  # cut near this percentile of the lengths ...
ENCODER_CUT_ROUND_TO = 32  # ... rounded up to a multiple of this, and at least this (at most the model's limit)
# train.epochs: a pretrained model needs few passes; small data takes a few more (each pass is few steps)
FEW_TEXTS, FEW_TEXTS_EPOCHS = 5_000, 5  # fewer training texts than this fine-tune this many epochs ...
SOME_TEXTS, SOME_TEXTS_EPOCHS = 20_000, 4  # ... fewer than this, this many ...
MANY_TEXTS_EPOCHS = 3  # ... and more, this many
# train.lr: the step that moves pretrained weights without wrecking them
LARGE_DATA_TEXTS = 50_000  # this many training texts or more take the smaller step (many steps add up)
ENCODER_LR, LARGE_DATA_ENCODER_LR = 1e-4, 5e-5  # for a MiniLM-size model ...
MINILM_HIDDEN, WIDE_ENCODER_LR_SCALE = 384, 0.5  # ... a wider one (BERT-base: 768) takes this share of the step
# train.batch_size, train.warmup_fraction
TINY_DATA_TEXTS, TINY_DATA_ENCODER_BATCH, ENCODER_BATCH = 2_000, 16, 32  # fewer texts: smaller batches, more steps
ENCODER_WARMUP = 0.1  # warm up over this share of the steps: early large updates undo the pretraining
ENCODER_POOLING = "mean"  # model.encoder_pooling: the mean of the final states, as all-MiniLM-L6-v2 was trained


@dataclass(frozen=True)
class Choice:
    """One chosen setting: its dotted config key, the value, and why (one line, with the measured figure)."""

    key: str
    value: Any
    reason: str

    @property
    def shown(self) -> str:
        """The value as the config file writes it: null, false, 550, 0.002."""
        return yaml_scalar(self.value)


def yaml_scalar(value: Any) -> str:
    """One YAML scalar as a flow value (`null`, `0.002`, a string quoted only when it must be)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).removesuffix("\n").removesuffix("\n...")


def _count(n: float) -> str:
    return f"{n:,.0f}"


def choose_max_tokens(profile: DataProfile) -> Choice:
    p50, p99, cut_at = (_count(profile.p(q)) for q in (50, 99, CUT_PERCENTILE))
    lengths = f"p50 {p50}, p99 {p99}, max {_count(profile.max_tokens)}"
    sampled = f"{_count(profile.sampled)} sampled training texts"
    if profile.p(99) <= SHORT_P99:
        return Choice(
            "tokenizer.max_tokens",
            None,
            f"no cut: 99% of {sampled} have at most {p99} tokens (<= {SHORT_P99}; {lengths})",
        )
    cut = math.ceil(profile.p(CUT_PERCENTILE) / CUT_ROUND_TO) * CUT_ROUND_TO
    return Choice(
        "tokenizer.max_tokens", cut, f"{CUT_PERCENTILE}% of {sampled} have at most {cut_at} tokens ({lengths})"
    )


def choose_pooling(profile: DataProfile) -> Choice:
    median = _count(profile.p(50))
    if profile.p(50) > LONG_P50:
        return Choice(
            "model.pooling",
            "last_max",
            f"long texts (median {median} tokens > {LONG_P50}): the maximum over time beside the final states",
        )
    return Choice("model.pooling", "last", f"short texts (median {median} tokens <= {LONG_P50}): the final states")


def choose_wide(profile: DataProfile) -> Choice:
    """The wide n-gram branch, except where the training texts are fragments of the texts to classify (SST-2's
    labelled phrases against its validation sentences): its n-gram weights, fitted to bags of a few n-grams, add
    up differently over a whole sentence, and it cost SST-2 about a point (BENCHMARKS.md, issue 13)."""
    if profile.valid_median is None:
        return Choice("model.wide", True, "the n-gram branch (validation is held out of the training texts)")
    lengths = f"median {_count(profile.valid_median)} validation tokens, {_count(profile.p(50))} training"
    if profile.valid_median >= FRAGMENT_RATIO * max(profile.p(50), 1):
        return Choice(
            "model.wide", False, f"no n-gram branch: training holds fragments ({lengths}; >= {FRAGMENT_RATIO:g}x)"
        )
    return Choice("model.wide", True, f"the n-gram branch (texts alike: {lengths})")


def choose_epochs(profile: DataProfile) -> Choice:
    per_epoch = max(profile.tokens_per_epoch, 1)
    wanted = round(TOKEN_BUDGET / per_epoch)
    epochs = min(max(wanted, MIN_EPOCHS), MAX_EPOCHS)
    bound = "" if epochs == wanted else f", kept within [{MIN_EPOCHS}, {MAX_EPOCHS}]"
    return Choice(
        "train.epochs",
        epochs,
        f"about {_count(TOKEN_BUDGET)} training tokens at ~{_count(per_epoch)} tokens per epoch{bound}",
    )


def choose(profile: DataProfile) -> list[Choice]:
    """The suggested settings of the data `profile`, in the order of the config's sections (fine-tuning ones when
    the profile was measured for `model.encoder`: `choose_for_encoder`)."""
    if profile.encoder is not None:
        return choose_for_encoder(profile, profile.encoder)
    small = f"{_count(profile.train_texts)} training texts"
    return [
        choose_max_tokens(profile),
        choose_pooling(profile),
        choose_wide(profile),
        choose_epochs(profile),
        Choice("train.patience", PATIENCE, f"stop when {PATIENCE} epochs in a row bring no better validation score"),
        Choice(
            "train.lr",
            SMALL_LR if profile.train_texts < SMALL_LR_TEXTS else LR,
            f"{small} ({'<' if profile.train_texts < SMALL_LR_TEXTS else '>='} {_count(SMALL_LR_TEXTS)})",
        ),
        Choice(
            "train.batch_size",
            SMALL_BATCH if profile.train_texts < SMALL_BATCH_TEXTS else BATCH,
            f"{small} ({'<' if profile.train_texts < SMALL_BATCH_TEXTS else '>='} {_count(SMALL_BATCH_TEXTS)})",
        ),
    ]


def _texts(profile: DataProfile, threshold: int) -> str:
    """`600 training texts (< 5,000)`: the training texts against one threshold of a rule."""
    below = profile.train_texts < threshold
    return f"{_count(profile.train_texts)} training texts ({'<' if below else '>='} {_count(threshold)})"


def choose_encoder_max_tokens(profile: DataProfile, encoder: EncoderFacts) -> Choice:
    """The WordPiece cut: the ENCODER_CUT_PERCENTILE length rounded up to a multiple of ENCODER_CUT_ROUND_TO,
    at least that multiple, at most what the model reads. Where the validation texts are longer (SST-2's
    training phrases are fragments of its sentences), their 99th percentile: the cut applies at prediction too,
    and length-bucketed batches make a higher cut cost nothing for the short texts."""
    at = max(profile.p(ENCODER_CUT_PERCENTILE), profile.valid_p99 or 0)
    rounded = max(math.ceil(at / ENCODER_CUT_ROUND_TO), 1) * ENCODER_CUT_ROUND_TO
    cut = min(rounded, encoder.limit)
    lengths = ", ".join(f"p{q} {_count(profile.p(q))}" for q in (50, 95, 99)) + f", max {_count(profile.max_tokens)}"
    if cut < rounded:
        how = f"the model's limit, {_count(encoder.limit)}"
    else:
        least = f" (at least {ENCODER_CUT_ROUND_TO})" if at < ENCODER_CUT_ROUND_TO else ""
        how = f"rounded up to a multiple of {ENCODER_CUT_ROUND_TO}{least}"
    longer_valid = f"; 99% of validation texts at most {_count(at)}" if at > profile.p(ENCODER_CUT_PERCENTILE) else ""
    return Choice(
        "tokenizer.max_tokens",
        cut,
        f"{ENCODER_CUT_PERCENTILE}% of {_count(profile.sampled)} sampled training texts have at most "
        f"{_count(profile.p(ENCODER_CUT_PERCENTILE))} WordPiece tokens ({lengths}{longer_valid}): {how}; "
        "longer texts are cut in training and can be read whole at prediction with chunking "
        "(--chunk-tokens)",
    )


def choose_encoder_epochs(profile: DataProfile) -> Choice:
    texts = f"{_count(profile.train_texts)} training texts"
    if profile.train_texts < FEW_TEXTS:
        return Choice(
            "train.epochs", FEW_TEXTS_EPOCHS, f"{texts} (< {_count(FEW_TEXTS)}): small data takes a few more passes"
        )
    if profile.train_texts < SOME_TEXTS:
        return Choice("train.epochs", SOME_TEXTS_EPOCHS, f"{texts} (>= {_count(FEW_TEXTS)}, < {_count(SOME_TEXTS)})")
    return Choice(
        "train.epochs", MANY_TEXTS_EPOCHS, f"{texts} (>= {_count(SOME_TEXTS)}): a pretrained model needs few passes"
    )


def choose_encoder_lr(profile: DataProfile, encoder: EncoderFacts) -> Choice:
    lr = ENCODER_LR if profile.train_texts < LARGE_DATA_TEXTS else LARGE_DATA_ENCODER_LR
    size = f"hidden size {_count(encoder.hidden_size)}"
    if encoder.hidden_size > MINILM_HIDDEN:
        lr *= WIDE_ENCODER_LR_SCALE
        size += f" (> {MINILM_HIDDEN}, MiniLM's: x{WIDE_ENCODER_LR_SCALE:g} for a wider model)"
    else:
        size += f" (<= {MINILM_HIDDEN}, MiniLM's)"
    return Choice("train.lr", lr, f"{_texts(profile, LARGE_DATA_TEXTS)}, {size}")


def choose_for_encoder(profile: DataProfile, encoder: EncoderFacts) -> list[Choice]:
    """The fine-tuning settings of `model.encoder` for the data `profile` (lengths in the model's WordPiece
    tokens), in the order of the config's sections; the BiLSTM's keys are not among them (they are unused)."""
    small_batch = profile.train_texts < TINY_DATA_TEXTS
    return [
        choose_encoder_max_tokens(profile, encoder),
        Choice(
            "model.encoder",
            encoder.spec,
            f"the pretrained model to fine-tune ({encoder.layers} layers, hidden "
            f"size {_count(encoder.hidden_size)}, at most "
            f"{_count(encoder.limit)} WordPiece tokens a text)",
        ),
        Choice(
            "model.encoder_pooling",
            ENCODER_POOLING,
            "the text's vector is the mean of the final states (as all-MiniLM-L6-v2 was trained)",
        ),
        choose_encoder_epochs(profile),
        Choice("train.patience", PATIENCE, f"stop when {PATIENCE} epochs in a row bring no better validation score"),
        choose_encoder_lr(profile, encoder),
        Choice(
            "train.batch_size",
            TINY_DATA_ENCODER_BATCH if small_batch else ENCODER_BATCH,
            _texts(profile, TINY_DATA_TEXTS) + (": more, smaller steps" if small_batch else ""),
        ),
        Choice(
            "train.warmup_fraction",
            ENCODER_WARMUP,
            f"warm up over the first {ENCODER_WARMUP:.0%} of the steps, "
            "then decay linearly: large early updates undo pretraining",
        ),
    ]


def _unused_with_encoder() -> list[Choice]:
    """The BiLSTM's `auto` keys in an encoder config: unused, so resolved to what changes nothing."""
    return [
        Choice("model.pooling", ModelConfig.model_fields["pooling"].default, "unused with model.encoder"),
        Choice("model.wide", False, "unused with model.encoder: the n-gram branch belongs to the BiLSTM"),
    ]


def choose_copies(profile: DataProfile) -> Choice:
    """distill.copies: `MAX_COPIES` augmented copies of each training text, fewer where the transfer set would
    pass `TRANSFER_TEXTS` (the teacher reads every text of it once, the student every epoch)."""
    copies = max(1, min(MAX_COPIES, round(TRANSFER_TEXTS / max(1, profile.train_texts)) - 1))
    return Choice(
        "distill.copies",
        copies,
        f"{_count(profile.train_texts)} training texts: {_count(profile.train_texts * (copies + 1))} "
        f"in the transfer set (at most {MAX_COPIES} copies, about {_count(TRANSFER_TEXTS)} texts)",
    )


def resolve_auto(config: Config, on_event: EventHandler = ignore) -> Config:
    """`config` with its `auto` values replaced by the choices for its training data (one Info event each); the
    config itself when it has none. With `train.epochs: auto`, `train.patience` is chosen too unless set. With
    `model.encoder`, the choices are the fine-tuning ones (`choose_for_encoder`, lengths in WordPiece tokens).

    Raises:
        ConfigError: `model.encoder` is not a usable model.
        DataError: the training or validation file is unreadable.
    """
    keys = config.auto_keys()
    if not keys:
        return config
    if "train.epochs" in keys and "patience" not in config.train.model_fields_set:
        keys.append("train.patience")
    on_event(Info(f"choosing {', '.join(keys)} from the training data ({config.data.train})"))
    resolved = config.model_copy(deep=True)
    profile = profile_data(config, on_event=on_event)
    extra = (_unused_with_encoder() if profile.encoder is not None else []) + [choose_copies(profile)]
    for choice in choose(profile) + extra:
        if choice.key in keys:
            section, leaf = choice.key.split(".")
            setattr(getattr(resolved, section), leaf, choice.value)
            on_event(Info(f"{choice.key}: {choice.shown} ({choice.reason})"))
    return resolved
