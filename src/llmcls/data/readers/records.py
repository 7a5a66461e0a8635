"""What every reader gives: records (a text, its label, where it came from), gathered into `Examples` or grouped
into blocks of texts; and the settings a source is read with."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from llmcls.config import DataConfig
from llmcls.errors import DataError

# A label is a string; JSONL lists, Arrow lists and fastText lines with several labels give lists (multi-label data).
Label = str | list[str]
# One record: its text, its label (None when only texts are read), and the file it is (class folders) or None.
Record = tuple[str, Label | None, str | None]

LABEL_PREFIX = DataConfig.model_fields["label_prefix"].default  # fastText's `__label__`; the config owns it

# Prediction input is read in blocks of at most this many texts, or characters, so that memory stays bounded.
BLOCK_TEXTS = 8192
BLOCK_CHARS = 16 << 20


@dataclass
class Examples:
    """Parallel lists of texts and their labels (labels are None for unlabelled input).

    Attributes:
        sources: the file each text was read from (class folders), so that messages can name it; None when the
            records of a file are numbered instead.
    """

    texts: list[str]
    labels: list[Label] | None
    sources: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int]) -> Examples:
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        sources = None if self.sources is None else [self.sources[i] for i in indices]
        return Examples([self.texts[i] for i in indices], labels, sources)

    def record(self, index: int) -> str:
        """How a message names the record at 0-based `index`: its file, or `record N`."""
        return self.sources[index] if self.sources is not None else f"record {index + 1}"


@dataclass(frozen=True)
class ReadSpec:
    """How a source is read: its columns and the settings of its format (each used by the formats it concerns).

    Attributes:
        text_column: a column name, or a 0-based index (headerless CSV/TSV, JSON arrays, Arrow columns).
        label_column: likewise; None reads texts only.
        header: CSV/TSV: whether the first row names the columns.
        encoding: the text encoding of text files (CSV, TSV, JSONL, fastText, plain text, class folders).
        label_prefix: fastText: what marks a label.
        split: hf_disk: the split to read from a folder holding several.
        classes: class_folders: the sub-folders to read (None: all of them).
    """

    text_column: str | int = "text"
    label_column: str | int | None = "label"
    header: bool = True
    encoding: str = "utf-8"
    label_prefix: str = LABEL_PREFIX
    split: str | None = None
    classes: tuple[str, ...] | None = None

    @property
    def labelled(self) -> bool:
        return self.label_column is not None


def gather(records: Iterable[Record], labelled: bool) -> Examples:
    """Every record, in order, as Examples (with `sources` when the records name their files)."""
    texts: list[str] = []
    labels: list[Label] = []
    sources: list[str] = []
    for text, label, source in records:
        texts.append(text)
        if labelled:  # a labelled read gives every record its label
            labels.append("" if label is None else label)
        if source is not None:  # class folders name every record's file, other formats none
            sources.append(source)
    return Examples(texts, labels if labelled else None, sources if sources else None)


def text_blocks(
    records: Iterable[Record], max_texts: int = BLOCK_TEXTS, max_chars: int = BLOCK_CHARS
) -> Iterator[list[str]]:
    """The texts of `records`, in order, in blocks of at most `max_texts` texts or about `max_chars` characters
    (a longer text is a block of its own)."""
    block: list[str] = []
    chars = 0
    for text, _, _ in records:
        if block and (len(block) >= max_texts or chars + len(text) > max_chars):
            yield block
            block, chars = [], 0
        block.append(text)
        chars += len(text)
    if block:
        yield block


def split_off(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """Split `examples` into (rest, held_out) with a seeded shuffle; held_out has round(fraction * n) rows."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(fraction * len(order)))
    if n_held >= len(order):
        raise DataError(f"cannot hold out {fraction:.0%} of {len(order)} training rows for validation")
    return examples.subset(sorted(order[n_held:])), examples.subset(sorted(order[:n_held]))
