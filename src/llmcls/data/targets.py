"""Labels as a model learns them: the label sets of multi-label data, the label map of the training data, and the
targets of a split (class ids, or multi-hot rows)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from llmcls.config import DataConfig
from llmcls.data.readers import Examples
from llmcls.data.vocab import LabelMap
from llmcls.errors import DataError


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
    examples: Examples, path: str | Path, *, labels: LabelMap, data: DataConfig, for_model: bool = False
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
