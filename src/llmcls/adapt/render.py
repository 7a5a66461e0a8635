"""The config that `llmcls init` writes: YAML that a person reads and edits, each chosen key commented with the
measured figure and the reason, under a header that summarises the data."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcls.adapt.choices import Choice, choose, yaml_scalar
from llmcls.adapt.profile import SAMPLE_TEXTS, DataProfile, profile_data
from llmcls.config import DataConfig, load_config, validate_config
from llmcls.errors import ConfigError
from llmcls.events import EventHandler, ignore
from llmcls.fileio import atomic_write_text

SHOWN_CLASSES = 8  # the header names this many classes with their counts
COMMENT_COLUMN = 28  # comments start at this column where the line is shorter


@dataclass
class InitResult:
    path: Path
    profile: DataProfile
    choices: list[Choice]


ENCODER_NAME_SUFFIX = "-lm"  # `init --encoder`'s default run name: the data's name and this


def default_name(train: str) -> str:
    """A run name from the training file: `trec_train.csv` -> trec, `data/sst2/train.csv` -> sst2."""
    path = Path(train)
    stem = re.sub(r"[-_.]?train$", "", path.name.split(".")[0], flags=re.IGNORECASE)
    return stem or path.resolve().parent.name or "run"


def _line(indent: int, key: str, value: Any, comment: str | None = None) -> str:
    text = f"{' ' * indent}{key}: {yaml_scalar(value)}"
    return f"{text.ljust(COMMENT_COLUMN - 1)} # {comment}" if comment else text


def _header(profile: DataProfile, data: DataConfig) -> list[str]:
    held = profile.texts - profile.train_texts
    split = f" ({_n(profile.train_texts)} to train on, {_n(held)} held out for validation)" if held else ""
    shown = ", ".join(f"{label} {_n(n)}" for label, n in list(profile.class_counts.items())[:SHOWN_CLASSES])
    more = f", ... ({profile.classes - SHOWN_CLASSES} more)" if profile.classes > SHOWN_CLASSES else ""
    kind = "multi-label: texts have sets of labels" if profile.multi_label else "single-label"
    p = profile.percentiles
    lengths = (
        f"in {_n(profile.sampled)} sampled texts: p50 {_n(p[50])}, p90 {_n(p[90])}, p95 {_n(p[95])}, "
        f"p99 {_n(p[99])}, max {_n(profile.max_tokens)}"
    )
    encoder = profile.encoder
    command = "llmcls init" if encoder is None else f"llmcls init --encoder {shlex.quote(encoder.spec)}"
    lines = [
        f"# Written by `{command}` from {data.train}: {_n(profile.texts)} texts{split}.",
        f"# {profile.classes} classes ({kind}): {shown}{more}.",
    ]
    if encoder is None:
        return lines + [
            f"# Tokens per text {lengths}; about {_n(profile.tokens_per_epoch)} tokens per epoch.",
            "# The keys below were chosen from these figures (the comments say why); every other key has its default",
            "# (docs/configuration.md). Paths are relative to the directory you run llmcls from. Edit freely.",
        ]
    return lines + [
        f"# WordPiece tokens per text (the encoder's, without [CLS] and [SEP]) {lengths}; the model reads at most "
        f"{_n(encoder.limit)}.",
        "# The keys below were chosen from these figures (the comments say why); every other key has its default",
        "# (docs/configuration.md; with model.encoder, the fine-tuning defaults: AdamW, linear decay, weight decay;",
        "# the BiLSTM's keys, embeddings and vocab are unused). Paths are relative to the directory you run llmcls",
        "# from. Edit freely.",
    ]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def render_config(name: str, data: DataConfig, *, profile: DataProfile, choices: list[Choice]) -> str:
    """The commented YAML of a config: `name`, the data section as given (defaults left out), and `choices`."""
    lines = [*_header(profile, data), f"name: {yaml_scalar(name)}", "data:"]
    for key, value in data.model_dump(mode="json", exclude_defaults=True).items():
        lines.append(_line(2, key, value))
    if profile.multi_label and not data.multi_label:
        lines.append(_line(2, "multi_label", True, "the labels are lists: each text has a set of labels"))
    section = None
    for choice in choices:
        part, leaf = choice.key.split(".")
        if part != section:
            lines.append(f"{part}:")
            section = part
        lines.append(_line(2, leaf, choice.value, choice.reason))
    return "\n".join(lines) + "\n"


def init_config(
    data: dict[str, Any],
    out: Path | None = None,
    *,
    name: str | None = None,
    force: bool = False,
    sample: int = SAMPLE_TEXTS,
    on_event: EventHandler = ignore,
    encoder: str | None = None,
) -> InitResult:
    """Profile the training data, choose settings for it and write them as a commented config.

    Args:
        data: keys of the data section (`train` at least: the paths and how to read them).
        out: the file to write; default `<name>.yaml` in the current directory.
        name: the run name; default from the training file's name (`default_name`), and `-lm` after it for an
            encoder config (its run then sits beside the BiLSTM's of the same data).
        force: replace an existing `out`.
        sample: texts tokenized for the length statistics.
        encoder: `model.encoder` (`minilm` or a model folder): a config that fine-tunes that pretrained model,
            its settings chosen from the lengths in its WordPiece tokens; None: a BiLSTM config.

    Returns:
        Where the config was written, the profile and the choices.

    Raises:
        ConfigError: `out` exists and `force` is not given, a data key is invalid (named), or `encoder` is not a
            usable model.
        DataError: the training file is unreadable.
    """
    # a backbone's run is named apart from the BiLSTM's of the same data (runs/cr-lm beside runs/cr)
    name = name or default_name(str(data.get("train", ""))) + (ENCODER_NAME_SUFFIX if encoder is not None else "")
    settings: dict[str, Any] = {"name": name, "data": data}
    if encoder is not None:
        settings["model"] = {"encoder": encoder}
    config = validate_config(settings, "llmcls init")
    out = Path(out) if out is not None else Path(f"{name}.yaml")
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; give --force to replace it, or --out another file")
    profile = profile_data(config, sample, on_event)
    choices = choose(profile)
    atomic_write_text(out, render_config(name, config.data, profile=profile, choices=choices))
    load_config(out)  # what was written reads back (a failure here is a bug of ours, not the user's)
    return InitResult(out, profile, choices)
