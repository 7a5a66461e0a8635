"""fastText's supervised format: one text a line, its labels first, each marked by a prefix:

    __label__positive a gripping film
    __label__sports __label__politics the minister's marathon

A line with several labels is a label set (multi-label data)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from llmcls.data.readers.records import Label, ReadSpec, Record
from llmcls.errors import DataError


def split_labels(line: str, prefix: str) -> tuple[list[str], str]:
    """(labels, text) of a stripped line: the leading words that start with `prefix`, without it, and the rest
    of the line as written. A word marked later in the line is part of the text."""
    labels: list[str] = []
    rest = line
    while rest.startswith(prefix):
        parts = rest.split(None, 1)  # the label word, and the rest without the whitespace between
        labels.append(parts[0][len(prefix) :])
        rest = parts[1] if len(parts) > 1 else ""
    return labels, rest


def fasttext_records(fh: IO[str], path: Path, spec: ReadSpec) -> Iterator[Record]:
    """The lines of a fastText file: the text after the labels, and the labels (one: a string; several: a
    list) unless texts only. Blank lines are skipped.

    Raises:
        DataError: naming the line: labels without text, a line without a label (labelled reading), an empty
            label; a file without any line.
    """
    prefix = spec.label_prefix
    records = 0
    for number, line in enumerate(fh, start=1):
        content = line.strip()
        if not content:
            continue
        labels, text = split_labels(content, prefix)
        if not text:
            raise DataError(f"{path}, line {number}: {' '.join(prefix + label for label in labels)} without text")
        if any(not label for label in labels):
            raise DataError(f"{path}, line {number}: an empty label ('{prefix}' followed by a space)")
        label: Label | None = None
        if spec.labelled:
            if not labels:
                raise DataError(
                    f"{path}, line {number}: no label: a line starts with its labels, as in "
                    f"'{prefix}positive some text' (data.label_prefix is '{prefix}')"
                )
            label = labels[0] if len(labels) == 1 else labels
        records += 1
        yield text, label, None
    if not records:
        raise DataError(f"{path}: file has no records")
