"""From a config to encoded train/valid/test splits, with the tokenizer, vocabulary, label map and pretrained
vectors that go with them."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from llmcls.config import Config, DataConfig
from llmcls.data.batching import (
    LONG_TEXT_CEILING,
    LONG_TEXT_FACTOR,
    LONG_TEXT_FLOOR,
    EncodedTexts,
    long_text_cut,
    truncate,
)
from llmcls.data.encoding import TextEncoding, WordEncoding
from llmcls.data.readers import Examples, iter_texts, read_examples, split_off
from llmcls.data.tokenize import TokenizedTexts, Tokenizer, resolved_max_tokens
from llmcls.data.vocab import LabelMap, Vocab
from llmcls.data.wordpiece import EncoderFolder, WordPieceEncoding, resolve_encoder
from llmcls.embeddings import (
    LOW_TOKEN_COVERAGE,
    PACKAGED_GLOVE,
    Coverage,
    DownloadLimits,
    Vectors,
    default_cache_dir,
    load_vectors,
    vector_coverage,
    wanted_words,
)
from llmcls.errors import ConfigError, DataError, EmbeddingsError
from llmcls.events import DownloadProgress, EventHandler, Info, ignore


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


def _format_options(data: DataConfig) -> dict[str, Any]:
    """The data settings that say how to read a file or folder, beyond its columns and format."""
    return {
        "header": data.header,
        "encoding": data.encoding,
        "label_prefix": data.label_prefix,
        "split": data.split,
        "classes": data.classes,
    }


def read_split(data: DataConfig, path: str, labelled: bool = True) -> Examples:
    """Read one file or folder with the column and format settings of the data config."""
    return read_examples(
        Path(path), data.text_column, data.label_column if labelled else None, data.format, **_format_options(data)
    )


def input_blocks(
    source: str, data: DataConfig, column: str | int | None = None, fmt: str = "auto"
) -> Iterator[list[str]]:
    """The texts to predict, in blocks read as they are needed (memory stays bounded whatever the input's size): a
    file or folder (`-`: standard input, plain text unless `fmt` says otherwise) read with the run's data settings,
    its text column unless `column` is given. Empty texts keep their rows.

    Raises:
        DataError: the input is unreadable, or has no such column.
    """
    column = data.text_column if column is None else column
    if source == "-":
        return iter_texts(sys.stdin, column, "txt" if fmt == "auto" else fmt, **_format_options(data))
    return iter_texts(Path(source), column, fmt, **_format_options(data))


def read_input(source: str, data: DataConfig, column: str | int | None = None, fmt: str = "auto") -> list[str]:
    """Every text of `input_blocks` (same arguments) in one list."""
    return [text for block in input_blocks(source, data, column, fmt) for text in block]


def drop_empty_texts(examples: Examples, path: str | Path, policy: str, on_event: EventHandler = ignore) -> Examples:
    """Remove rows whose text is empty or whitespace only (policy `skip`, counted in an Info event), or refuse
    them (policy `error`).

    Raises:
        DataError: `error` policy and an empty text, or no text left at all.
    """
    empty = [i for i, text in enumerate(examples.texts) if not text.strip()]
    if not empty:
        return examples
    if policy == "error":
        raise DataError(
            f"{path}: {len(empty)} empty or whitespace-only texts (the first is "
            f"{examples.record(empty[0])}); set data.empty_texts: skip to leave them out"
        )
    if len(empty) == len(examples):
        raise DataError(f"{path}: every text is empty")
    on_event(
        Info(f"{path}: skipped {len(empty)} empty or whitespace-only texts (the first is {examples.record(empty[0])})")
    )
    dropped = set(empty)
    return examples.subset([i for i in range(len(examples)) if i not in dropped])


def read_labelled(
    config: Config, path: str | Path | None = None, on_event: EventHandler = ignore
) -> tuple[Examples, str]:
    """A labelled file of a run, read with its data settings, empty texts handled as `data.empty_texts` says: the
    one way train, eval, export and profile read one. Without `path`, the run's validation data: its file, or
    the part of the training file that training holds out.

    Returns:
        The examples, and what they are (the path, or which part of which file).

    Raises:
        DataError: the file is unreadable, or has empty texts that `data.empty_texts: error` refuses.
    """
    data = config.data
    if path is None and data.valid is None:
        train, _ = read_labelled(config, data.train, on_event)
        return split_off(train, data.valid_fraction, config.seed)[1], f"{data.train} (the held-out validation part)"
    path = str(data.valid if path is None else path)
    return drop_empty_texts(read_split(data, path), path, data.empty_texts, on_event), path


def encode_labelled(
    examples: Examples, path: str | Path, config: Config, encoding: TextEncoding, labels: LabelMap
) -> Split:
    """The examples of a labelled file as a trained run's model reads them: token ids and targets.

    Raises:
        DataError: a label the model was not trained on (single- or multi-label).
    """
    return Split(encoding.encode(examples.texts), encode_targets(examples, path, labels, config.data, for_model=True))


def _folder(folder: EncoderFolder | None) -> EncoderFolder:
    assert folder is not None, "an encoder config has its folder resolved"
    return folder


def label_sets(examples: Examples, separator: str) -> list[list[str]]:
    """The label set of each example: a JSONL list as it is, a string split at `separator` (an empty string
    is the empty set). Each set is sorted and without repeats."""
    return [
        sorted(
            {part.strip() for part in (label if isinstance(label, list) else label.split(separator)) if part.strip()}
        )
        for label in _labels(examples)
    ]


def _labels(examples: Examples) -> list[str | list[str]]:
    """The labels of labelled examples (read from a file with a label column)."""
    assert examples.labels is not None, "labelled data has labels"
    return examples.labels


def single_labels(examples: Examples, path: str | Path) -> list[str]:
    """The labels of single-label data.

    Raises:
        DataError: a label is a list (multi-label data read without data.multi_label).
    """
    labels = _labels(examples)
    lists = [i for i, label in enumerate(labels) if isinstance(label, list)]
    if lists:
        raise DataError(
            f"{path}: {len(lists)} labels are lists (the first in record {lists[0] + 1}); for "
            "multi-label data set data.multi_label: true"
        )
    return cast(list[str], labels)  # none is a list


def encode_targets(
    examples: Examples, path: str | Path, labels: LabelMap, data: DataConfig, for_model: bool = False
) -> np.ndarray:
    """Class ids [n] int64, or for multi-label data multi-hot rows [n, classes] float32.

    Raises:
        DataError: a label the label map does not know (named, with the known ones; `for_model`: said of a
            trained model's labels rather than of the training data's).
    """
    sets = label_sets(examples, data.label_separator) if data.multi_label else []
    singles = [] if data.multi_label else single_labels(examples, path)
    flat = [label for labels_ in sets for label in labels_] if data.multi_label else singles
    unseen = labels.unknown(flat)
    if unseen:
        shown = ", ".join(map(repr, unseen[:10])) + (" ..." if len(unseen) > 10 else "")
        if for_model:
            raise DataError(
                f"{path}: labels the model was not trained on: {shown} (model labels: {', '.join(labels.labels)})"
            )
        raise DataError(
            f"{path}: labels not seen in the training data: {shown} (training labels: {', '.join(labels.labels)})"
        )
    return labels.encode_sets(sets) if data.multi_label else labels.encode(singles)


def build_label_map(examples: Examples, path: str | Path, data: DataConfig) -> LabelMap:
    """The label map of the training data: every label that occurs, sorted.

    Raises:
        DataError: more distinct labels than `data.max_classes` (naming the label column).
    """
    if data.multi_label:
        labels = LabelMap.build(label for labels in label_sets(examples, data.label_separator) for label in labels)
    else:
        labels = LabelMap.build(single_labels(examples, path))
    if len(labels) > data.max_classes:
        raise DataError(
            f"{path}: label column {data.label_column!r} holds {len(labels)} distinct labels, more than "
            f"data.max_classes ({data.max_classes}); is it the right column?"
        )
    return labels


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


def load_config_vectors(config: Config, vocab: Vocab, on_event: EventHandler = ignore) -> Vectors | None:
    """The pretrained vectors of the vocabulary's words (plus `vocab.add_from_vectors` others), or None."""
    emb = config.embeddings
    if emb.source == "none":
        return None
    cache = Path(emb.cache_dir) if emb.cache_dir else None
    t0 = time.perf_counter()
    vectors = load_vectors(
        emb.source,
        wanted=wanted_words(vocab.itos),
        dim=emb.dim,
        cache_dir=cache,
        on_progress=lambda done, total: on_event(DownloadProgress(emb.source, done, total)),
        extra=config.vocab.add_from_vectors,
        limits=DownloadLimits(
            sha256=emb.sha256, max_bytes=emb.download_max_mb << 20, total_timeout=emb.download_timeout
        ),
    )
    if not vectors.words:
        raise EmbeddingsError(
            f"{emb.source}: none of the {len(vocab)} vocabulary words has a vector; "
            "check tokenizer.lower and the vector file"
        )
    on_event(
        Info(
            f"vectors: {emb.source} ({vectors.dim}d, {len(vectors.words)} rows read) in {time.perf_counter() - t0:.1f}s"
        )
    )
    return vectors


def report_coverage(
    source: str, train_tokens: TokenizedTexts, vectors: Vectors | None, on_event: EventHandler = ignore
) -> Coverage | None:
    """How much of the training data `vectors` cover, said in an Info event and warned about when it is low
    (`LOW_TOKEN_COVERAGE`); without vectors (embeddings.source none), a warning and None.

    Only the vocabulary's words were looked up, so a word left out of it (vocab.max_size, vocab.min_freq) counts
    as uncovered, as it is for the model: it becomes `<unk>`.
    """
    if vectors is None:
        on_event(
            Info(
                f"warning: embeddings.source is none: every word vector starts random ({PACKAGED_GLOVE} "
                "or a vector file would give them pretrained values)"
            )
        )
        return None
    counts = np.bincount(train_tokens.ids, minlength=len(train_tokens.table))
    coverage = vector_coverage(train_tokens.table, counts, set(vectors.words))
    on_event(
        Info(
            f"vectors: {coverage.tokens:.1%} of training tokens, {coverage.words:.1%} of distinct words "
            f"have a pretrained vector ({source})"
        )
    )
    if coverage.tokens < LOW_TOKEN_COVERAGE:
        on_event(
            Info(
                f"warning: only {coverage.tokens:.1%} of training tokens have a pretrained vector in {source} "
                f"(under {LOW_TOKEN_COVERAGE:.0%}); the others start random: check embeddings.source, "
                "tokenizer.lower and the vocabulary's size"
            )
        )
    return coverage


def prepare_data(
    config: Config,
    on_event: EventHandler = ignore,
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
    train_targets = encode_targets(train, data.train, labels, data)
    if len(labels) < 2:
        found = f"a single class ({labels.labels[0]!r})" if labels.labels else "no labels at all"
        raise DataError(f"{data.train}: the training data has {found}; a classifier needs at least two")
    valid_targets = encode_targets(valid, data.valid or data.train, labels, data)
    test = read_labelled(config, data.test, on_event)[0] if data.test else None
    test_targets = None if test is None or data.test is None else encode_targets(test, data.test, labels, data)
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
        coverage = report_coverage(config.embeddings.source, train_tokens, vectors, on_event)
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
