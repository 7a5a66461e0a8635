"""train.ema: the moving average of the weights, its closed form, and what a run keeps and scores with it."""

import pytest
import torch
from safetensors.torch import load_file

import llmcls.training.loop as loop
from llmcls.errors import RunError
from llmcls.run.checkpoint import load_checkpoint
from llmcls.training.averaging import WeightAverage
from support.configs import small_config


def tiny_model():
    model = torch.nn.Linear(2, 1)
    model.frozen = torch.nn.Parameter(torch.tensor([5.0]), requires_grad=False)
    return model


def set_weights(model, value):
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(-value)


def test_the_average_starts_with_the_weights_at_start_step_then_decays():
    model = tiny_model()
    set_weights(model, 1.0)
    average = WeightAverage(model, decay=0.5, start_step=2)
    assert average.names == ["weight", "bias"]  # the frozen parameter is not averaged: it never changes
    for step, value in enumerate([2.0, 4.0, 8.0, 16.0], start=1):
        set_weights(model, value)
        average.update(model, step)
    # up to step 2 the average is the weights (4); then 0.5 * 4 + 0.5 * 8 = 6, then 0.5 * 6 + 0.5 * 16 = 11
    state = average.state_dict()
    assert state["weight"].tolist() == [[11.0, 11.0]] and state["bias"].tolist() == [-11.0]


def test_applied_swaps_the_average_in_and_the_raw_weights_back_even_after_an_error():
    model = tiny_model()
    set_weights(model, 3.0)
    average = WeightAverage(model, decay=0.9)
    set_weights(model, 7.0)
    with pytest.raises(ZeroDivisionError):
        with average.applied(model) as inside:
            assert inside is model and model.weight.tolist() == [[3.0, 3.0]] and model.frozen.item() == 5.0
            raise ZeroDivisionError
    assert model.weight.tolist() == [[7.0, 7.0]] and model.bias.item() == -7.0


def test_a_checkpointed_average_of_other_parameters_is_refused():
    average = WeightAverage(tiny_model(), decay=0.9)
    with pytest.raises(RunError, match="train.ema"):
        average.load_state_dict({"weight": torch.zeros(1, 2)})


def test_the_saved_weights_are_the_moving_average_of_the_trained_ones(tmp_path, monkeypatch):
    """One epoch of 38 optimizer steps with train.ema 0.9: model.safetensors (the best epoch's weights) is
    0.9^38 w_0 + sum_t 0.1 * 0.9^(38 - t) w_t over the raw weights w_t after each step, while the checkpoint goes
    on with the raw w_38; the fixed pretrained rows are kept as they are."""
    snapshots = []
    real_step = loop.train_step

    def recording_step(s, *args, **kwargs):
        trainable = lambda: {n: p.detach().clone() for n, p in s.model.named_parameters() if p.requires_grad}
        if not snapshots:
            snapshots.append(trainable())  # w_0, where the average starts
        real_step(s, *args, **kwargs)
        snapshots.append(trainable())

    monkeypatch.setattr(loop, "train_step", recording_step)
    config = small_config(tmp_path, train={"epochs": 1, "ema": 0.9}, vocab={"add_from_vectors": 200})
    result = loop.train(config, device="cpu")
    assert len(snapshots) == 39

    expected = {name: w.double() for name, w in snapshots[0].items()}
    for weights in snapshots[1:]:
        expected = {name: 0.9 * e + 0.1 * weights[name].double() for name, e in expected.items()}
    saved = load_file(result.run_dir / "model.safetensors")
    checkpoint = load_checkpoint(result.run_dir)
    for name, average in expected.items():
        torch.testing.assert_close(saved[name].double(), average, rtol=1e-5, atol=1e-6)
        assert torch.equal(checkpoint["ema"][name], saved[name])
        assert torch.equal(checkpoint["model"][name], snapshots[-1][name])  # training goes on with the raw weights
    assert not torch.equal(saved["lstm.weight_ih_l0"], checkpoint["model"]["lstm.weight_ih_l0"])
    assert "fixed_embedding.weight" not in checkpoint["ema"]
    assert torch.equal(saved["fixed_embedding.weight"], checkpoint["model"]["fixed_embedding.weight"])


def test_the_average_changes_no_training_step(tmp_path):
    """EMA only reads the weights: the training losses are those of the same run without it; the validation
    figures, of other weights, are not."""
    plain = loop.train(small_config(tmp_path / "plain", train={"epochs": 2}), device="cpu")
    averaged = loop.train(small_config(tmp_path / "ema", train={"epochs": 2, "ema": 0.9}), device="cpu")
    assert [h["train_loss"] for h in averaged.history] == [h["train_loss"] for h in plain.history]
    assert [h["valid_loss"] for h in averaged.history] != [h["valid_loss"] for h in plain.history]
