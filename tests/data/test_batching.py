import numpy as np
import pytest
import torch

from llmcls.config import TokenizerConfig
from llmcls.data.batching import BucketSampler, EncodedTexts, collate, padding_fraction
from llmcls.data.readers import read_examples
from llmcls.data.tokenize import Tokenizer
from llmcls.data.vocab import Vocab

from conftest import FIXTURES


@pytest.fixture(scope="module")
def sst2_lengths():
    texts = read_examples(FIXTURES / "sst2_train.csv").texts
    return np.array([len(t) for t in Tokenizer(TokenizerConfig()).tokenize(texts)])


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
    random_batches = [random_order[i:i + 16] for i in range(0, len(random_order), 16)]
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
    vocab = Vocab.build([["a", "b", "c"]])
    ids, offsets = vocab.encode_all([["a"], ["a", "b", "c"], ["c", "b"]])
    token_ids, lengths = collate(EncodedTexts(ids, offsets), np.array([1, 0, 2]), vocab.pad_index)
    a, b, c = (vocab.stoi[x] for x in "abc")
    assert token_ids.tolist() == [[a, b, c], [a, 0, 0], [c, b, 0]]
    assert lengths.tolist() == [3, 1, 2] and lengths.dtype == torch.int64
