#!/usr/bin/env python
"""Cut documents into sentences for `llmcls distill --unlabelled`: a transfer set of unlabelled in-domain text.

A sentence-level task (SST-2, MR) gains most from unlabelled text of its own kind, while what a user usually has
in bulk is whole documents (reviews, tickets, posts). This reads the text column of a CSV (plain or .gz), removes
HTML line breaks, cuts each text after `.`, `!` or `?` followed by white space, keeps the sentences of
`--min-words` to `--max-words` words, and writes a seeded random `--count` of them (in shuffled order) as a
one-column `text` CSV. No other column is read: a label column, if there is one, never reaches the output.

BENCHMARKS.md's distillation runs used 50,000 sentences of IMDB's training reviews:

    python scripts/make_unlabelled_sentences.py ../shared/data/imdb/train.csv.gz --out imdb_sentences.csv

(the defaults: 5 to 50 words, 50,000 sentences, seed 13; the output is byte-for-byte reproducible).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

LINE_BREAK = re.compile(r"<br\s*/?>")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def read_texts(path: Path, *, column: str) -> Iterator[str]:
    """The `column` of each row of a CSV file, gzip-compressed if its name ends in .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    csv.field_size_limit(sys.maxsize)
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise SystemExit(f"{path}: no column {column!r} (columns: {reader.fieldnames})")
        for row in reader:
            yield row[column]


def sentences(text: str, *, min_words: int, max_words: int) -> list[str]:
    """The sentences of `text` of `min_words` to `max_words` words, in order."""
    out = []
    for piece in SENTENCE_END.split(LINE_BREAK.sub(" ", text)):
        sentence = piece.strip()
        if min_words <= len(sentence.split()) <= max_words:
            out.append(sentence)
    return out


def sample(pool: list[str], *, count: int, seed: int) -> list[str]:
    """`count` sentences of the pool (all of them if it is smaller), in a seeded random order."""
    shuffled = list(pool)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a CSV file (or .csv.gz) of documents")
    parser.add_argument("--out", type=Path, required=True, help="the one-column CSV to write")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--min-words", type=int, default=5)
    parser.add_argument("--max-words", type=int, default=50)
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    pool = [
        sentence
        for text in read_texts(args.source, column=args.text_column)
        for sentence in sentences(text, min_words=args.min_words, max_words=args.max_words)
    ]
    chosen = sample(pool, count=args.count, seed=args.seed)
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([sentence] for sentence in chosen)
    print(f"{args.out}: {len(chosen):,} of {len(pool):,} sentences")


if __name__ == "__main__":
    main()
