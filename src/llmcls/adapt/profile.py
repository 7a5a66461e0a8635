"""What a training file holds, measured the way training reads it: how many texts and classes, whether the labels
are sets, and how long the texts are in tokens (from a bounded random sample, since tokenizing a large file takes
a while; every row is counted); and, when there is a validation file, how long its texts are. With `model.encoder`
the lengths are counted in that model's WordPiece content tokens, as `tokenizer.max_tokens` counts them then."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmcls.config import Config
from llmcls.data.inputs import read_labelled
from llmcls.data.targets import label_sets
from llmcls.data.tokenize import Tokenizer
from llmcls.data.wordpiece import WordPieceEncoding, resolve_encoder
from llmcls.events import EventHandler, ignore

SAMPLE_TEXTS = 5_000  # texts tokenized for the length statistics (about 10 s for reviews of 250 tokens)
SAMPLE_VALID_TEXTS = 1_000  # validation texts tokenized for their median length
PERCENTILES = (50, 90, 95, 99)

LengthCounter = Callable[[list[str]], np.ndarray]  # texts -> their lengths in tokens, [n_texts]


@dataclass(frozen=True, kw_only=True)
class EncoderFacts:
    """What the adaptive defaults need to know of the pretrained encoder that `model.encoder` names."""

    spec: str  # model.encoder as given: minilm or a folder
    limit: int  # the most content tokens it reads in one text (its positions less [CLS] and [SEP])
    hidden_size: int
    layers: int


@dataclass(frozen=True, kw_only=True)
class DataProfile:
    """The measured facts about a training file that the adaptive defaults depend on."""

    path: str
    texts: int  # rows read (empty texts skipped as data.empty_texts says)
    train_texts: int  # the texts an epoch trains on: without the validation part held out of the file, if any
    class_counts: dict[str, int]  # label -> texts that have it, most frequent first
    multi_label: bool
    sampled: int  # texts tokenized for the length statistics
    percentiles: dict[int, int]  # 50, 90, 95, 99 -> tokens (the encoder's WordPiece tokens with `encoder`)
    max_tokens: int  # the longest sampled text, in tokens
    mean_tokens: float
    valid_median: int | None = None  # the median validation text, in tokens; None when validation is held out of train
    valid_p99: int | None = None  # the 99th percentile of the validation texts' lengths, likewise
    encoder: EncoderFacts | None = None  # with model.encoder: the model whose WordPiece tokens the lengths count

    @property
    def classes(self) -> int:
        return len(self.class_counts)

    @property
    def tokens_per_epoch(self) -> int:
        """Estimated (untruncated) tokens of one training epoch: the sample's mean length x the training texts."""
        return round(self.mean_tokens * self.train_texts)

    def p(self, q: int) -> int:
        return self.percentiles[q]


def profile_data(config: Config, sample: int = SAMPLE_TEXTS, on_event: EventHandler = ignore) -> DataProfile:
    """Profile the training file of `config` (`data.train`), read as training reads it.

    Labels are treated as sets when `data.multi_label` is set or when the file's labels are JSON lists. Lengths
    are counted by the config's tokenizer (with `model.encoder`, that model's WordPiece tokenizer) without any
    `max_tokens` cut, over up to `sample` texts drawn at random (seeded by `config.seed`), so the statistics do
    not depend on a cut they may be used to choose; with a `data.valid` file, up to SAMPLE_VALID_TEXTS of its
    texts are measured the same way.

    Raises:
        ConfigError: `model.encoder` is not a usable model (checked before the data is read).
        DataError: the training or validation file is unreadable or has no text.
    """
    count, encoder = _length_counter(config)
    examples, path = read_labelled(config, config.data.train, on_event)
    assert examples.labels is not None  # a labelled file
    multi_label = config.data.multi_label or any(isinstance(label, list) for label in examples.labels)
    if multi_label:
        counts = Counter(label for labels in label_sets(examples, config.data.label_separator) for label in labels)
    else:
        counts = Counter(str(label) for label in examples.labels)
    lengths = _sampled_lengths(examples.texts, sample, count, config.seed)
    valid_median = valid_p99 = None
    if config.data.valid:
        valid, _ = read_labelled(config, config.data.valid, on_event)
        if valid.texts:
            valid_lengths = _sampled_lengths(valid.texts, SAMPLE_VALID_TEXTS, count, config.seed)
            valid_median = int(np.ceil(np.median(valid_lengths)))
            valid_p99 = int(np.ceil(np.percentile(valid_lengths, 99)))
    held_out = 0 if config.data.valid else max(1, round(config.data.valid_fraction * len(examples)))  # as split_off
    return DataProfile(
        path=path,
        texts=len(examples),
        train_texts=len(examples) - held_out,
        class_counts=dict(counts.most_common()),
        multi_label=multi_label,
        sampled=len(lengths),
        percentiles={q: int(np.ceil(np.percentile(lengths, q))) for q in PERCENTILES},
        max_tokens=int(lengths.max()),
        mean_tokens=float(lengths.mean()),
        valid_median=valid_median,
        valid_p99=valid_p99,
        encoder=encoder,
    )


def _length_counter(config: Config) -> tuple[LengthCounter, EncoderFacts | None]:
    """How the config's model counts the tokens of texts, uncut: spaCy tokens for the BiLSTM; with
    `model.encoder`, the model's WordPiece content tokens (an empty text counts one [UNK], as training reads it).

    Raises:
        ConfigError: `model.encoder` is not a usable model.
    """
    if config.model.encoder is None:
        tokenizer = Tokenizer(config.tokenizer.model_copy(update={"max_tokens": None}))  # no cache: a one-off sample
        return (lambda texts: np.diff(tokenizer.tokenize_many(texts).offsets)), None
    folder = resolve_encoder(config.model.encoder)
    encoding = WordPieceEncoding(folder.tokenizer, max_tokens=None, limit=folder.max_content_tokens)
    facts = EncoderFacts(
        spec=config.model.encoder,
        limit=folder.max_content_tokens,
        hidden_size=int(folder.config["hidden_size"]),
        layers=int(folder.config["num_hidden_layers"]),
    )
    return (lambda texts: encoding.encode(texts).lengths), facts


def _sampled_lengths(texts: list[str], sample: int, count: LengthCounter, seed: int) -> np.ndarray:
    """Token counts of up to `sample` of `texts`, drawn at random with `seed`."""
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size=min(sample, len(texts)), replace=False))
    return count([texts[i] for i in chosen])
