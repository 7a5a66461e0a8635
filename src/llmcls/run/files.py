"""The run directory: a self-contained artifact of JSON, YAML and safetensors files (nothing is ever unpickled).

Layout of `runs/<name>/`:
    config.yaml        the resolved config (every default filled in)
    meta.json          format version, versions of llmcls/torch, the network's constructor arguments
    vocab.json         the token table
    labels.json        the label table (class id = position)
    model.safetensors  weights of the best epoch
    metrics.jsonl      one line per epoch (also as metrics.csv)
    checkpoint-last.pt the training state after the last finished epoch (or step), to resume from
    plots/             curves.png (loss and validation metrics per epoch), confusion_matrix.png
    results.json       the summary: best epoch, validation and test metrics, timings
    thresholds.json    multi-label runs: the probability each class needs to be predicted
    export/            `llmcls export`'s ONNX models and their manifest (llmcls.inference.onnx_forward)
    tensorboard/       with train.tensorboard: TensorBoard's event files

Every name llmcls writes there is in one table, llmcls.run.layout.RUN_LAYOUT: `--overwrite` removes nothing else.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcls import __version__
from llmcls.config import Config, save_config, validate_config
from llmcls.data.vocab import LabelMap, Vocab
from llmcls.errors import ConfigError, RunError
from llmcls.fileio import atomic_write_bytes
from llmcls.run.layout import RUN_FILES

if TYPE_CHECKING:  # torch is imported where weights are handled, so that reading a run's tables does not need it
    import torch

    from llmcls.model import LstmClassifier, ModelArgs

FORMAT_VERSION = 1


def write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8"))


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """(Re)write `metrics.jsonl` and `metrics.csv` from the per-epoch records."""
    atomic_write_bytes(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode("utf-8"))
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    atomic_write_bytes(run_dir / "metrics.csv", buffer.getvalue().encode("utf-8"))


def write_run_header(run_dir: Path, config: Config, vocab: Vocab, labels: LabelMap, model_args: "ModelArgs") -> None:
    """Write everything but the weights and metrics: what is needed to rebuild the model and its inputs."""
    import torch

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    vocab.save(run_dir / "vocab.json")
    labels.save(run_dir / "labels.json")
    write_json(run_dir / "meta.json", {
        "format_version": FORMAT_VERSION,
        "llmcls_version": __version__,
        "torch_version": torch.__version__,
        "model_args": model_args.to_dict(),
    })


def save_weights(path: Path, model: "torch.nn.Module") -> None:
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"format_version": str(FORMAT_VERSION)}))


def write_thresholds(run_dir: Path, labels: list[str], thresholds: np.ndarray, method: str) -> None:
    """Save the per-class decision thresholds of a multi-label run, and how they were chosen."""
    write_json(run_dir / "thresholds.json", {"method": method,
                                             "thresholds": dict(zip(labels, map(float, thresholds)))})


def read_thresholds(run_dir: Path, labels: LabelMap) -> np.ndarray | None:
    """The saved per-class thresholds [classes], or None when the run has none (single-label, or unfinished)."""
    path = run_dir / "thresholds.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))["thresholds"]
    return np.asarray([float(saved[label]) for label in labels.labels])


def read_model_args(run_dir: Path) -> "ModelArgs":
    """The network's constructor arguments saved in `meta.json`."""
    from llmcls.model import ModelArgs

    return ModelArgs(**json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))["model_args"])


@dataclass
class RunInfo:
    """What a run's model needs around it: the config, the token and label tables. Reading it needs no torch."""

    run_dir: Path
    config: Config
    vocab: Vocab
    labels: LabelMap
    model_args: dict[str, Any]  # the network's constructor arguments (llmcls.model.ModelArgs fields)
    thresholds: np.ndarray | None  # multi-label: [classes] decision thresholds saved with the run


@dataclass
class LoadedRun(RunInfo):
    """A trained model and everything needed to feed it."""

    model: "LstmClassifier"


def load_run_info(run_dir: str | Path) -> RunInfo:
    """Read a run directory's config, vocabulary, labels and model arguments, without the weights or torch.

    Raises:
        RunError: the directory is not a complete run, or was written by an incompatible version.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory (train one with: llmcls train --config CONFIG)")
    missing = [name for name in RUN_FILES if not (run_dir / name).exists()]
    if missing:
        raise RunError(f"{run_dir}: not a complete run directory, missing {', '.join(missing)}")
    try:
        meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise RunError(f"{run_dir}: run format version {version}, this llmcls ({__version__}) reads "
                           f"version {FORMAT_VERSION}; retrain or use a matching llmcls")
        import yaml

        config = validate_config(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")),
                                 str(run_dir / "config.yaml"))
        vocab = Vocab.load(run_dir / "vocab.json")
        labels = LabelMap.load(run_dir / "labels.json")
        model_args = dict(meta["model_args"])
        thresholds = read_thresholds(run_dir, labels)
    except RunError:
        raise
    except ConfigError as exc:
        raise RunError(f"{run_dir}: invalid saved config: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{run_dir}: damaged run directory: {type(exc).__name__}: {exc}") from None
    return RunInfo(run_dir, config, vocab, labels, model_args, thresholds)


def load_run(run_dir: str | Path, device: "torch.device | str" = "cpu", weights: bytes | None = None) -> LoadedRun:
    """Load a run directory written by `llmcls train`, model in eval mode on `device`.

    Args:
        weights: the bytes of the run's model.safetensors when the caller has read them already (so that what it
            does with them, such as hashing, concerns exactly the weights loaded); default: read the file.

    Raises:
        RunError: the directory is not a complete run, or was written by an incompatible version.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    from llmcls.model import LstmClassifier, ModelArgs

    info = load_run_info(run_dir)
    try:
        model = LstmClassifier(ModelArgs(**info.model_args))
        model.load_state_dict(load_file(info.run_dir / "model.safetensors") if weights is None else load(weights))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise RunError(f"{info.run_dir}: damaged run directory: {type(exc).__name__}: {exc}") from None
    model.to(device).eval()
    return LoadedRun(**vars(info), model=model)
