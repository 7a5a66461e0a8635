"""llmcls.training.step.train_step: one optimizer step on the SST-2 sample with a small real BiLSTM. Accumulated
batches step as one batch of their union would, the loss each batch reports is its loss before the update, stale
gradients do not leak in, grad_clip bounds the update, and a non-finite loss or gradient stops the step before
the weights change, with a message that says where."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from llmcls.data.prepare import prepare_data
from llmcls.errors import TrainingError
from llmcls.model import LstmClassifier, ModelArgs, compute_loss, loss_function
from llmcls.training.step import Stepper, train_step
from support.configs import small_config

LR = 0.5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare_data(small_config(tmp_path_factory.mktemp("step"), embeddings={"source": "none", "dim": 16}))


def stepper(data, seed: int = 0, grad_clip: float | None = None, criterion: torch.nn.Module | None = None) -> Stepper:
    """A fresh model (no dropout, so that a pass is a function of the weights) and plain SGD over `data`."""
    torch.manual_seed(seed)
    model = LstmClassifier(
        ModelArgs(
            vocab_size=len(data.vocab),
            embedding_dim=16,
            num_outputs=1,
            hidden_size=8,
            dropout=0.0,
            embedding_dropout=0.0,
            pad_index=data.vocab.pad_index,
        )
    )
    model.train()
    return Stepper(
        model=model,
        forward=model,
        criterion=criterion or loss_function(2),
        optimizer=torch.optim.SGD(model.parameters(), lr=LR),
        texts=data.train.texts,
        targets=torch.from_numpy(data.train.targets),
        loss_weights=np.ones(len(data.train)),
        device=torch.device("cpu"),
        grad_clip=grad_clip,
    )


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def batch_loss(s: Stepper, batch: np.ndarray) -> float:
    from llmcls.data.batching import collate

    token_ids, lengths = collate(s.texts, batch, s.model.args.pad_index)
    with torch.no_grad():
        return float(compute_loss(s.criterion, s.model(token_ids, lengths), s.targets[batch]))


def update_norm(before: dict[str, torch.Tensor], model: torch.nn.Module) -> float:
    return math.sqrt(sum(float((p.detach() - before[n]).pow(2).sum()) for n, p in model.named_parameters()))


def test_accumulated_batches_step_as_their_union_and_report_their_losses_before_the_update(data):
    rng = np.random.default_rng(3)
    first, second = np.sort(rng.choice(len(data.train), 16, replace=False)).reshape(2, 8)
    accumulated, whole = stepper(data), stepper(data)
    for p in accumulated.model.parameters():
        p.grad = torch.full_like(p, 1e3)  # a previous step's gradients must not count
    expected = [batch_loss(accumulated, first), batch_loss(accumulated, second)]
    start = weights(accumulated.model)

    seen = []
    train_step(accumulated, [first, second], on_batch=lambda batch, loss: seen.append((batch.tolist(), loss)))
    train_step(whole, [np.concatenate([first, second])], on_batch=lambda *_: None)

    assert [b for b, _ in seen] == [first.tolist(), second.tolist()]
    assert [loss for _, loss in seen] == pytest.approx(expected, rel=1e-6)
    after_accumulated, after_whole = weights(accumulated.model), weights(whole.model)
    assert any(not torch.equal(start[n], after_accumulated[n]) for n in start)  # it did step
    for name in start:
        torch.testing.assert_close(after_accumulated[name], after_whole[name], rtol=1e-5, atol=1e-6)


def test_grad_clip_bounds_the_update(data):
    batch = np.arange(16)
    free = stepper(data)
    start = weights(free.model)
    train_step(free, [batch], on_batch=lambda *_: None)
    unclipped = update_norm(start, free.model) / LR  # SGD: the update is lr x the gradient
    assert unclipped > 0.05

    clipped = stepper(data, grad_clip=0.01)
    train_step(clipped, [batch], on_batch=lambda *_: None)
    assert update_norm(start, clipped.model) / LR == pytest.approx(0.01, rel=1e-4)

    loose = stepper(data, grad_clip=unclipped * 2)  # a bound the gradient does not reach changes nothing
    train_step(loose, [batch], on_batch=lambda *_: None)
    for name, value in weights(loose.model).items():
        torch.testing.assert_close(value, weights(free.model)[name])


def test_a_non_finite_loss_stops_the_step_before_the_update_and_says_where(data):
    s = stepper(data)
    with torch.no_grad():
        s.model.head.bias.fill_(float("nan"))
    start = weights(s.model)
    seen = []
    with pytest.raises(TrainingError) as caught:
        train_step(s, [np.arange(8), np.arange(8, 16)], on_batch=lambda *a: seen.append(a), epoch=3, done=5)
    assert str(caught.value) == (
        "the training loss became nan at epoch 3, batch 6; stopped with the last checkpoint "
        "kept. Try a lower train.lr or set train.grad_clip"
    )
    assert seen == []
    assert all(torch.allclose(start[n], p, rtol=0, atol=0, equal_nan=True) for n, p in s.model.named_parameters())


class InfiniteSlope(torch.nn.Module):
    """A loss of 0 whose gradient is infinite: sqrt at 0 (x is 0 but depends on every logit); through the LSTM the
    gradient becomes inf or nan."""

    def forward(self, logits, targets):
        x = logits.sum() - logits.sum().detach()
        return torch.sqrt(x.clamp(min=0))


def test_a_non_finite_gradient_under_grad_clip_stops_the_step_before_the_update(data):
    s = stepper(data, grad_clip=1.0, criterion=InfiniteSlope())
    start = weights(s.model)
    seen = []
    with pytest.raises(TrainingError) as caught:
        train_step(
            s, [np.arange(8), np.arange(8, 16)], on_batch=lambda batch, loss: seen.append(loss), epoch=2, done=10
        )
    assert re.fullmatch(
        r"the gradient became (inf|nan) at epoch 2, batch 12; stopped with the last checkpoint "
        r"kept\. Try a lower train\.lr",
        str(caught.value),
    )
    assert seen == [0.0, 0.0]  # both batches ran: the loss itself is finite
    assert all(torch.equal(start[n], p) for n, p in s.model.named_parameters())


def test_a_non_finite_gradient_without_grad_clip_is_refused_too(data):
    s = stepper(data, criterion=InfiniteSlope())
    start = weights(s.model)
    with pytest.raises(TrainingError, match="the gradient became"):
        train_step(s, [np.arange(8)], on_batch=lambda *_: None)
    assert all(torch.equal(start[n], p) for n, p in s.model.named_parameters())
