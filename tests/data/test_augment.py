import numpy as np
import pytest

from llmcls.data.augment import Augmentation, augment, nearest_neighbours
from llmcls.data.tokenize import TokenizedTexts

MASK = "[MASK]"


def settings(**changes) -> Augmentation:
    base = {"copies": 3, "mask_prob": 0.0, "replace_prob": 0.0, "ngram_prob": 0.0, "max_ngram": 3}
    return Augmentation(**{**base, **changes})


def corpus(n_texts: int = 50, *, vocab: int = 40, seed: int = 0) -> TokenizedTexts:
    rng = np.random.default_rng(seed)
    return TokenizedTexts.from_lists(
        [[f"w{t}" for t in rng.integers(0, vocab, rng.integers(1, 12))] for _ in range(n_texts)]
    )


def no_neighbours(tokens: TokenizedTexts) -> np.ndarray:
    return np.full((len(tokens.table), 2), -1, dtype=np.int64)


def run(tokens: TokenizedTexts, augmentation: Augmentation, *, seed: int = 0, classes=None, neighbours=None):
    classes = np.full(len(tokens), -1, dtype=np.int64) if classes is None else classes
    neighbours = no_neighbours(tokens) if neighbours is None else neighbours
    return augment(tokens, classes=classes, neighbours=neighbours, settings=augmentation, mask_token=MASK, seed=seed)


def copies_as_lists(copies: TokenizedTexts) -> list[list[str]]:
    return [copies.tokens(i) for i in range(len(copies))]


def test_same_seed_same_copies_other_seed_other_copies():
    tokens = corpus()
    augmentation = settings(mask_prob=0.2, replace_prob=0.2, ngram_prob=0.5)
    a, source_a = run(tokens, augmentation, seed=1)
    b, source_b = run(tokens, augmentation, seed=1)
    c, _ = run(tokens, augmentation, seed=2)
    assert copies_as_lists(a) == copies_as_lists(b)
    assert np.array_equal(source_a, source_b)
    assert copies_as_lists(a) != copies_as_lists(c)


def test_all_probabilities_zero_copies_equal_originals():
    tokens = corpus()
    copies, source = run(tokens, settings(copies=4))
    assert len(copies) == 4 * len(tokens)
    assert copies_as_lists(copies) == [tokens.tokens(i) for i in source]
    assert copies.table[: len(tokens.table)] == tokens.table
    assert copies.ids.dtype == np.int32 and copies.offsets.dtype == np.int64


def test_source_is_each_text_repeated_in_order():
    tokens = corpus(7)
    _, source = run(tokens, settings(copies=3, mask_prob=0.5, ngram_prob=0.5))
    assert source.dtype == np.int64
    assert source.tolist() == [i for i in range(7) for _ in range(3)]


def test_zero_copies_give_nothing():
    copies, source = run(corpus(), settings(copies=0, mask_prob=0.5))
    assert len(copies) == 0 and len(source) == 0 and len(copies.ids) == 0


def test_mask_prob_one_masks_every_token():
    tokens = corpus()
    copies, source = run(tokens, settings(mask_prob=1.0))
    assert copies.table == tokens.table + [MASK]
    assert set(copies.ids.tolist()) == {len(tokens.table)}
    assert np.array_equal(np.diff(copies.offsets), np.diff(tokens.offsets)[source])


def test_mask_token_already_in_table_is_reused():
    tokens = TokenizedTexts.from_lists([["a", MASK, "b"], ["c"]])
    copies, _ = run(tokens, settings(mask_prob=1.0))
    assert copies.table == tokens.table
    assert set(copies.ids.tolist()) == {tokens.table.index(MASK)}


def test_observed_mask_rate_is_close_to_mask_prob():
    tokens = corpus(2000)
    copies, _ = run(tokens, settings(copies=5, mask_prob=0.3, replace_prob=0.2))
    rate = np.mean(copies.ids == copies.table.index(MASK))
    # ~50k tokens: the standard error is ~0.002
    assert abs(rate - 0.3) < 0.015


def test_replace_prob_one_takes_only_given_neighbours_uniformly():
    tokens = corpus(vocab=20)
    table_size = len(tokens.table)
    t = np.arange(table_size)
    # three distinct neighbours per token, with a hole that must never be drawn
    neighbours = np.stack(
        [(t + 1) % table_size, np.full(table_size, -1), (t + 2) % table_size, (t + 3) % table_size], axis=1
    )
    copies, source = run(tokens, settings(copies=20, replace_prob=1.0), neighbours=neighbours)
    originals = np.concatenate([tokens.ids[tokens.offsets[i] : tokens.offsets[i + 1]] for i in source])
    assert len(originals) == len(copies.ids)
    offset = (copies.ids.astype(np.int64) - originals) % table_size  # which neighbour was taken
    assert set(offset.tolist()) == {1, 2, 3}
    shares = np.bincount(offset, minlength=4)[1:] / len(offset)
    assert np.all(np.abs(shares - 1 / 3) < 0.05)


def test_tokens_without_neighbours_fall_back_to_same_class_words():
    rng = np.random.default_rng(4)
    lists = [[f"{'ab'[i % 2]}{t}" for t in rng.integers(0, 15, 6)] for i in range(60)]
    lists += [["u0", "u1", "u2"]] * 4  # texts of unknown class draw from every text
    tokens = TokenizedTexts.from_lists(lists)
    classes = np.array([i % 2 for i in range(60)] + [-1] * 4, dtype=np.int64)
    neighbours = np.zeros((len(tokens.table), 0), dtype=np.int64)  # k = 0: nobody has neighbours
    copies, source = run(tokens, settings(copies=20, replace_prob=1.0), classes=classes, neighbours=neighbours)
    drawn_by_class: dict[int, set[str]] = {-1: set(), 0: set(), 1: set()}
    for copy, text in enumerate(source.tolist()):
        drawn_by_class[int(classes[text])].update(copies.tokens(copy))
    assert drawn_by_class[0] and all(token.startswith("a") for token in drawn_by_class[0])
    assert drawn_by_class[1] and all(token.startswith("b") for token in drawn_by_class[1])
    assert {token[0] for token in drawn_by_class[-1]} >= {"a", "b"}


def test_same_class_words_are_drawn_by_frequency():
    # class 0 is "x" nine times for each "y": draws follow the token positions, not the distinct tokens
    tokens = TokenizedTexts.from_lists([["x"] * 9 + ["y"]] * 50)
    copies, _ = run(
        tokens,
        settings(copies=10, replace_prob=1.0),
        classes=np.zeros(50, dtype=np.int64),
        neighbours=np.zeros((2, 0), dtype=np.int64),
    )
    share_y = np.mean(copies.ids == tokens.table.index("y"))
    assert abs(share_y - 0.1) < 0.02


def test_ngram_prob_one_gives_short_contiguous_slices():
    # distinct tokens within each text, so a slice's first token tells where it starts
    lists = [[f"t{i}_{j}" for j in range(8 if i % 4 else 1 + i % 3)] for i in range(200)]
    tokens = TokenizedTexts.from_lists(lists)
    copies, source = run(tokens, settings(copies=10, ngram_prob=1.0, max_ngram=4))
    lengths = np.diff(copies.offsets)
    assert lengths.min() >= 1 and lengths.max() <= 4
    starts = []
    for copy, text in enumerate(source.tolist()):
        original, piece = lists[text], copies.tokens(copy)
        start = original.index(piece[0])
        assert piece == original[start : start + len(piece)]
        starts.append(start)
    long = np.diff(tokens.offsets)[source] == 8
    # n uniform in 1..4 and the start uniform over the places an n-gram fits
    assert np.all(np.abs(np.bincount(lengths[long], minlength=5)[1:] / long.sum() - 0.25) < 0.06)
    starts = np.array(starts)
    assert set(starts[long & (lengths == 4)].tolist()) == set(range(5))
    assert set(starts[long & (lengths == 1)].tolist()) == set(range(8))


def test_ngram_never_empties_a_copy_and_empty_texts_stay_empty():
    tokens = TokenizedTexts.from_lists([["a"], [], ["b", "c"]])
    copies, source = run(tokens, settings(copies=10, ngram_prob=1.0, max_ngram=5, mask_prob=0.5))
    lengths = np.diff(copies.offsets)
    assert np.all(lengths[source == 1] == 0)
    assert np.all(lengths[source != 1] >= 1)


def test_bad_settings_and_shapes_are_refused():
    with pytest.raises(ValueError, match="mask_prob"):
        settings(mask_prob=0.7, replace_prob=0.5)
    with pytest.raises(ValueError, match="max_ngram"):
        settings(max_ngram=0)
    tokens = corpus(5)
    with pytest.raises(ValueError, match="classes"):
        run(tokens, settings(), classes=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="neighbours"):
        run(tokens, settings(), neighbours=np.zeros((1, 2), dtype=np.int64))


def brute_force_neighbours(vectors: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.full((len(vectors), k), -1, dtype=np.int64)
    for i in np.flatnonzero(valid):
        others = [j for j in np.flatnonzero(valid) if j != i]
        ranked = sorted(others, key=lambda j: (-float(unit[i] @ unit[j]), j))[:k]
        out[i, : len(ranked)] = ranked
    return out


def test_nearest_neighbours_finds_the_cluster_and_never_self():
    # three tight clusters along the axes of 3-d space, each of three points
    rng = np.random.default_rng(0)
    centres = np.eye(3).repeat(3, axis=0)  # [9, 3]
    vectors = centres + rng.normal(scale=0.01, size=centres.shape)
    result = nearest_neighbours(vectors, valid=np.ones(9, dtype=bool), k=2)
    assert result.shape == (9, 2) and result.dtype == np.int64
    for row in range(9):
        assert set(result[row].tolist()) == set(range(row // 3 * 3, row // 3 * 3 + 3)) - {row}


def test_nearest_neighbours_uses_cosine_not_distance():
    vectors = np.array([[1.0, 0.0], [100.0, 1.0], [0.9, 0.5], [0.0, 1.0]])
    result = nearest_neighbours(vectors, valid=np.ones(4, dtype=bool), k=1)
    assert result[0, 0] == 1  # far away but the same direction


def test_invalid_rows_get_no_neighbours_and_are_no_neighbours():
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [1.0, 0.02]])
    valid = np.array([True, False, True, True])
    result = nearest_neighbours(vectors, valid=valid, k=3)
    assert result[1].tolist() == [-1, -1, -1]
    assert result[0].tolist() == [3, 2, -1]  # only two valid others
    assert 1 not in result


def test_nearest_neighbours_matches_brute_force_in_small_blocks():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(53, 8))
    valid = rng.random(53) < 0.8
    result = nearest_neighbours(vectors, valid=valid, k=5, block=7)
    assert np.array_equal(result, brute_force_neighbours(vectors, valid, 5))


def test_nearest_neighbours_with_k_zero_or_too_few_rows():
    vectors = np.ones((3, 2))
    assert nearest_neighbours(vectors, valid=np.ones(3, dtype=bool), k=0).shape == (3, 0)
    single = nearest_neighbours(vectors, valid=np.array([True, False, False]), k=2)
    assert np.all(single == -1)
