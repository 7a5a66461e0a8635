"""What GET /v1/info says about the run being served: labels, a summary of its config, its metrics, the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcls import __version__
from llmcls.errors import RunError
from llmcls.inference.predict import Predictor
from llmcls.records import Report, Results
from llmcls.run.artifacts import PLOTS, has_plot
from llmcls.run.results import read_results
from llmcls.serve.settings import ServeSettings

SCALAR_METRICS = ("n", "accuracy", "macro_f1", "micro_f1", "subset_accuracy", "loss")


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
        "best_epoch": results["best_epoch"] if results else None,
        "metrics": _metrics(results),
        "confusion_matrix": results["valid"].get("confusion_matrix") if results else None,
        "plots": [name for name in PLOTS if has_plot(run.run_dir, name)],
        "limits": settings.limits(),
    }


def _results(run_dir: Path) -> Results | None:
    """results.json; None for a run still training (or one whose results were removed by --resume), or one whose
    results.json is damaged, a link or not a plain file."""
    try:
        return read_results(run_dir)
    except RunError:
        return None


def _metrics(results: Results | None) -> dict[str, dict[str, float]]:
    if results is None:
        return {}
    return {
        split: _scalars(report) for split, report in (("valid", results["valid"]), ("test", results["test"])) if report
    }


def _scalars(report: Report | None) -> dict[str, float]:
    if not report:
        return {}
    return {key: value for key in SCALAR_METRICS if isinstance(value := report.get(key), (int, float))}


def _public_config(config) -> dict[str, Any]:
    """The config's model, tokenizer and chunking sections, without anything that names a local path (data
    files, the tokenizer's cache folder, an encoder's folder: only its name)."""
    model = config.model.model_dump(mode="json")
    if model.get("encoder"):
        model["encoder"] = Path(model["encoder"]).name
    tokenizer = config.tokenizer.model_dump(mode="json", exclude={"cache_dir"})
    return {
        "name": config.name,
        "model": model,
        "tokenizer": tokenizer,
        "chunking": config.chunking.model_dump(mode="json"),
    }
