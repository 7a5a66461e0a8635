"""llmcls.events: the progress events library code hands to a callback. Their defaults, the handler that drops them,
and the stream a real training run emits: each epoch announced with its batch count, one StepDone per batch
whose examples and tokens add up to the training split, and an EpochEnded carrying the epoch's record."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from llmcls import events
from llmcls.data.prepare import prepare_data
from llmcls.events import (
    DownloadProgress,
    EpochEnded,
    EpochStarted,
    Info,
    PredictionProgress,
    StepDone,
    TrialEnded,
    ignore,
)
from llmcls.training.loop import train
from support.configs import small_config


def test_defaults_a_fresh_epoch_and_an_empty_record_of_its_own():
    started = EpochStarted(epoch=3, epochs=5, batches=40)
    assert started.done == 0  # nothing done yet unless a resumed run says so
    assert EpochStarted(3, 5, 40, 12).done == 12
    a, b = EpochEnded(), EpochEnded()
    assert a.record == {} and a.improved is False
    a.record["epoch"] = 1
    assert b.record == {}  # each event has its own record, not a shared default


def test_every_event_is_a_dataclass_compared_by_value():
    kinds = [Info, DownloadProgress, EpochStarted, StepDone, EpochEnded, PredictionProgress, TrialEnded]
    assert all(dataclasses.is_dataclass(kind) for kind in kinds)
    assert {
        name
        for name, value in vars(events).items()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == events.__name__
    } == {kind.__name__ for kind in kinds}
    assert StepDone(0.5, 16, 200) == StepDone(0.5, 16, 200) != StepDone(0.5, 16, 201)
    assert PredictionProgress(done=3, total=10) == PredictionProgress(3, 10)
    assert DownloadProgress("u", 5, None).total_bytes is None  # a download of unknown size
    with pytest.raises(TypeError):
        TrialEnded(number=1, state="complete")  # every field of a trial is required


@pytest.mark.parametrize("event", [Info("x"), StepDone(1.0, 1, 1), None, object(), "text"])
def test_ignore_drops_anything(event):
    assert ignore(event) is None


def test_a_training_run_emits_each_epoch_its_steps_and_its_record(tmp_path):
    config = small_config(tmp_path, train={"epochs": 2, "accumulate": 2, "plots": False, "export_onnx": False})
    received = []
    result = train(config, device="cpu", on_event=received.append)
    data = prepare_data(config)
    n_train, n_tokens = len(data.train), int(data.train.texts.lengths.sum())

    kinds = [type(e) for e in received if not isinstance(e, Info)]
    assert kinds[0] is EpochStarted and kinds[-1] is EpochEnded
    epochs = [[]]  # the events between each EpochStarted and its EpochEnded
    for event in received:
        if isinstance(event, EpochStarted):
            epochs[-1] = [event]
        elif isinstance(event, (StepDone, EpochEnded)):
            epochs[-1].append(event)
            if isinstance(event, EpochEnded):
                epochs.append([])
    epochs.pop()
    assert len(epochs) == 2
    history = []
    for number, (started, *steps, ended) in enumerate(epochs, start=1):
        assert (started.epoch, started.epochs, started.done) == (number, 2, 0)
        assert all(isinstance(step, StepDone) for step in steps)
        assert len(steps) == started.batches == math.ceil(n_train / 16)  # one StepDone a batch, accumulate or not
        assert sum(s.examples for s in steps) == n_train and sum(s.tokens for s in steps) == n_tokens
        assert all(s.examples <= 16 and math.isfinite(s.loss) and s.loss > 0 for s in steps)
        mean_loss = sum(s.loss * s.examples for s in steps) / n_train
        assert ended.record["epoch"] == number
        assert ended.record["train_loss"] == pytest.approx(mean_loss, rel=1e-9)
        assert ended.improved == ended.record["best"]
        history.append(ended.record)
    assert epochs[0][-1].improved  # the first epoch is the best so far
    assert [r["valid_accuracy"] for r in history] == [r["valid_accuracy"] for r in result.history]
    messages = [e.message for e in received if isinstance(e, Info)]
    assert messages[0].startswith("precision: ") and all(isinstance(m, str) and m for m in messages)
    assert np.isfinite([r["valid_loss"] for r in history]).all()
