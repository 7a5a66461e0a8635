"""llmcls: train, evaluate and use GloVe-initialised (bi)LSTM text classifiers.

Importing the package is cheap: torch and spaCy are imported by the modules that need them, and by `load`.

    import llmcls
    clf = llmcls.load("runs/sst2")
    clf.predict(["a gripping film", "a dull film"])   # [Prediction(label=..., probability=...), ...]
    clf.predict_proba(["a gripping film"])             # [1, classes] numpy array; columns are clf.labels
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcls.inference.predict import Predictor

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(
    run_dir: str | Path,
    device: str = "auto",
    *,
    batch_size: int | None = None,
    chunking: dict[str, Any] | None = None,
    threshold: float | None = None,
    backend: str = "auto",
) -> Predictor:
    """Load a run directory written by `llmcls train`, ready to classify texts.

    Args:
        run_dir: the run directory.
        device: auto (CUDA when present, else CPU), cpu, cuda or cuda:N.
        batch_size: texts per batch (default: the run's `train.eval_batch_size`).
        chunking: changes to the run's `chunking` section, e.g. `{"max_tokens": 200, "aggregate": "max"}`.
        threshold: multi-label runs: one decision threshold for every class instead of the run's.
        backend: auto (the run's ONNX export on the CPU, as `llmcls predict` uses it: without torch, for a
            BiLSTM or a pretrained encoder alike; else the PyTorch model), torch, torch-bf16, onnx or onnx-int8.

    Returns:
        A `llmcls.inference.predict.Predictor`: `predict(texts, top_k=1)` gives a `Prediction` per text (`label`,
        `probability`, `labels` and `probabilities` for multi-label, `top`), `predict_proba(texts)` a numpy array
        [n_texts, classes] whose columns are `labels`. A single string instead of a list gives a single
        Prediction (and a [classes] array).

    Raises:
        llmcls.errors.RunError: not a usable run directory.
    """
    from llmcls.inference.predict import Predictor

    return Predictor.load(
        run_dir, device, batch_size=batch_size, chunking=chunking, threshold=threshold, backend=backend
    )
