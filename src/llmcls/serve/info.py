"""What GET /v1/info says about the run being served: labels, a summary of its config, its metrics, the plots."""

from __future__ import annotations

import json
from typing import Any

from llmcls import __version__
from llmcls.inference.predict import Predictor
from llmcls.run.layout import CONFUSION_PLOT, CURVES_PLOT, PLOTS_DIR, RESULTS
from llmcls.serve.settings import ServeSettings

PLOTS = (CURVES_PLOT, CONFUSION_PLOT)
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
        "config": {
            "name": config.name,
            "model": config.model.model_dump(mode="json"),
            "tokenizer": config.tokenizer.model_dump(mode="json"),
            "chunking": config.chunking.model_dump(mode="json"),
            "data": {"train": config.data.train, "valid": config.data.valid, "test": config.data.test},
        },
        "best_epoch": results.get("best_epoch"),
        "metrics": {split: _scalars(results.get(split)) for split in ("valid", "test") if results.get(split)},
        "confusion_matrix": (results.get("valid") or {}).get("confusion_matrix"),
        "plots": [name for name in PLOTS if (run.run_dir / PLOTS_DIR / name).is_file()],
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
