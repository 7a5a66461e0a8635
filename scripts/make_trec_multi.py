#!/usr/bin/env python
"""Make the small multi-label fixture from the real TREC questions in tests/fixtures.

Each row joins one to three TREC questions (chosen with a seeded random generator, never the same question twice
in a row) into one text, as in a message that asks several things at once; its labels are the set of the
questions' coarse TREC classes (the human annotations of Li & Roth, 2002), so that a text has one to three of the
six labels. Training rows come from `trec_train.csv`, test rows from `trec_test.csv`: no question is shared.

    python scripts/make_trec_multi.py

writes `tests/fixtures/trec_multi_train.csv` (labels joined with `|`) and `tests/fixtures/trec_multi_test.jsonl`
(labels as a JSON list), byte-for-byte reproducibly.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def read(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(row["text"], row["label"]) for row in csv.DictReader(fh)]


def combine(questions: list[tuple[str, str]], rows: int, seed: int) -> list[tuple[str, list[str]]]:
    """`rows` texts of 1 (40%), 2 (40%) or 3 (20%) distinct questions, and the sorted set of their classes."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        k = rng.choices([1, 2, 3], weights=[2, 2, 1])[0]
        picked = rng.sample(questions, k)
        out.append((" ".join(text for text, _ in picked), sorted({label for _, label in picked})))
    return out


def main() -> None:
    train = combine(read(FIXTURES / "trec_train.csv"), 600, seed=5)
    test = combine(read(FIXTURES / "trec_test.csv"), 150, seed=6)
    with open(FIXTURES / "trec_multi_train.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "labels"])
        writer.writerows((text, "|".join(labels)) for text, labels in train)
    with open(FIXTURES / "trec_multi_test.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"text": text, "labels": labels}) + "\n" for text, labels in test)


if __name__ == "__main__":
    main()
