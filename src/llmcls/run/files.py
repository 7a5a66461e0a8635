"""Reading and writing the files of a run directory (llmcls.run.layout names them): JSON, YAML and safetensors,
never anything unpickled. Every write is atomic; reading a run checks that it is complete and of this format."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcls import __version__
from llmcls.config import Config, TokenizerConfig, parse_config_text, save_config, validate_config
from llmcls.data.encoding import TextEncoding, WordEncoding
from llmcls.data.tokenize import Tokenizer, resolved_max_tokens
from llmcls.data.vocab import LabelMap, Vocab
from llmcls.data.wordpiece import SPECIAL_IDS, WordPieceEncoding
from llmcls.errors import ConfigError, RunError
from llmcls.fileio import atomic_write_bytes, atomic_write_text
from llmcls.run.checks import (
    check_labels,
    check_number,
    check_sizes_possible,
    check_token_rows,
    check_weight_shapes,
    safetensors_shapes,
)
from llmcls.run.claim import run_subdir
from llmcls.run.layout import (
    CONFIG,
    DISTILL_DIR,
    FAMILY_FILES,
    FORMAT_VERSION,
    LABELS,
    LSTM_FAMILY,
    META,
    TEMPERATURE,
    THRESHOLDS,
    TOKENIZER,
    TRANSFER,
    VOCAB,
    WEIGHTS,
)
from llmcls.run.paths import read_run_bytes, read_run_json, read_run_text, run_file

if TYPE_CHECKING:  # torch is imported where weights are handled, so that reading a run's tables does not need it
    import torch

    from llmcls.encoder.bert import EncoderClassifier
    from llmcls.model import LstmClassifier


def write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8"), RunError)


def write_run_header(
    run_dir: Path,
    config: Config,
    *,
    encoding: TextEncoding,
    labels: LabelMap,
    model: LstmClassifier | EncoderClassifier,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write everything but the weights and metrics: what is needed to rebuild the model and its inputs (the
    vocabulary, or an encoder's tokenizer.json), and in meta.json the model's family and arguments.

    Args:
        extra: more keys for meta.json (e.g. a distilled run's teacher).
    """
    import torch

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG)
    if isinstance(encoding, WordPieceEncoding):
        atomic_write_text(run_dir / TOKENIZER, encoding.to_json(), RunError)
    elif isinstance(encoding, WordEncoding):
        encoding.vocab.save(run_dir / VOCAB)
    else:
        raise TypeError(f"no run file for the encoding {type(encoding).__name__}")
    labels.save(run_dir / LABELS)
    write_json(
        run_dir / META,
        {
            "format_version": FORMAT_VERSION,
            "llmcls_version": __version__,
            "torch_version": torch.__version__,
            "model_family": model.family,
            "model_args": model.args.to_dict(),
            **(extra or {}),
        },
    )


def save_weights(path: Path, model: torch.nn.Module) -> None:
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"format_version": str(FORMAT_VERSION)}), RunError)


def write_transfer(run_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save a distilled run's transfer set (the student's token ids and offsets, and its targets: the teacher's
    logits and the labels), so that a resumed run does not ask the teacher again."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # no array is named allow_pickle, as the stubs fear
    atomic_write_bytes(run_subdir(run_dir, DISTILL_DIR) / TRANSFER, buffer.getvalue(), RunError)


def read_transfer(run_dir: Path) -> dict[str, np.ndarray] | None:
    """A distilled run's saved transfer set (see `write_transfer`), or None when it has none yet.

    Raises:
        RunError: the file is damaged.
    """
    path = run_file(run_dir, DISTILL_DIR, TRANSFER, missing_ok=True)
    if not path.exists():
        return None
    try:
        with np.load(io.BytesIO(read_run_bytes(run_dir, DISTILL_DIR, TRANSFER)), allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in ("ids", "offsets", "targets")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise RunError(f"{path}: damaged transfer set ({type(exc).__name__}); delete it to compute it again") from None
    if arrays["offsets"][-1] != len(arrays["ids"]) or len(arrays["offsets"]) - 1 != len(arrays["targets"]):
        raise RunError(f"{path}: inconsistent transfer set; delete it to compute it again")
    return arrays


def write_thresholds(run_dir: Path, labels: list[str], *, thresholds: np.ndarray, method: str) -> None:
    """Save the per-class decision thresholds of a multi-label run, and how they were chosen."""
    write_json(run_dir / THRESHOLDS, {"method": method, "thresholds": dict(zip(labels, map(float, thresholds)))})


def read_thresholds(run_dir: Path, labels: LabelMap) -> np.ndarray | None:
    """The saved per-class thresholds [classes], or None when the run has none (single-label, or unfinished).

    Raises:
        RunError: the file is damaged, lacks a label's threshold, or one is not a finite number in (0, 1).
    """
    path = run_file(run_dir, THRESHOLDS, missing_ok=True)
    if not path.exists():
        return None
    saved = read_run_json(run_dir, THRESHOLDS)
    table = saved.get("thresholds") if isinstance(saved, dict) else None
    table = table if isinstance(table, dict) else {}
    missing = [label for label in labels.labels if label not in table]
    if missing:
        raise RunError(f"{path}: no threshold for {', '.join(map(repr, missing[:5]))}")
    return np.asarray(
        [
            check_number(table[label], where=f"{path}: threshold of {label!r}", low=0.0, high=1.0)
            for label in labels.labels
        ]
    )


def write_temperature(run_dir: Path, temperature: float, calibration: dict[str, float]) -> None:
    """Save the temperature that predictions divide the logits by, and what it did on the validation split.

    Args:
        calibration: figures of the fit, such as {"valid_ece_before": ..., "valid_ece_after": ...}.
    """
    write_json(
        run_dir / TEMPERATURE,
        {
            "method": "temperature scaling, fitted on the validation split",
            "temperature": float(temperature),
            **calibration,
        },
    )


def read_temperature(run_dir: Path) -> float | None:
    """The saved temperature T > 0, or None when the run has none (train.calibrate: none, older or unfinished).

    Raises:
        RunError: the file is damaged, or its temperature is not a finite number > 0.
    """
    path = run_file(run_dir, TEMPERATURE, missing_ok=True)
    if not path.exists():
        return None
    saved = read_run_json(run_dir, TEMPERATURE)
    value = saved.get("temperature") if isinstance(saved, dict) else None
    return check_number(value, where=f"{path}: temperature", low=0.0)


@dataclass(kw_only=True)
class RunInfo:
    """What a run's model needs around it: the config, the token and label tables. Reading it needs no torch."""

    run_dir: Path
    config: Config
    vocab: Vocab | None  # a BiLSTM run's vocabulary (None for an encoder run: see `encoding`)
    labels: LabelMap
    model_args: dict[str, Any]  # the network's constructor arguments (its family's args dataclass)
    thresholds: np.ndarray | None  # multi-label: [classes] decision thresholds saved with the run
    temperature: float | None  # the T that logits are divided by before probabilities; None: T = 1
    family: str = LSTM_FAMILY  # meta.json's model_family: lstm | encoder
    meta: dict[str, Any] | None = None  # meta.json as read

    def encoding(self, tokenizer: TokenizerConfig | None = None) -> TextEncoding:
        """How this run's model reads texts, cut as `tokenizer` says (default: the run's tokenizer section;
        `max_tokens` None: no cut, for windows).

        Raises:
            RunError: an encoder run's tokenizer.json cannot be read, or has ids past the embedding rows.
        """
        tokenizer = tokenizer or self.config.tokenizer
        if self.family == LSTM_FAMILY:
            assert self.vocab is not None
            return WordEncoding(Tokenizer(tokenizer), self.vocab)
        limit = int(self.model_args["max_positions"]) - SPECIAL_IDS
        try:
            cut = resolved_max_tokens(tokenizer)
            encoding = WordPieceEncoding(run_file(self.run_dir, TOKENIZER), max_tokens=cut, limit=limit)
        except ConfigError as exc:
            raise RunError(f"{self.run_dir}: damaged run directory: {exc}") from None
        ids = max(encoding.tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1
        check_token_rows(ids, self.model_args, path=self.run_dir / TOKENIZER, exact=False)
        return encoding


@dataclass(kw_only=True)
class LoadedRun(RunInfo):
    """A trained model and everything needed to feed it."""

    model: LstmClassifier | EncoderClassifier


def load_run_info(run_dir: str | Path, trained: bool = True) -> RunInfo:
    """Read a run directory's config, vocabulary (or tokenizer), labels and model arguments, without the weights
    or torch.

    Args:
        trained: a run with weights (required), thresholds and temperature (read); false: only the header of a
            run that training resumes (its weights may not exist yet, its thresholds and temperature are stale).

    Every file is read as untrusted input (llmcls.run.paths, llmcls.run.checks): no symbolic link is followed,
    the vocabulary and labels must fit the network meta.json describes, the thresholds and temperature their ranges.

    Raises:
        RunError: the directory is not a complete run, was written by an incompatible version, or its files are
            damaged or disagree (the message names the file).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory (train one with: llmcls train --config CONFIG)")
    _check_complete(run_dir, (CONFIG, META, LABELS) + ((WEIGHTS,) if trained else ()))
    try:
        meta, family = _read_meta(run_dir)
        config = validate_config(
            parse_config_text(read_run_text(run_dir, CONFIG), str(run_dir / CONFIG)), str(run_dir / CONFIG)
        )  # bounded YAML: a run directory is untrusted input
        model_args = dict(meta["model_args"])
        vocab = _read_vocab(run_dir, model_args) if family == LSTM_FAMILY else None
        labels = LabelMap.load(run_file(run_dir, LABELS))
        check_labels(labels, model_args, path=run_dir / LABELS, multi_label=config.data.multi_label)
        thresholds = read_thresholds(run_dir, labels) if trained else None
        temperature = read_temperature(run_dir) if trained else None
    except RunError:
        raise
    except ConfigError as exc:
        raise RunError(f"{run_dir}: invalid saved config: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{run_dir}: damaged run directory: {type(exc).__name__}: {exc}") from None
    return RunInfo(
        run_dir=run_dir,
        config=config,
        vocab=vocab,
        labels=labels,
        model_args=model_args,
        thresholds=thresholds,
        temperature=temperature,
        family=family,
        meta=meta,
    )


def _read_meta(run_dir: Path) -> tuple[dict[str, Any], str]:
    """meta.json, checked for this format version, and the model family it names (whose token file must exist)."""
    meta = read_run_json(run_dir, META)
    if not isinstance(meta, dict):
        raise RunError(f"{run_dir / META}: damaged run directory: not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise RunError(
            f"{run_dir}: run format version {version}, this llmcls ({__version__}) reads "
            f"version {FORMAT_VERSION}; retrain or use a matching llmcls"
        )
    family = meta.get("model_family", LSTM_FAMILY)
    if family not in FAMILY_FILES:
        raise RunError(f"{run_dir}: unknown model_family {family!r} in {META}")
    _check_complete(run_dir, (FAMILY_FILES[family],))
    return meta, family


def _read_vocab(run_dir: Path, model_args: dict[str, Any]) -> Vocab:
    """A BiLSTM run's vocabulary: one token per embedding row of its network."""
    vocab = Vocab.load(run_file(run_dir, VOCAB))
    check_token_rows(len(vocab), model_args, path=run_dir / VOCAB, exact=True)
    return vocab


def _check_complete(run_dir: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not run_file(run_dir, name, missing_ok=True).exists()]
    if missing:
        raise RunError(f"{run_dir}: not a complete run directory, missing {', '.join(missing)}")


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", weights: bytes | None = None) -> LoadedRun:
    """Load a run directory written by `llmcls train`, model in eval mode on `device`.

    Args:
        weights: the bytes of the run's model.safetensors when the caller has read them already (so that what it
            does with them, such as hashing, concerns exactly the weights loaded); default: read the file.

    Raises:
        RunError: the directory is not a complete run, was written by an incompatible version, or its files are
            damaged or disagree (as `load_run_info`; and the weights against the network meta.json describes).
    """
    info = load_run_info(run_dir)
    model = _network(info, read_run_bytes(info.run_dir, WEIGHTS) if weights is None else weights)
    model.to(device).eval()
    return LoadedRun(**vars(info), model=model)


def _network(info: RunInfo, weights: bytes) -> LstmClassifier | EncoderClassifier:
    """The run's network holding `weights`: the tensors the weights' header declares are compared with those of
    the network meta.json describes (built on torch's meta device: shapes, no memory) before any is allocated."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    from llmcls.encoder.bert import EncoderClassifier
    from llmcls.model import LstmClassifier, build_network

    shapes = safetensors_shapes(weights, info.run_dir / WEIGHTS)
    check_sizes_possible(info.model_args, shapes, info.run_dir)
    try:
        with torch.device("meta"):
            expected = {
                name: tuple(t.shape) for name, t in build_network(info.family, info.model_args).state_dict().items()
            }
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise RunError(f"{info.run_dir / META}: damaged run directory: {type(exc).__name__}: {exc}") from None
    check_weight_shapes(shapes, expected, info.run_dir)
    try:
        model = build_network(info.family, info.model_args)
        assert isinstance(model, (LstmClassifier, EncoderClassifier))  # the families build_network knows
        model.load_state_dict(load(weights))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise RunError(f"{info.run_dir}: damaged run directory: {type(exc).__name__}: {exc}") from None
    return model
