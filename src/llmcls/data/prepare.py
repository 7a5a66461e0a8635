"""From a config to encoded train/valid/test splits, with the tokenizer, vocabulary, label map and pretrained
vectors that go with them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmcls.config import Config
from llmcls.data.batching import (
    LONG_TEXT_CEILING,
    LONG_TEXT_FACTOR,
    LONG_TEXT_FLOOR,
    EncodedTexts,
    long_text_cut,
    truncate,
)
from llmcls.data.encoding import TextEncoding, WordEncoding
from llmcls.data.inputs import read_labelled
from llmcls.data.readers import Examples, split_off
from llmcls.data.run_vectors import load_config_vectors, report_coverage
from llmcls.data.targets import build_label_map, encode_targets
from llmcls.data.tokenize import TokenizedTexts, Tokenizer, resolved_max_tokens
from llmcls.data.vocab import LabelMap, Vocab
from llmcls.data.wordpiece import EncoderFolder, WordPieceEncoding, resolve_encoder
from llmcls.embeddings import Coverage, Vectors, default_cache_dir
from llmcls.errors import ConfigError, DataError
from llmcls.events import EventHandler, Info, ignore


@dataclass
class Split:
    """One encoded split: token ids and class ids (multi-label: multi-hot rows)."""

    texts: EncodedTexts
    targets: np.ndarray  # [n] int64 class ids; multi-label: [n, classes] float32 0/1

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class PreparedData:
    """A run's encoded splits and what encodes texts as its model reads them.

    `tokenizer` and `vocab` are the BiLSTM's (None for an encoder run, whose `encoder` is the pretrained
    model's folder): `tokenizer` cuts texts where the training texts were cut; `encoding` encodes validation, test
    and new texts either way."""

    tokenizer: Tokenizer | None
    vocab: Vocab | None
    labels: LabelMap
    vectors: Vectors | None  # None when embeddings.source is none, or when resuming a run
    train: Split
    valid: Split
    test: Split | None
    valid_from_train: bool
    coverage: Coverage | None = None  # of the training data by `vectors`; None without them
    encoding: TextEncoding | None = None  # set by prepare_data
    encoder: EncoderFolder | None = None  # model.encoder's folder (a new encoder run)
    train_texts: list[str] | None = None  # the training texts as read (distillation augments them); None once set up


def encode_labelled(
    examples: Examples, path: str | Path, *, config: Config, encoding: TextEncoding, labels: LabelMap
) -> Split:
    """The examples of a labelled file as a trained run's model reads them: token ids and targets.

    Raises:
        DataError: a label the model was not trained on (single- or multi-label).
    """
    return Split(
        encoding.encode(examples.texts),
        encode_targets(examples, path, labels=labels, data=config.data, for_model=True),
    )


def _folder(folder: EncoderFolder | None) -> EncoderFolder:
    assert folder is not None, "an encoder config has its folder resolved"
    return folder


def encode_texts(tokenizer: Tokenizer, vocab: Vocab, texts: list[str]) -> EncodedTexts:
    return WordEncoding(tokenizer, vocab).encode(texts)


def make_tokenizer(config: Config) -> Tokenizer:
    """The tokenizer of a config, with its on-disk cache unless `tokenizer.cache` is false."""
    cache_dir = None
    if config.tokenizer.cache:
        cache_dir = Path(config.tokenizer.cache_dir) if config.tokenizer.cache_dir else default_cache_dir() / "tokens"
    return Tokenizer(config.tokenizer, cache_dir)


def _training_tokens(
    config: Config, texts: list[str], on_event: EventHandler = ignore
) -> tuple[Tokenizer, TokenizedTexts]:
    """The tokens of the training texts, cut at `tokenizer.max_tokens`, or when that is null at `long_text_cut`
    of their lengths (an Info event says so when a text is cut), and the tokenizer that cuts texts likewise."""
    t0, tokenizer = time.perf_counter(), make_tokenizer(config)
    if config.tokenizer.max_tokens is not None:
        tokens = tokenizer.tokenize_many(texts)
    else:  # one token beyond the ceiling, so that a text longer than any cut is seen to be
        probe = tokenizer.cut_at(LONG_TEXT_CEILING + 1)
        tokens = probe.tokenize_many(texts)
        tokenizer = probe.cut_at(long_text_cut(np.diff(tokens.offsets)))
    on_event(
        Info(
            f"tokenized {len(tokens)} training texts in {time.perf_counter() - t0:.1f}s "
            f"({len(tokens.ids):,} tokens{'' if tokenizer.spacy_loaded else ', from the cache'})"
        )
    )
    if config.tokenizer.max_tokens is None:
        cut = resolved_max_tokens(tokenizer.config)
        assert cut is not None  # the rule just chose one
        tokens = _cut_long_texts(tokens, cut, on_event)
    return tokenizer, tokens


def _cut_long_texts(tokens: TokenizedTexts, cut: int, on_event: EventHandler) -> TokenizedTexts:
    encoded, n_cut = truncate(EncodedTexts(tokens.ids, tokens.offsets), cut)
    if n_cut:
        on_event(
            Info(
                f"{n_cut} of {len(tokens)} training texts, far longer than the rest, were cut to their first "
                f"{cut:,} tokens ({LONG_TEXT_FACTOR} x the 99th percentile of the lengths, within "
                f"{LONG_TEXT_FLOOR:,} .. {LONG_TEXT_CEILING:,}); tokenizer.max_tokens sets a cut of your own"
            )
        )
    return TokenizedTexts(tokens.table, encoded.ids, encoded.offsets)


def prepare_data(
    config: Config,
    on_event: EventHandler = ignore,
    *,
    vocab: Vocab | None = None,
    labels: LabelMap | None = None,
    encoding: WordPieceEncoding | None = None,
) -> PreparedData:
    """Read, split, tokenize and encode the data of a run, and load its pretrained vectors.

    Given the `vocab` (or, for an encoder run, the `encoding`) and `labels` of an existing run (to resume it),
    those are used as they are and no vectors are loaded.

    Raises:
        ConfigError: the config still has `auto` values; model.encoder is not a usable model.
        DataError: a file is unreadable, the training data has fewer than two classes, or valid/test have
            labels that train lacks.
        EmbeddingsError: the vectors cannot be read.
    """
    if config.auto_keys():  # a bug of the caller: training resolves them before it reads the data
        raise ConfigError(
            f"{', '.join(config.auto_keys())}: auto must be chosen from the training data first "
            "(llmcls.adapt.choices.resolve_auto)"
        )
    data = config.data
    folder = resolve_encoder(config.model.encoder) if config.model.encoder and encoding is None else None  # first
    train, _ = read_labelled(config, data.train, on_event)
    valid_from_train = data.valid is None
    if valid_from_train:
        train, valid = split_off(train, data.valid_fraction, config.seed)
    else:
        valid, _ = read_labelled(config, data.valid, on_event)
    labels = labels or build_label_map(train, data.train, data)
    train_targets = encode_targets(train, data.train, labels=labels, data=data)
    if len(labels) < 2:
        found = f"a single class ({labels.labels[0]!r})" if labels.labels else "no labels at all"
        raise DataError(f"{data.train}: the training data has {found}; a classifier needs at least two")
    valid_targets = encode_targets(valid, data.valid or data.train, labels=labels, data=data)
    test = read_labelled(config, data.test, on_event)[0] if data.test else None
    test_targets = (
        None if test is None or data.test is None else encode_targets(test, data.test, labels=labels, data=data)
    )
    splits = (train, train_targets), (valid, valid_targets), (test, test_targets)
    if config.uses_encoder:
        return _encoder_data(
            config,
            splits,
            labels,
            valid_from_train,
            encoding or encoder_encoding(config, _folder(folder)),
            folder,
            on_event,
        )
    return _word_data(config, splits, labels, valid_from_train, vocab, on_event)


_Splits = tuple[tuple[Examples, np.ndarray], tuple[Examples, np.ndarray], tuple[Examples | None, np.ndarray | None]]


def _word_data(
    config: Config,
    splits: _Splits,
    labels: LabelMap,
    valid_from_train: bool,
    vocab: Vocab | None,
    on_event: EventHandler,
) -> PreparedData:
    """The BiLSTM's data: spaCy tokens, the vocabulary (new, with pretrained vectors, or the run's). Validation and
    test texts are cut as eval and predict cut them (at tokenizer.predict_max_tokens when tokenizer.max_tokens is
    null), so that training's scores are theirs and a huge text cannot exhaust memory there either."""
    (train, train_targets), (valid, valid_targets), (test, test_targets) = splits
    tokenizer, train_tokens = _training_tokens(config, train.texts, on_event)
    vectors = coverage = None
    if vocab is None:
        vocab = Vocab.build_from(train_tokens, config.vocab.max_size, config.vocab.min_freq)
        vectors = load_config_vectors(config, vocab, on_event)
        coverage = report_coverage(config.embeddings.source, train_tokens, vectors=vectors, on_event=on_event)
        if vectors is not None and config.vocab.add_from_vectors:
            vocab = vocab.extend(w for w in vectors.words if w not in vocab.stoi)
    ids, offsets = vocab.encode_tokenized(train_tokens)
    del train_tokens
    settings = config.tokenizer
    encoding = WordEncoding(tokenizer.cut_at(resolved_max_tokens(settings) or settings.predict_max_tokens), vocab)
    return PreparedData(
        tokenizer=tokenizer,
        vocab=vocab,
        labels=labels,
        vectors=vectors,
        train=Split(EncodedTexts(ids, offsets), train_targets),
        valid=Split(encoding.encode(valid.texts), valid_targets),
        test=None if test is None or test_targets is None else Split(encoding.encode(test.texts), test_targets),
        valid_from_train=valid_from_train,
        coverage=coverage,
        encoding=encoding,
        train_texts=train.texts,
    )


def encoder_encoding(config: Config, folder: EncoderFolder) -> WordPieceEncoding:
    """The WordPiece encoding a new encoder run trains with: texts cut at tokenizer.max_tokens (at most, and by
    default, the model's limit).

    Raises:
        ConfigError: tokenizer.max_tokens exceeds what the model reads.
    """
    cut, limit = config.tokenizer.max_tokens, folder.max_content_tokens
    if isinstance(cut, int) and cut > limit:
        raise ConfigError(
            f"tokenizer.max_tokens: {cut} WordPiece tokens is more than {folder.path.name} reads "
            f"({limit}: its {limit + 2} positions less [CLS] and [SEP]); chunking reads longer texts"
        )
    return WordPieceEncoding(folder.tokenizer, max_tokens=cut if isinstance(cut, int) else limit, limit=limit)


def _encoder_data(
    config: Config,
    splits: _Splits,
    labels: LabelMap,
    valid_from_train: bool,
    encoding: WordPieceEncoding,
    folder: EncoderFolder | None,
    on_event: EventHandler,
) -> PreparedData:
    """An encoder run's data: the pretrained model's WordPiece tokens (`folder`'s tokenizer for a new run, the
    run's own when resuming: then `folder` is None)."""
    (train, train_targets), (valid, valid_targets), (test, test_targets) = splits
    t0 = time.perf_counter()
    train_ids = encoding.encode(train.texts)
    at_cut = int((train_ids.lengths == encoding.max_tokens).sum())
    on_event(
        Info(
            f"tokenized {len(train_ids)} training texts in {time.perf_counter() - t0:.1f}s "
            f"({len(train_ids.ids):,} WordPiece tokens; {at_cut} texts reach the cut of {encoding.max_tokens} "
            "tokens, tokenizer.max_tokens)"
        )
    )
    return PreparedData(
        tokenizer=None,
        vocab=None,
        labels=labels,
        vectors=None,
        train=Split(train_ids, train_targets),
        valid=Split(encoding.encode(valid.texts), valid_targets),
        test=None if test is None or test_targets is None else Split(encoding.encode(test.texts), test_targets),
        valid_from_train=valid_from_train,
        encoding=encoding,
        encoder=folder,
        train_texts=train.texts,
    )
