import numpy as np
import pytest
import torch

from llmcls.config import TokenizerConfig
from llmcls.data.batching import BucketSampler, EncodedTexts, collate, long_text_cut, padding_fraction, truncate
from llmcls.data.readers import read_examples
from llmcls.data.tokenize import TokenizedTexts, Tokenizer
from llmcls.data.vocab import PAD, UNK, Vocab
from llmcls.inference.forward import batched_logits
from support.paths import FIXTURES


@pytest.fixture(scope="module")
def sst2_lengths():
    texts = read_examples(FIXTURES / "sst2_train.csv").texts
    return np.array([len(t) for t in Tokenizer(TokenizerConfig())(texts)])


def test_every_index_once_per_epoch(sst2_lengths):
    sampler = BucketSampler(sst2_lengths, batch_size=16, pool_batches=5, seed=3)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        assert len(batches) == len(sampler)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(sst2_lengths)))
        assert max(len(b) for b in batches) == 16


def test_order_depends_only_on_seed_and_epoch(sst2_lengths):
    a, b = BucketSampler(sst2_lengths, 16, seed=3), BucketSampler(sst2_lengths, 16, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert [x.tolist() for x in a.batches()] == [x.tolist() for x in b.batches()]
    b.set_epoch(3)
    assert [x.tolist() for x in a.batches()] != [x.tolist() for x in b.batches()]


def test_bucketing_cuts_padding(sst2_lengths):
    bucketed = BucketSampler(sst2_lengths, 16, pool_batches=100, seed=0).batches()
    random_order = np.random.default_rng(0).permutation(len(sst2_lengths))
    random_batches = [random_order[i : i + 16] for i in range(0, len(random_order), 16)]
    assert padding_fraction(bucketed, sst2_lengths) < 0.05
    assert padding_fraction(random_batches, sst2_lengths) > 0.3


def test_unshuffled_batches_are_sorted_by_length(sst2_lengths):
    batches = BucketSampler(sst2_lengths, 32, shuffle=False).batches()
    flat = np.concatenate(batches)
    assert flat.tolist() == sorted(flat.tolist(), key=lambda i: (sst2_lengths[i], i))


def test_padding_fraction_by_hand():
    lengths = np.array([1, 3, 2, 2])
    assert padding_fraction([np.array([0, 1]), np.array([2, 3])], lengths) == pytest.approx(2 / 10)


def test_collate_pads_and_keeps_lengths():
    vocab = Vocab([PAD, UNK, "a", "b", "c"])
    ids, offsets = vocab.encode_tokenized(TokenizedTexts.from_lists([["a"], ["a", "b", "c"], ["c", "b"]]))
    token_ids, lengths = collate(EncodedTexts(ids, offsets), np.array([1, 0, 2]), vocab.pad_index)
    a, b, c = (vocab.stoi[x] for x in "abc")
    assert token_ids.tolist() == [[a, b, c], [a, 0, 0], [c, b, 0]]
    assert lengths.tolist() == [3, 1, 2] and lengths.dtype == torch.int64


def test_a_huge_text_is_alone_in_its_batch(sst2_lengths):
    lengths = sst2_lengths.copy()
    lengths[7] = 100_000
    for shuffle in (True, False):
        sampler = BucketSampler(lengths, 64, seed=1, shuffle=shuffle, max_tokens=32_768)
        batches = sampler.batches()
        assert [b.tolist() for b in batches if 7 in b] == [[7]]
        assert max(len(b) * int(lengths[b].max()) for b in batches if 7 not in b) <= 32_768
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        assert len(sampler) == len(batches)


def test_a_binding_budget_cuts_batches_by_padded_tokens():
    lengths = np.array([1, 2, 3, 4, 10, 10, 30])
    batches = BucketSampler(lengths, 4, shuffle=False, max_tokens=20).batches()
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5], [6]]  # 4 x 4, 2 x 10, 1 x 30 (alone, over)


def test_sst2_lengths_give_the_same_batches_as_without_a_budget(sst2_lengths):
    for epoch in (1, 2, 3):
        plain = BucketSampler(sst2_lengths, 64, seed=13)
        budget = BucketSampler(sst2_lengths, 64, seed=13, max_tokens=32_768)
        plain.set_epoch(epoch)
        budget.set_epoch(epoch)
        assert [b.tolist() for b in plain.batches()] == [b.tolist() for b in budget.batches()]
        assert len(plain) == len(budget)
    plain_eval = BucketSampler(sst2_lengths, 256, shuffle=False).batches()
    budget_eval = BucketSampler(sst2_lengths, 256, shuffle=False, max_tokens=131_072).batches()
    assert [b.tolist() for b in plain_eval] == [b.tolist() for b in budget_eval]


def test_batch_counts_per_epoch_leave_the_epoch_alone(sst2_lengths):
    lengths = sst2_lengths.copy()
    lengths[::50] = 500  # a budget that binds: counts may differ between epochs
    sampler = BucketSampler(lengths, 64, pool_batches=2, seed=5, max_tokens=4_000)
    sampler.set_epoch(9)
    counts = sampler.batch_counts(range(1, 4))
    assert sampler.epoch == 9
    for epoch, count in zip(range(1, 4), counts):
        sampler.set_epoch(epoch)
        assert len(sampler.batches()) == count


def test_batched_logits_respects_the_token_budget():
    ids, offsets = np.arange(1, 1 + 3 + 50 + 2, dtype=np.int64), np.array([0, 3, 53, 55])
    seen = []

    class Recorder:
        num_outputs = 1

        def __call__(self, token_ids, lengths):
            seen.append(token_ids.shape)
            return lengths[:, None].astype(np.float32)

    out = batched_logits(Recorder(), EncodedTexts(ids, offsets), batch_size=256, pad_index=0, max_tokens=40)
    assert out[:, 0].tolist() == [3, 50, 2]  # input order
    assert sorted(seen) == [(1, 50), (2, 3)]


def test_truncate_keeps_heads_and_counts():
    texts = EncodedTexts(np.arange(10, dtype=np.int64), np.array([0, 2, 8, 10]))
    cut, n = truncate(texts, 3)
    assert n == 1
    assert cut.offsets.tolist() == [0, 2, 5, 7] and cut.ids.tolist() == [0, 1, 2, 3, 4, 8, 9]
    same, none = truncate(texts, 6)
    assert same is texts and none == 0


@pytest.mark.parametrize(
    "lengths,cut",
    [
        ([10] * 100, 1_000),  # short texts: the floor, which none reaches
        ([10] * 99 + [1_000_000], 1_000),  # one huge text among short ones: cut at the floor
        (list(range(1, 801)), 3_168),  # 4 x the 99th percentile (792)
        ([10_001] * 50, 10_000),  # every text huge: the ceiling bounds memory whatever the data
        ([], 1_000),
    ],
)
def test_long_text_cut(lengths, cut):
    assert long_text_cut(np.array(lengths)) == cut
