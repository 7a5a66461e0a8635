"""`tune`: hyper-parameter search on the validation split within a time budget, as fastText's `-autotune-duration`,
with Optuna's TPE sampler and median pruner.

Each trial trains in this process with `llmcls.training.loop.train`, on the base config with the values it drew
(`llmcls.tuning.space`), into its own run directory OUT/trials/NNN. After every epoch the validation metric
(`train.select_metric`) goes to Optuna, which may prune the trial: the trial's `on_event` raises
`optuna.TrialPruned`, which leaves `train` as any error does, its run directory unlocked and its last checkpoint
written. A trial's value is the metric of its best epoch, as the epoch record has it.

The study lives in OUT/study.db (SQLite), so that the same command run again continues it. The budget is that of
one call: no trial starts once it is spent, or when it could not finish one epoch in what is left; a trial
whose next epoch would end after it stops after the epoch it has (recorded as pruned, "budget"). So a call
overruns its budget by at most about one epoch plus the end of training of the last trial (calibration, plots,
export).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcls.config import Config, config_drift, is_better, lower_is_better, validate_config
from llmcls.errors import ConfigError, TrainingError
from llmcls.events import EpochEnded, EpochStarted, EventHandler, Info, TrialEnded, ignore
from llmcls.run.claim import foreign_entries, is_run_dir, run_lock
from llmcls.training.loop import train
from llmcls.tuning.report import best_trial, trial_dir, write_best, write_tables
from llmcls.tuning.space import Param, check_same_space, check_space, default_space, sample, with_values

if TYPE_CHECKING:
    import optuna

STUDY_FILE = "study.db"
STUDY_NAME = "llmcls"


@dataclass(kw_only=True)
class TuneResult:
    out_dir: Path
    metric: str  # train.select_metric, the metric maximised (minimised for loss) on the validation split
    trials_run: int  # trials this call ran
    trials_total: int  # trials in the study, of every call
    best_number: int | None  # None while no trial has completed
    best_value: float | None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_config: Config | None = None  # also written to OUT/best.yaml
    best_run_dir: Path | None = None


def parse_budget(text: str) -> float:
    """Seconds of a budget written `600`, `600s`, `10m`, `1h` or `1h30m`.

    Raises:
        ConfigError: anything else, or no time at all.
    """
    parts = re.fullmatch(r"\s*((?:\d+(?:\.\d+)?[smh]?\s*)+)", text)
    if not parts:
        raise ConfigError(f"--budget {text!r}: expected seconds or a duration such as 600, 10m, 1h or 1h30m")
    seconds = sum(
        float(number) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)([smh]?)", parts.group(1))
    )
    if seconds <= 0:
        raise ConfigError(f"--budget {text!r}: must be more than 0 seconds")
    return seconds


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("llmcls tune needs Optuna, which is not installed: pip install 'llmcls[tune]'") from None
    return optuna


def tune(
    config: Config,
    budget_seconds: float,
    *,
    trials: int | None = None,
    out_dir: Path | None = None,
    on_event: EventHandler = ignore,
    search_space: Sequence[Param] | None = None,
    device: str = "auto",
    keep_all: bool = False,
    pruner: optuna.pruners.BasePruner | None = None,
    command: str = "",
) -> TuneResult:
    """Search hyper-parameters of `config` on its validation split for `budget_seconds`, or `trials` trials.

    Args:
        config: the base config; every trial trains a copy with the values it drew, as many epochs at most.
        budget_seconds: wall time of this call (see the module's docstring for how it is kept).
        trials: run at most this many trials in this call (default: as many as the budget allows).
        out_dir: where the study, the tables, best.yaml and the trials' run directories go; default
            OUTPUT_DIR/NAME-tune. A study already there is continued.
        on_event: receives an Info when a study is continued and a TrialEnded per trial.
        search_space: the keys to search; default `default_space()`.
        device: as `train`'s.
        keep_all: keep every trial's run directory; by default only the best trial's is kept (the others are
            deleted when they end, to save disk).
        pruner: Optuna's pruner; default MedianPruner (no pruning in the first 5 trials).
        command: the command line, written into best.yaml's header.

    Returns:
        The best trial of the study (of every call), its config and run directory.

    Raises:
        ConfigError: Optuna is missing, the search space is wrong, or the study in `out_dir` selects on another
            metric.
        RunError: another process tunes into `out_dir`, or a trial's run directory is taken.
    """
    optuna = _import_optuna()
    space = default_space() if search_space is None else tuple(search_space)
    check_space(space)
    out_dir = Path(out_dir) if out_dir is not None else Path(config.output_dir) / f"{config.name}-tune"
    deadline = time.monotonic() + budget_seconds
    with run_lock(out_dir):  # one tuner per study
        study = _open_study(optuna, config, out_dir, pruner, on_event)
        check_same_space(study.trials, space)
        budget = _Budget(deadline)
        run = 0
        while (trials is None or run < trials) and budget.can_start():
            _run_trial(study, config, space, out_dir, budget, device, on_event)
            run += 1
            if not keep_all:
                _remove_runs_but_best(study, out_dir)
        write_tables(study, out_dir, config.train.select_metric)
        best_config = write_best(study, config, out_dir=out_dir, command=command) if best_trial(study) else None
    return _result(study, config, out_dir, trials_run=run, best_config=best_config)


def _result(study, config: Config, out_dir: Path, *, trials_run: int, best_config: Config | None) -> TuneResult:
    best = best_trial(study)
    return TuneResult(
        out_dir=out_dir,
        metric=config.train.select_metric,
        trials_run=trials_run,
        trials_total=len(study.trials),
        best_number=best.number if best else None,
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else {},
        best_config=best_config,
        best_run_dir=trial_dir(out_dir, best.number) if best else None,
    )


def _open_study(optuna, config: Config, out_dir: Path, pruner, on_event: EventHandler) -> optuna.Study:
    """The study in `out_dir`, created or continued; refused when it selects on another metric."""
    metric = config.train.select_metric
    study = optuna.create_study(
        storage=f"sqlite:///{(out_dir / STUDY_FILE).resolve()}",
        study_name=STUDY_NAME,
        direction="minimize" if lower_is_better(metric) else "maximize",
        load_if_exists=True,
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5),
    )
    if "select_metric" not in study.user_attrs:
        study.set_user_attr("select_metric", metric)
        study.set_user_attr("config", config.to_dict())
    elif study.user_attrs["select_metric"] != metric:
        raise ConfigError(
            f"{out_dir / STUDY_FILE}: this study selects on valid {study.user_attrs['select_metric']}, "
            f"but train.select_metric is {metric}; tune into another --out"
        )
    else:
        try:
            drift = config_drift(validate_config(study.user_attrs["config"], "study"), config)
        except ConfigError:  # written by a version of llmcls with other keys
            drift = ["keys this version does not have"]
        on_event(
            Info(
                f"continuing the study in {out_dir} ({len(study.trials)} trials)"
                + (f"; the config differs from its first in {', '.join(drift)}" if drift else "")
            )
        )
    # Seeded by the trials already run as well: a continued study draws new values, not the first call's again.
    study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials))
    return study


@dataclass
class _Budget:
    """The end of the budget, and the quickest first epoch of the trials so far (setup included)."""

    deadline: float  # time.monotonic()
    first_epoch: float = 0.0

    def can_start(self) -> bool:
        """Whether a new trial could finish one epoch before the deadline."""
        return time.monotonic() + self.first_epoch < self.deadline

    def seen_first_epoch(self, seconds: float) -> None:
        self.first_epoch = seconds if not self.first_epoch else min(self.first_epoch, seconds)


def _run_trial(
    study: optuna.Study,
    config: Config,
    space: Sequence[Param],
    out_dir: Path,
    budget: _Budget,
    device: str,
    on_event: EventHandler,
) -> None:
    """Draw, train and record one trial; a pruned trial and one whose loss diverged are recorded as such, any
    other error is recorded as a failure and raised."""
    import optuna
    from optuna.trial import TrialState

    trial = study.ask()
    values = sample(trial, space)
    epochs = config.train.epochs
    watch = _EpochWatch(trial, config.train.select_metric, epochs=None if epochs == "auto" else epochs, budget=budget)
    state, note = TrialState.COMPLETE, ""
    try:
        trial_config = with_values(config, values, f"trial {trial.number}")
        train(trial_config, device=device, run_dir=trial_dir(out_dir, trial.number), on_event=watch)
    except optuna.TrialPruned as why:
        state, note = TrialState.PRUNED, str(why)
    except TrainingError as exc:  # e.g. a learning rate too high for these values: the search goes on
        state, note = TrialState.FAIL, str(exc)
    except BaseException as exc:
        _tell(study, trial, TrialState.FAIL, watch, f"{type(exc).__name__}: {exc}")
        raise
    _tell(study, trial, state, watch, note)
    best = best_trial(study)
    on_event(
        TrialEnded(
            trial.number,
            _state_name(state),
            watch.best,
            watch.epochs,
            watch.seconds(),
            values,
            note,
            best.number if best else None,
            best.value if best else None,
        )
    )


def _tell(study: optuna.Study, trial: optuna.Trial, state, watch: _EpochWatch, note: str) -> None:
    """Record how the trial ended: its state, value (complete only), and what the tables show."""
    from optuna.trial import TrialState

    trial.set_user_attr("metric", watch.best)  # a pruned or failed trial's best epoch too
    trial.set_user_attr("epochs", watch.epochs)
    trial.set_user_attr("best_epoch", watch.best_epoch)
    trial.set_user_attr("seconds", round(watch.seconds(), 3))
    trial.set_user_attr("note", note)
    if state == TrialState.COMPLETE:
        study.tell(trial, watch.best)
    else:
        study.tell(trial, state=state)


def _state_name(state) -> str:
    return "failed" if state.name == "FAIL" else state.name.lower()


class _EpochWatch:
    """A trial's `on_event` for `train`: reports each epoch's validation metric to Optuna, prunes the trial when
    Optuna says so, and stops it when its next epoch would end after the budget."""

    def __init__(self, trial: optuna.Trial, metric: str, *, epochs: int | None, budget: _Budget):
        # the most epochs the trial trains: train.epochs, as training resolves it (`auto`: None until it starts)
        self.trial, self.metric, self.max_epochs, self.budget = trial, metric, epochs, budget
        self.best: float | None = None
        self.best_epoch = 0
        self.epochs = 0
        self.start = self.last = time.monotonic()
        self.longest = 0.0  # wall seconds of the longest epoch so far, validation included

    def seconds(self) -> float:
        return time.monotonic() - self.start

    def __call__(self, event: object) -> None:
        if isinstance(event, EpochStarted):
            self.max_epochs = event.epochs
        if not isinstance(event, EpochEnded):
            return
        import optuna

        now = time.monotonic()
        if self.epochs == 0:
            self.budget.seen_first_epoch(now - self.start)
        self.longest, self.last = max(self.longest, now - self.last), now
        self.epochs += 1
        record: Mapping[str, Any] = event.record  # read by a key made at run time
        epoch, value = record["epoch"], float(record[f"valid_{self.metric}"])
        if is_better(self.metric, value, self.best):
            self.best, self.best_epoch = value, epoch
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} (valid {self.metric} {value:.4f})")
        if (self.max_epochs is None or epoch < self.max_epochs) and now + self.longest > self.budget.deadline:
            raise optuna.TrialPruned(f"budget: stopped after epoch {epoch}, another would end after it")


def _remove_runs_but_best(study: optuna.Study, out_dir: Path) -> None:
    """Delete the trials' run directories except the best trial's (only run directories holding nothing but
    what llmcls writes)."""
    best = best_trial(study)
    keep = trial_dir(out_dir, best.number) if best is not None else None
    runs = trial_dir(out_dir, 0).parent
    for run_dir in sorted(runs.iterdir()) if runs.is_dir() else []:
        if (
            run_dir != keep
            and run_dir.is_dir()
            and not run_dir.is_symlink()
            and is_run_dir(run_dir)
            and not foreign_entries(run_dir)
        ):
            shutil.rmtree(run_dir)
