"""llmcls.tuning.report: what `llmcls tune` writes beside its study, from a real optuna study holding trials of
every state (complete, pruned, failed, running): the rows and their columns, trials.csv read back, trials.md's
best line and escaping, and best.yaml loaded back as the base config with the best trial's values."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
from optuna.distributions import CategoricalDistribution, FloatDistribution  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from llmcls.config import load_config  # noqa: E402
from llmcls.errors import ConfigError  # noqa: E402
from llmcls.tuning.report import (  # noqa: E402
    BEST_CONFIG,
    TRIALS_CSV,
    TRIALS_MD,
    best_trial,
    trial_dir,
    trial_rows,
    write_best,
    write_tables,
)
from support.configs import small_config  # noqa: E402

LR = FloatDistribution(1e-4, 1e-1, log=True)
POOLING = CategoricalDistribution(["last", "max"])
COLUMNS = [
    "number",
    "state",
    "valid_accuracy",
    "epochs",
    "seconds",
    "train.lr",
    "model.pooling",
    "model.hidden_size",
    "note",
]


def study_of_every_state(direction: str = "maximize") -> optuna.Study:
    """Trial 0 complete (0.8), 1 pruned, 2 failed, 3 complete (0.9, with a note holding a | and a newline), 4 still
    running (it drew a key no other trial drew)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    both = {"train.lr": LR, "model.pooling": POOLING}
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.8,
            params={"train.lr": 0.0123456, "model.pooling": "last"},
            distributions=both,
            user_attrs={"metric": 0.8, "epochs": 4, "best_epoch": 3, "seconds": 12.5},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"train.lr": 0.05},
            distributions={"train.lr": LR},
            user_attrs={"metric": 0.61, "epochs": 1, "seconds": 3.0, "note": "pruned after epoch 1"},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={},
            distributions={},
            user_attrs={"note": "TrainingError: the training loss became nan"},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.9,
            params={"train.lr": 0.001, "model.pooling": "max"},
            distributions=both,
            user_attrs={"metric": 0.9, "epochs": 4, "best_epoch": 2, "seconds": 11.0, "note": "a | b\nc"},
        )
    )
    running = study.ask()
    running.suggest_int("model.hidden_size", 8, 64)
    return study


def test_a_trials_run_directory_is_numbered_in_three_digits():
    assert trial_dir(Path("out"), 7) == Path("out/trials/007")
    assert trial_dir("out", 1234) == Path("out/trials/1234")


def test_the_best_trial_is_a_complete_one_in_the_studys_direction():
    assert best_trial(optuna.create_study()) is None
    assert best_trial(study_of_every_state()).number == 3  # 0.9 > 0.8; pruned and failed ones do not count
    assert best_trial(study_of_every_state("minimize")).number == 0  # a loss: the lowest
    only_pruned = optuna.create_study(direction="maximize")
    only_pruned.add_trial(create_trial(state=TrialState.PRUNED, params={}, distributions={}))
    assert best_trial(only_pruned) is None


def test_one_row_a_trial_with_every_searched_key_in_the_order_first_drawn():
    rows = trial_rows(study_of_every_state(), "accuracy")
    assert [list(row) for row in rows] == [COLUMNS] * 5
    assert [(r["number"], r["state"], r["valid_accuracy"], r["epochs"]) for r in rows] == [
        (0, "complete", 0.8, 4),
        (1, "pruned", 0.61, 1),
        (2, "failed", None, None),
        (3, "complete", 0.9, 4),
        (4, "running", None, None),
    ]
    assert [(r["train.lr"], r["model.pooling"]) for r in rows] == [
        (0.0123456, "last"),
        (0.05, None),
        (None, None),
        (0.001, "max"),
        (None, None),
    ]
    assert rows[4]["model.hidden_size"] is not None and rows[0]["model.hidden_size"] is None
    assert [r["note"] for r in rows][:3] == ["", "pruned after epoch 1", "TrainingError: the training loss became nan"]
    assert list(trial_rows(study_of_every_state(), "loss")[0])[2] == "valid_loss"


def test_the_tables_list_every_trial(tmp_path):
    study = study_of_every_state()
    write_tables(study, tmp_path, "accuracy")
    with open(tmp_path / TRIALS_CSV, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        read = list(reader)
    assert [r["state"] for r in read] == ["complete", "pruned", "failed", "complete", "running"]
    assert read[0]["train.lr"] == "0.0123456" and read[2]["valid_accuracy"] == "" and read[3]["note"] == "a | b\nc"

    lines = (tmp_path / TRIALS_MD).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Trials of llmcls tune (5)"
    assert lines[2] == "Best: trial 3, valid accuracy 0.9000 (run directory `trials/003`)."
    assert lines[4] == "| " + " | ".join(COLUMNS) + " |" and lines[5] == "|" + "---|" * len(COLUMNS)
    table = lines[6:]
    assert len(table) == 5
    assert table[0] == "| 0 | complete | 0.8 | 4 | 12.5 | 0.01235 | last |  |  |"  # floats in 4 digits, None empty
    assert table[3] == "| 3 | complete | 0.9 | 4 | 11 | 0.001 | max |  | a \\| b c |"  # | escaped, newline gone
    assert all(row.replace("\\|", "").count("|") == len(COLUMNS) + 1 for row in table)
    assert sorted(p.name for p in tmp_path.iterdir()) == [TRIALS_CSV, TRIALS_MD]  # no temporary file left


def test_without_a_complete_trial_the_table_says_so_and_an_empty_study_writes_nothing(tmp_path):
    study = optuna.create_study(direction="maximize")
    write_tables(study, tmp_path, "accuracy")
    assert list(tmp_path.iterdir()) == []
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"train.lr": 0.01}, distributions={"train.lr": LR}))
    write_tables(study, tmp_path, "accuracy")
    assert (tmp_path / TRIALS_MD).read_text(encoding="utf-8").splitlines()[2] == "No trial has completed yet."


def test_best_yaml_is_the_base_config_with_the_best_values_under_a_header(tmp_path):
    config = small_config(tmp_path)
    out = tmp_path / "tune"
    out.mkdir()
    best = write_best(study_of_every_state(), config, out_dir=out, command="llmcls tune --config base.yaml --trials 5")
    assert config.model.pooling == "last" and best.train.lr == 0.001 and best.model.pooling == "max"
    assert best.to_dict() == load_config(out / BEST_CONFIG).to_dict()
    changed = {
        (s, k)
        for s, values in config.to_dict().items()
        if isinstance(values, dict)
        for k, v in values.items()
        if best.to_dict()[s][k] != v
    }
    assert changed == {("train", "lr"), ("model", "pooling")}  # everything else is the base config's
    header = [
        line[2:] for line in (out / BEST_CONFIG).read_text(encoding="utf-8").splitlines() if line.startswith("# ")
    ]
    assert header == [
        "The best of 5 trials of llmcls tune: trial 3, valid accuracy 0.9000 (epoch 2 of 4 trained).",
        f"Its run directory, ready for llmcls eval / predict: {out / 'trials' / '003'}",
        "Command: llmcls tune --config base.yaml --trials 5",
        "Searched: train.lr=0.001, model.pooling='max'",
    ]
    write_best(study_of_every_state(), config, out_dir=out)
    assert "# Command: (llmcls.tuning.tune from Python)\n" in (out / BEST_CONFIG).read_text(encoding="utf-8")


def test_a_best_value_the_config_refuses_is_named_with_its_trial(tmp_path):
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.7,
            params={"model.pooling": "median"},
            distributions={"model.pooling": CategoricalDistribution(["median"])},
        )
    )
    with pytest.raises(ConfigError) as caught:
        write_best(study, small_config(tmp_path), out_dir=tmp_path)
    assert "trial 0" in str(caught.value) and "model.pooling" in str(caught.value)
    assert not (tmp_path / BEST_CONFIG).exists()
