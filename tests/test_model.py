import numpy as np
import pytest
import torch

from llmcls.inference.scoring import probabilities
from llmcls.model import LstmClassifier, ModelArgs, compute_loss, loss_function


def make(pooling="last", num_outputs=1, **kw):
    torch.manual_seed(0)
    args = ModelArgs(vocab_size=30, embedding_dim=8, num_outputs=num_outputs, hidden_size=6, pooling=pooling, **kw)
    return LstmClassifier(args).eval()


@pytest.mark.parametrize("pooling", ["last", "max", "mean", "last_max"])
@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 2), (True, 2)])
def test_shapes(pooling, bidirectional, layers):
    model = make(pooling, num_outputs=4, bidirectional=bidirectional, num_layers=layers)
    out = model(torch.randint(2, 30, (5, 7)), torch.tensor([7, 3, 1, 7, 2]))
    assert out.shape == (5, 4)
    expected = 6 * (2 if bidirectional else 1) * (2 if pooling == "last_max" else 1)
    assert model.head.in_features == expected


@pytest.mark.parametrize("pooling,wide", [("last", 0), ("max", 0), ("mean", 0), ("last_max", 0), ("last", 13)])
def test_padding_does_not_change_the_result(pooling, wide):
    """Packing must make a padded text score exactly as the same text alone."""
    model = make(pooling, num_layers=2, wide_buckets=wide)
    if wide:
        torch.nn.init.normal_(model.wide.table.weight)
    text = torch.tensor([[5, 9, 3]])
    alone = model(text, torch.tensor([3]))
    batch = torch.tensor([[5, 9, 3, 0, 0, 0], [4, 4, 4, 4, 4, 4]])
    together = model(batch, torch.tensor([3, 6]))
    torch.testing.assert_close(together[:1], alone, rtol=1e-5, atol=1e-6)


def test_backward_direction_sees_the_true_end():
    """With final states, the backward LSTM must start at each text's last real token, not at padding."""
    model = make("last")
    a = model(torch.tensor([[5, 9, 0, 0]]), torch.tensor([2]))
    b = model(torch.tensor([[5, 9, 7, 7]]), torch.tensor([2]))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 1), (False, 2), (True, 2)])
def test_lstm_by_direction_equals_the_packed_lstm(bidirectional, layers):
    """The CPU path (one unpacked call per layer and direction) must compute the packed LSTM: outputs at real
    positions, final states and every parameter's gradient."""
    model = make("last", bidirectional=bidirectional, num_layers=layers)
    embedded = torch.randn(5, 7, 8)
    lengths = torch.tensor([7, 3, 1, 7, 2])
    real = (torch.arange(7)[None, :] < lengths[:, None]).unsqueeze(-1)
    results = []
    for path in (model._lstm_packed, model._lstm_by_direction):
        model.zero_grad()
        outputs, final = path(embedded, lengths)
        ((outputs * real).pow(2).sum() + final.sum()).backward()
        results.append((outputs * real, final, [p.grad.clone() for p in model.lstm.parameters()]))
    (packed_out, packed_final, packed_grads), (split_out, split_final, split_grads) = results
    torch.testing.assert_close(split_out, packed_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(split_final, packed_final, rtol=1e-5, atol=1e-6)
    for split_grad, packed_grad in zip(split_grads, packed_grads):
        torch.testing.assert_close(split_grad, packed_grad, rtol=1e-4, atol=1e-6)


def test_pad_row_gets_no_gradient():
    model = make().train()
    out = model(torch.tensor([[3, 4, 0]]), torch.tensor([2]))
    out.sum().backward()
    assert model.embedding.weight.grad[0].abs().sum() == 0
    assert model.embedding.weight.grad[3].abs().sum() > 0


def test_loss_choice():
    assert isinstance(loss_function(2), torch.nn.BCEWithLogitsLoss)
    assert isinstance(loss_function(3), torch.nn.CrossEntropyLoss)
    logits = torch.tensor([[2.0], [-1.0]])
    targets = torch.tensor([1, 0])
    expected = -(torch.log(torch.sigmoid(torch.tensor(2.0))) + torch.log(1 - torch.sigmoid(torch.tensor(-1.0)))) / 2
    torch.testing.assert_close(compute_loss(loss_function(2), logits, targets), expected)
    multi = torch.tensor([[1.0, 2.0, 0.0]])
    torch.testing.assert_close(
        compute_loss(loss_function(3), multi, torch.tensor([1])), -torch.log_softmax(multi, 1)[0, 1]
    )


def test_probabilities():
    p = probabilities(np.array([[0.0], [2.0]], dtype=np.float32))
    np.testing.assert_allclose(p[:, 1], torch.sigmoid(torch.tensor([0.0, 2.0])).numpy(), rtol=1e-6)
    np.testing.assert_allclose(p.sum(1), np.ones(2))
    q = probabilities(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(q.sum(1), np.ones(1))
    assert q.argmax() == 2
    np.testing.assert_allclose(
        probabilities(np.array([[0.0, 2.0]]), multi_label=True)[0],
        torch.sigmoid(torch.tensor([0.0, 2.0])).numpy(),
        rtol=1e-6,
    )


def test_fixed_pretrained_rows_are_looked_up_but_never_trained():
    model = make(fixed_vocab_size=5).train()
    with torch.no_grad():
        model.fixed_embedding.weight.copy_(torch.arange(40, dtype=torch.float).view(5, 8))
    ids = torch.tensor([[3, 30 + 2, 0]])  # a learned row, the third fixed row, padding
    vectors = model.embed(ids)
    torch.testing.assert_close(vectors[0, 1], torch.arange(16, 24, dtype=torch.float))
    torch.testing.assert_close(vectors[0, 0], model.embedding.weight[3])
    model(ids, torch.tensor([2])).sum().backward()
    assert model.fixed_embedding.weight.grad is None
    assert not any(p is model.fixed_embedding.weight for p in model.parameters() if p.requires_grad)
    assert model.embedding.weight.grad[3].abs().sum() > 0


def test_class_weights_change_the_loss_as_computed_by_hand():
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    targets = torch.tensor([1, 0, 0])
    weights = torch.tensor([1.0, 3.0])  # class 1 counts three times
    losses = [
        -torch.log(torch.sigmoid(torch.tensor(2.0))),
        -torch.log(1 - torch.sigmoid(torch.tensor(-1.0))),
        -torch.log(1 - torch.sigmoid(torch.tensor(0.5))),
    ]
    by_hand = (3 * losses[0] + losses[1] + losses[2]) / (3 + 1 + 1)
    torch.testing.assert_close(compute_loss(loss_function(2, weights), logits, targets), by_hand)
    unweighted = compute_loss(loss_function(2), logits, targets)
    torch.testing.assert_close(unweighted, sum(losses) / 3)

    multi = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    y = torch.tensor([1, 2])
    w = torch.tensor([1.0, 2.0, 0.5])
    nll = -torch.log_softmax(multi, 1)
    by_hand = (2.0 * nll[0, 1] + 0.5 * nll[1, 2]) / 2.5
    torch.testing.assert_close(compute_loss(loss_function(3, w), multi, y), by_hand)


def test_wide_branch_is_the_normalised_sum_of_its_ngram_rows():
    """The wide logits of a text are the sum of the rows of its words and of its hashed bigrams (which follow the
    word rows: vocabulary size 30 here) over the root of their number; zero before training, so the branch starts
    as no change."""
    model = make("last", num_outputs=2, wide_buckets=7)
    assert model.wide.table.weight.shape == (30 + 7, 2)
    assert float(model.wide(torch.tensor([[5, 9, 3]]), torch.tensor([3])).detach().abs().sum()) == 0.0
    torch.nn.init.normal_(model.wide.table.weight)
    rows = model.wide.table.weight.detach()
    pairs = [(5 * 1_000_003 + 9) % 7, (9 * 1_000_003 + 3) % 7]
    expected = (rows[5] + rows[9] + rows[3] + rows[30 + pairs[0]] + rows[30 + pairs[1]]) / 5**0.5
    got = model.wide(torch.tensor([[5, 9, 3, 0]]), torch.tensor([3]))
    torch.testing.assert_close(got[0], expected)
    deep = make("last", num_outputs=2)
    text, length = torch.tensor([[5, 9, 3]]), torch.tensor([3])
    torch.testing.assert_close(model(text, length), deep(text, length) + model.wide(text, length))


def test_wide_dropout_drops_ngrams_in_training_only():
    model = make("last", wide_buckets=7, wide_dropout=0.5)
    torch.nn.init.normal_(model.wide.table.weight)
    text, length = torch.randint(2, 30, (1, 40)), torch.tensor([40])
    evaluated = model.wide(text, length)
    model.train()
    torch.manual_seed(1)
    trained = torch.stack([model.wide(text, length) for _ in range(200)])
    assert not torch.allclose(trained[0], evaluated)
    torch.testing.assert_close(trained.mean(0), evaluated, atol=0.1, rtol=0)  # unbiased: kept rows are rescaled
