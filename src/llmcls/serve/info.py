"""What GET /v1/info says about the run being served: labels, a summary of its config, its metrics, the plots."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from llmcls import __version__
from llmcls.inference.predict import Predictor
from llmcls.run.layout import CONFUSION_PLOT, CURVES_PLOT, PLOTS_DIR, RESULTS
from llmcls.serve.settings import ServeSettings

PLOTS = (CURVES_PLOT, CONFUSION_PLOT)
SCALAR_METRICS = ("n", "accuracy", "macro_f1", "micro_f1", "subset_accuracy", "loss")
MAX_PLOT_BYTES = 20_000_000  # a plot larger than this is not one llmcls drew


def run_info(predictor: Predictor, settings: ServeSettings) -> dict[str, Any]:
    """The JSON of /v1/info (read once, when the app is made)."""
    run = predictor.run
    config = run.config
    results = _results(run.run_dir)
    return {
        "llmcls_version": __version__,
        "run": run.run_dir.name,
        "backend": predictor.backend,
        "labels": predictor.labels,
        "multi_label": predictor.multi_label,
        "temperature": run.temperature,  # what the logits are divided by before probabilities (null: none)
        "config": _public_config(config),
        "best_epoch": results.get("best_epoch"),
        "metrics": {split: _scalars(results.get(split)) for split in ("valid", "test") if results.get(split)},
        "confusion_matrix": (results.get("valid") or {}).get("confusion_matrix"),
        "plots": [name for name in PLOTS if _plain_file(run.run_dir / PLOTS_DIR / name)],
        "limits": settings.limits(),
    }


def _results(run_dir) -> dict:
    """results.json, or {} for a run still training (or one whose results were removed by --resume)."""
    try:
        return json.loads((run_dir / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _scalars(report: dict | None) -> dict[str, float]:
    return {key: report[key] for key in SCALAR_METRICS if report and isinstance(report.get(key), (int, float))}


def _public_config(config) -> dict[str, Any]:
    """The config's model, tokenizer and chunking sections, without anything that names a local path (data
    files, the tokenizer's cache folder, an encoder's folder: only its name)."""
    model = config.model.model_dump(mode="json")
    if model.get("encoder"):
        model["encoder"] = Path(model["encoder"]).name
    tokenizer = config.tokenizer.model_dump(mode="json", exclude={"cache_dir"})
    return {"name": config.name, "model": model, "tokenizer": tokenizer,
            "chunking": config.chunking.model_dump(mode="json")}


def _plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read_plot(run_dir: Path, name: str) -> bytes | None:
    """The bytes of plot `name` of the run, or None: no such plot, or not a plain file (a symlink there is not
    followed, whatever it points to), or larger than any plot llmcls draws."""
    try:
        fd = os.open(run_dir / PLOTS_DIR / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PLOT_BYTES:
            return None
        return file.read(MAX_PLOT_BYTES + 1)
