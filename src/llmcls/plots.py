"""Plots of a run: loss and validation metric per epoch, and the best model's confusion matrix (matplotlib, Agg)."""

from __future__ import annotations

import io
from pathlib import Path

from llmcls.errors import RunError
from llmcls.fileio import atomic_write_bytes
from llmcls.records import EpochRecord, Report
from llmcls.run.artifacts import plot_files
from llmcls.run.results import read_history, read_results


def _history(run_dir: Path) -> list[EpochRecord]:
    records = read_history(run_dir)
    if not records:
        raise RunError(f"{run_dir}: no finished epoch yet, so nothing to plot")
    return records


def _save(fig, path: Path) -> Path:
    """Write `fig` as a PNG to `path` atomically: a link at `path` is replaced, never written through."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue(), RunError)
    return path


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write `plots/curves.png` and, once training has finished, `plots/confusion_matrix.png` (not for a
    multi-label run, which has no confusion matrix).

    Returns:
        The paths written.

    Raises:
        RunError: the directory holds no per-epoch metrics, or its plots/ is a link.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    history = _history(run_dir)
    files = plot_files(run_dir)
    written = [_save(_curves(plt, history, run_dir.name), files.curves)]
    results = read_results(run_dir)
    if results is not None and "confusion_matrix" in results["valid"]:
        written.append(_save(_confusion(plt, results["valid"]), files.confusion))
    return written


def _curves(plt, history: list[EpochRecord], title: str):
    """The figure of the loss and the validation metrics per epoch, the best epoch marked."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["valid_loss"] for r in history], "o-", label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_loss.legend()
    multi_label = "valid_micro_f1" in history[0]
    for key, label in (
        ("valid_accuracy", "subset accuracy" if multi_label else "accuracy"),
        ("valid_micro_f1", "micro-F1"),
        ("valid_macro_f1", "macro-F1"),
    ):
        if key in history[0]:
            ax_metric.plot(epochs, [r.get(key) for r in history], "o-", label=label)
    best = [r for r in history if r.get("best")]
    if best:
        ax_metric.axvline(best[-1]["epoch"], color="grey", linestyle=":", label=f"best (epoch {best[-1]['epoch']})")
    ax_metric.set(title="validation", xlabel="epoch")
    ax_metric.legend()
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return fig


def _confusion(plt, report: Report):
    """The figure of the best model's confusion matrix on the validation split."""
    labels, matrix = report["labels"], report["confusion_matrix"]
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size), constrained_layout=True)
    image = ax.imshow(matrix, cmap="Blues")
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > top / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=f"validation, best model: accuracy {report['accuracy']:.3f}")
    fig.colorbar(image, ax=ax)
    return fig
