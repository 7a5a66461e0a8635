"""What `llmcls tune` leaves in its folder besides the study: the trials as a CSV and a Markdown table, and
best.yaml, the base config with the best trial's values."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from llmcls.config import Config
from llmcls.fileio import atomic_write_text
from llmcls.tuning.space import with_values

if TYPE_CHECKING:
    import optuna

TRIALS_DIR = "trials"
TRIALS_CSV, TRIALS_MD, BEST_CONFIG = "trials.csv", "trials.md", "best.yaml"


def trial_dir(out_dir: Path, number: int) -> Path:
    """The run directory of trial `number`: OUT/trials/007."""
    return Path(out_dir) / TRIALS_DIR / f"{number:03d}"


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The complete trial with the best value, or None while there is none."""
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def trial_rows(study: optuna.Study, metric: str) -> list[dict[str, Any]]:
    """One row per trial, in order: number, state (complete, pruned, failed, running), the validation metric of
    its best epoch, epochs trained, wall seconds, every searched key (empty where a trial did not draw it), and
    why it stopped early."""
    keys: list[str] = []
    for trial in study.trials:
        keys += [key for key in trial.params if key not in keys]
    rows = []
    for trial in study.trials:
        attrs = trial.user_attrs
        state = "failed" if trial.state.name == "FAIL" else trial.state.name.lower()
        rows.append(
            {
                "number": trial.number,
                "state": state,
                f"valid_{metric}": attrs.get("metric"),
                "epochs": attrs.get("epochs"),
                "seconds": attrs.get("seconds"),
                **{key: trial.params.get(key) for key in keys},
                "note": attrs.get("note", ""),
            }
        )
    return rows


def write_tables(study: optuna.Study, out_dir: Path, metric: str) -> None:
    """OUT/trials.csv and OUT/trials.md: every trial of the study (`trial_rows`)."""
    rows = trial_rows(study, metric)
    if not rows:
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(out_dir) / TRIALS_CSV, text.getvalue())
    best = best_trial(study)
    lines = [
        f"# Trials of llmcls tune ({len(rows)})",
        "",
        (
            f"Best: trial {best.number}, valid {metric} {best.value:.4f} (run directory "
            f"`{trial_dir(Path('.'), best.number).as_posix()}`)."
            if best
            else "No trial has completed yet."
        ),
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(_cell(value) for value in row.values()) + " |" for row in rows]
    atomic_write_text(Path(out_dir) / TRIALS_MD, "\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_best(study: optuna.Study, config: Config, *, out_dir: Path, command: str = "") -> Config:
    """Write OUT/best.yaml: `config` with the best trial's values, which `llmcls.config.load_config` reads, under
    a header that names the trial, its validation metric, its run directory and the command; returns that config."""
    best = best_trial(study)
    assert best is not None, "no complete trial"
    best_config = with_values(config, best.params, f"trial {best.number}")
    metric = config.train.select_metric
    header = [
        f"The best of {len(study.trials)} trials of llmcls tune: trial {best.number}, valid {metric} "
        f"{best.value:.4f} (epoch {best.user_attrs.get('best_epoch')} of {best.user_attrs.get('epochs')} trained).",
        f"Its run directory, ready for llmcls eval / predict: {trial_dir(out_dir, best.number)}",
        f"Command: {command or '(llmcls.tuning.tune from Python)'}",
        "Searched: " + ", ".join(f"{key}={value!r}" for key, value in best.params.items()),
    ]
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(best_config.to_dict(), sort_keys=False)
    atomic_write_text(Path(out_dir) / BEST_CONFIG, text)
    return best_config
