"""What the files of a run directory must agree on before anything is built from them: the sizes in meta.json
against the weights' header (checked before a tensor is allocated), the token table against the embedding rows,
the labels against the outputs, and the saved numbers against their ranges. Each refusal names the file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from llmcls.data.vocab import LabelMap, num_outputs
from llmcls.errors import RunError
from llmcls.run.layout import META, WEIGHTS

Shapes = dict[str, tuple[int, ...]]


def safetensors_shapes(data: bytes, path: Path) -> Shapes:
    """The shape of each tensor a safetensors file's header declares, read without making any tensor.

    Raises:
        RunError: the header is not that of a safetensors file.
    """
    try:
        size = int.from_bytes(data[:8], "little")
        if len(data) < 8 or size > len(data) - 8:
            raise ValueError("the header is longer than the file")
        header = json.loads(data[8 : 8 + size])
        shapes = {name: tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for s in shapes.values() for n in s):
            raise ValueError("a shape is not a list of sizes")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{path}: damaged run directory: not a safetensors file ({exc})") from None
    return shapes


def check_sizes_possible(model_args: dict[str, Any], shapes: Shapes, run_dir: Path) -> None:
    """Refuse a size in meta.json that no network stored in these weights can have: each integer argument (rows,
    widths, layers, buckets, ids) is at most the number of weights, so that even building the network's shapes
    to compare them stays small.

    Raises:
        RunError: an integer argument is negative or larger than the number of weights.
    """
    numel = sum(math.prod(shape) for shape in shapes.values())
    for key, value in model_args.items():
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= numel:
            raise RunError(
                f"{run_dir / META}: model_args.{key} = {value} is impossible beside {run_dir / WEIGHTS} "
                f"({numel:,} weights); the files come from different runs"
            )


def check_weight_shapes(found: Shapes, expected: Shapes, run_dir: Path) -> None:
    """Compare the weights' tensors with those of the network meta.json describes.

    Raises:
        RunError: a tensor is missing, extra, or of another shape (the first, by name, is named).
    """
    for name in sorted(found.keys() | expected.keys()):
        if found.get(name) != expected.get(name):
            raise RunError(
                f"{run_dir / WEIGHTS}: tensor {name} is {_shape(found.get(name))}, but the model "
                f"{META} describes has it {_shape(expected.get(name))}; the files come from different runs"
            )


def _shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else f"[{', '.join(map(str, shape))}]"


def _size(model_args: dict[str, Any], key: str, run_dir: Path) -> int:
    value = model_args.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RunError(f"{run_dir / META}: model_args.{key} is {value!r}, not a size")
    return value


def embedding_rows(model_args: dict[str, Any], run_dir: Path) -> int:
    """How many token ids the network has rows for: `vocab_size`, and a BiLSTM's fixed pretrained rows after them
    (`fixed_vocab_size`, absent in other families)."""
    return _size(model_args, "vocab_size", run_dir) + _size(model_args, "fixed_vocab_size", run_dir)


def check_token_rows(tokens: int, model_args: dict[str, Any], *, path: Path, exact: bool) -> None:
    """The token table at `path` (of `tokens` ids) against the network's embedding rows.

    Args:
        exact: the rows were made from this table (a BiLSTM's vocabulary), so their counts are equal; otherwise
            (a pretrained model's tokenizer, whose table may be padded) its ids need only fit in the rows.

    Raises:
        RunError: the table has more ids than rows (per-text index errors), or another count where `exact`.
    """
    rows = embedding_rows(model_args, path.parent)
    if tokens > rows or (exact and tokens != rows):
        raise RunError(
            f"{path}: {tokens:,} tokens, but the model {META} describes has {rows:,} embedding rows; "
            "the files come from different runs"
        )


def check_labels(labels: LabelMap, model_args: dict[str, Any], *, path: Path, multi_label: bool) -> None:
    """The label table at `path` against the network's outputs.

    Raises:
        RunError: labels repeat or are not strings, or they need another number of outputs than the network has.
    """
    if len(set(labels.labels)) != len(labels) or not all(isinstance(label, str) for label in labels.labels):
        raise RunError(f"{path}: the labels must be distinct strings")
    expected = num_outputs(len(labels), multi_label)
    found = _size(model_args, "num_outputs", path.parent)
    if found != expected:
        raise RunError(
            f"{path}: {len(labels)} labels take {expected} outputs, but the model {META} describes has "
            f"{found}; the files come from different runs"
        )


def check_number(value: Any, *, where: str, low: float, high: float = math.inf) -> float:
    """`value` as a float, refused unless it is a finite number strictly between `low` and `high`.

    Args:
        where: the file and key, for the message.

    Raises:
        RunError: it is not such a number (NaN, infinite, out of range, or not a number at all).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low < value < high
    ):
        bounds = f"> {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise RunError(f"{where}: {value!r} is not a finite number {bounds}")
    return float(value)
