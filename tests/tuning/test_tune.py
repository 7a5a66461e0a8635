"""`llmcls tune`: a real search on the SST-2 sample (tiny networks, 2 epochs), continued from its SQLite study by the
CLI; pruning through Optuna's ThresholdPruner; the budget's cut of a trial; budgets and search spaces."""

from __future__ import annotations

import csv
import re
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

from typer.testing import CliRunner  # noqa: E402

from llmcls.cli import app  # noqa: E402
from llmcls.config import ModelConfig, load_config, save_config  # noqa: E402
from llmcls.errors import ConfigError  # noqa: E402
from llmcls.events import EpochEnded, EpochStarted, TrialEnded  # noqa: E402
from llmcls.run.claim import is_run_dir, run_lock  # noqa: E402
from llmcls.tuning.search import _Budget, _EpochWatch, parse_budget, tune  # noqa: E402
from llmcls.tuning.space import Param, check_space, default_space, has_key  # noqa: E402
from support.configs import small_config  # noqa: E402

TINY_SPACE = [
    Param("train.lr", "log", low=1e-3, high=1e-2),
    Param("model.hidden_size", "choice", choices=(8, 16)),
    Param("model.pooling", "choice", choices=("last", "max")),
]
PINNED = ["model.hidden_size", "model.num_layers", "train.batch_size"]  # the tiny config's values, kept


def tiny(tmp_path, **train):
    return small_config(
        tmp_path, model={"hidden_size": 8}, train={"epochs": 2, "plots": False, "export_onnx": False, **train}
    )


def read_trials(out) -> list[dict]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_search_writes_its_tables_best_config_and_run_and_continues_where_it_stopped(tmp_path):
    config, out, events = tiny(tmp_path), tmp_path / "tune", []
    result = tune(
        config, 600, trials=3, out_dir=out, on_event=events.append, search_space=default_space(PINNED), device="cpu"
    )

    rows = read_trials(out)
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    metrics = [float(r["valid_accuracy"]) for r in rows]
    assert all(0.0 < m <= 1.0 for m in metrics) and [r["epochs"] for r in rows] == ["2", "2", "2"]
    assert result.trials_run == 3 and result.best_value == max(metrics)
    assert rows[result.best_number]["valid_accuracy"] == str(result.best_value)
    assert [e.number for e in events if isinstance(e, TrialEnded)] == [0, 1, 2]
    assert "| number | state | valid_accuracy | epochs | seconds |" in (out / "trials.md").read_text()

    best = load_config(out / "best.yaml")  # the base config with the best values
    assert best.train.lr == result.best_params["train.lr"]
    assert best.model.pooling == result.best_params["model.pooling"]
    assert best.model.hidden_size == 8 and best.train.epochs == 2 and best.name == config.name
    header = (out / "best.yaml").read_text().split("\nname:")[0]
    assert f"trial {result.best_number}, valid accuracy {result.best_value:.4f}" in header
    # only the best trial's run directory is kept, finished and unlocked
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"{result.best_number:03d}"]
    assert result.best_run_dir == out / "trials" / f"{result.best_number:03d}"
    assert (result.best_run_dir / "results.json").is_file()

    # the CLI continues the study: two trials more, in the same space (the keys it is given are not searched)
    path = tmp_path / "base.yaml"
    save_config(config, path)
    cli = CliRunner().invoke(
        app,
        [
            "tune",
            "--config",
            str(path),
            "--budget",
            "10m",
            "--trials",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--set",
            "model.hidden_size=8",
            "--set",
            "model.num_layers=1",
            "--set",
            "train.batch_size=16",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert re.search(r"^trial +3 complete", cli.output, re.M) and re.search(r"^trial +4 ", cli.output, re.M)
    assert "2 trials run, 5 in the study" in cli.output
    assert len(optuna.load_study(study_name="llmcls", storage=f"sqlite:///{out / 'study.db'}").trials) == 5
    assert len(read_trials(out)) == 5


def test_a_pruned_trial_stops_after_an_epoch_with_its_run_unlocked(tmp_path):
    out = tmp_path / "tune"
    # every value is under 1.01: the pruner stops the trial after its first epoch
    result = tune(
        tiny(tmp_path),
        600,
        trials=1,
        out_dir=out,
        search_space=TINY_SPACE,
        device="cpu",
        keep_all=True,
        pruner=optuna.pruners.ThresholdPruner(lower=1.01),
    )
    [row] = read_trials(out)
    assert row["state"] == "pruned" and row["epochs"] == "1" and "pruned after epoch 1" in row["note"]
    assert float(row["valid_accuracy"]) > 0
    assert result.best_number is None and not (out / "best.yaml").exists()
    run = out / "trials" / "000"
    assert is_run_dir(run)
    with run_lock(run):  # released: raises RunError if the pruned training still held it
        pass
    # the study selects on accuracy; a config that selects on the loss is refused before any training
    with pytest.raises(ConfigError, match="selects on valid accuracy"):
        tune(tiny(tmp_path, select_metric="loss"), 600, trials=1, out_dir=out, search_space=TINY_SPACE)
    # nor can it go on with other choices for a key it searched
    other = [*TINY_SPACE[:2], Param("model.pooling", "choice", choices=("last", "max", "mean"))]
    with pytest.raises(ConfigError, match=r"model.pooling: the study drew it from \{last, max\}"):
        tune(tiny(tmp_path), 600, trials=1, out_dir=out, search_space=other)


def test_a_trial_stops_when_its_next_epoch_would_end_after_the_budget():
    trial = optuna.create_study(direction="maximize").ask()
    watch = _EpochWatch(trial, "accuracy", epochs=5, budget=_Budget(deadline=time.monotonic() - 1))
    with pytest.raises(optuna.TrialPruned, match="budget"):
        watch(EpochEnded({"epoch": 1, "valid_accuracy": 0.75}))
    assert watch.best == 0.75 and watch.epochs == 1
    watch(EpochEnded({"epoch": 5, "valid_accuracy": 0.5}))  # the last epoch: nothing left to cut
    assert watch.best == 0.75 and watch.best_epoch == 1
    assert not _Budget(deadline=time.monotonic() - 1).can_start()


def test_with_train_epochs_auto_a_trial_learns_its_last_epoch_from_training():
    trial = optuna.create_study(direction="maximize").ask()
    watch = _EpochWatch(trial, "accuracy", epochs=None, budget=_Budget(deadline=time.monotonic() - 1))
    watch(EpochStarted(1, 2, batches=10))  # the epochs `auto` became
    with pytest.raises(optuna.TrialPruned, match="budget"):
        watch(EpochEnded({"epoch": 1, "valid_accuracy": 0.75}))
    watch(EpochStarted(2, 2, batches=10))
    watch(EpochEnded({"epoch": 2, "valid_accuracy": 0.5}))  # the last epoch: nothing left to cut
    assert watch.epochs == 2 and watch.best_epoch == 1


@pytest.mark.parametrize(
    "text, seconds", [("600", 600), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2.5m", 150)]
)
def test_budgets(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "0", "-5", "1 hour"])
def test_budgets_refused(text):
    with pytest.raises(ConfigError, match="--budget"):
        parse_budget(text)


def test_the_cli_refuses_a_budget_it_cannot_read(tmp_path):
    path = tmp_path / "base.yaml"
    save_config(tiny(tmp_path), path)
    cli = CliRunner().invoke(app, ["tune", "--config", str(path), "--budget", "ten minutes"])
    assert cli.exit_code == 1
    assert cli.output.strip() == (
        "error: --budget 'ten minutes': expected seconds or a duration such as 600, 10m, 1h or 1h30m"
    )
    assert not (tmp_path / "runs").exists()


def test_the_default_space_has_only_keys_the_config_has():
    space = default_space()
    assert {p.key for p in space} >= {
        "train.lr",
        "model.dropout",
        "model.embedding_dropout",
        "model.hidden_size",
        "model.num_layers",
        "model.pooling",
        "train.batch_size",
    }
    assert ("model.wide" in {p.key for p in space}) == ("wide" in ModelConfig.model_fields)
    assert "train.lr" not in {p.key for p in default_space(pinned=["train.lr"])}
    check_space(space)
    assert has_key("train.lr") and not has_key("train.learning_rate") and not has_key("train.lr.x")


@pytest.mark.parametrize(
    "param, problem",
    [
        (Param("train.learning_rate", "log", low=1e-4, high=1e-2), "no such config key"),
        (Param("train.lr", "log", low=0.0, high=1e-2), "low > 0"),
        (Param("model.pooling", "choice"), "no choices"),
        (Param("model.hidden_size", "choice", choices=(8,), when="model.wide_open"), "not searched"),
    ],
)
def test_a_wrong_search_space_is_refused(param, problem):
    with pytest.raises(ConfigError, match=problem):
        check_space([param])


def test_without_optuna_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=re.escape("pip install 'llmcls[tune]'")):
        tune(tiny(tmp_path), 60, out_dir=tmp_path / "tune")
