"""What a run gains as it trains and after: the best epoch's weights, TensorBoard's folder and the plots (names in
llmcls.run.layout). The run's header and tables are llmcls.run.files', its metrics and results llmcls.run.results',
its export llmcls.run.exports'."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmcls.errors import RunError
from llmcls.run.claim import remove_from_run, run_subdir
from llmcls.run.files import load_run_info, save_weights
from llmcls.run.layout import CONFUSION_PLOT, CURVES_PLOT, FROM_WEIGHTS, PLOTS_DIR, TENSORBOARD_DIR, WEIGHTS
from llmcls.run.paths import read_run_bytes, run_file

if TYPE_CHECKING:
    import torch

PLOTS = (CURVES_PLOT, CONFUSION_PLOT)  # the plots a run may have, by name
MAX_PLOT_BYTES = 20_000_000  # a plot larger than this is not one llmcls drew


def save_best_weights(run_dir: Path, model: torch.nn.Module) -> None:
    """Write the model's weights as the run's best (model.safetensors)."""
    save_weights(run_dir / WEIGHTS, model)


def load_best_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The run's best weights (model.safetensors), as a state dict on the CPU."""
    from safetensors.torch import load

    return load(read_run_bytes(run_dir, WEIGHTS))


def clear_weight_outputs(run_dir: Path) -> None:
    """Remove what was computed from the best weights (results, thresholds, temperature, plots, export): stale
    once training goes on."""
    remove_from_run(run_dir, FROM_WEIGHTS)


def tensorboard_dir(run_dir: Path) -> Path:
    """The folder of the run's TensorBoard event files (train.tensorboard)."""
    return run_dir / TENSORBOARD_DIR


@dataclass(frozen=True)
class PlotFiles:
    """Where a run's plots are written."""

    curves: Path
    confusion: Path


def plot_files(run_dir: Path) -> PlotFiles:
    """The run's plot folder (created, as llmcls's: llmcls.run.claim) and the paths of the plots in it.

    Raises:
        RunError: the plots folder is a link or not a folder.
    """
    folder = run_subdir(run_dir, PLOTS_DIR)
    return PlotFiles(curves=folder / CURVES_PLOT, confusion=folder / CONFUSION_PLOT)


def has_plot(run_dir: Path, name: str) -> bool:
    """Whether the run has plot `name` as a plain file reached without a link."""
    try:
        return run_file(run_dir, PLOTS_DIR, name, missing_ok=True).is_file()
    except RunError:  # a link, or not a plain file
        return False


def read_plot(run_dir: Path, name: str) -> bytes | None:
    """The bytes of plot `name` of the run, or None: no such plot, not a plain file reached without a link
    (`llmcls.run.paths.run_file`), or larger than any plot llmcls draws."""
    try:
        path = run_file(run_dir, PLOTS_DIR, name, missing_ok=True)
        if not path.is_file() or path.stat().st_size > MAX_PLOT_BYTES:
            return None
        return read_run_bytes(run_dir, PLOTS_DIR, name)
    except (RunError, OSError):
        return None


def read_weights(run_dir: Path) -> bytes:
    """The bytes of a run's model.safetensors, read once.

    Raises:
        RunError: `run_dir` is not a complete run, or the file cannot be read.
    """
    try:
        return read_run_bytes(run_dir, WEIGHTS)  # load_run, which the caller calls next, checks the rest of the run
    except RunError:
        load_run_info(run_dir)  # not a (complete) run: say that, as before
        raise
