"""What Parquet and Arrow files share: columns chosen by name or index and checked, record batches turned into
records, and a Hugging Face dataset's integer class labels mapped to their names (its `features`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from llmcls.data.readers.records import Label, ReadSpec, Record
from llmcls.errors import DataError


@contextmanager
def arrow_errors(path: Path, kind: str) -> Iterator[None]:
    """Turn Arrow's and the file system's errors while reading `path` into a DataError naming it."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a {kind} file") from None
    except pa.ArrowException as exc:
        raise DataError(f"{path}: not a readable {kind} file: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def column_name(schema: pa.Schema, column: str | int, *, role: str, path: Path) -> str:
    """The name of the `role` (text, label) column, given by name or by 0-based index.

    Raises:
        DataError: no such column (the columns found are listed).
    """
    names = schema.names
    if isinstance(column, int):
        if not 0 <= column < len(names):
            raise DataError(f"{path}: {role} column index {column} is out of range: the file has {len(names)} columns")
        return names[column]
    if column not in names:
        raise DataError(f"{path}: no {role} column '{column}'; columns found: {', '.join(map(repr, names))}")
    return column


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    is_view = getattr(pa.types, "is_string_view", lambda _: False)  # pyarrow >= 16
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_view(kind)


def columns_to_read(schema: pa.Schema, spec: ReadSpec, path: Path) -> tuple[str, str | None]:
    """(text column, label column or None) of `spec` in `schema`.

    Raises:
        DataError: a column is missing, or the text column does not hold strings.
    """
    text = column_name(schema, spec.text_column, role="text", path=path)
    kind = schema.field(text).type
    if not _is_text(kind):
        raise DataError(f"{path}: the text column '{text}' holds {kind}, not strings")
    label_column = spec.label_column
    label = None if label_column is None else column_name(schema, label_column, role="label", path=path)
    return text, label


def feature_names(features: Any, column: str | None) -> list[str] | None:
    """The class names of a Hugging Face `features` entry: a ClassLabel, or a Sequence/List of ClassLabels
    (multi-label); None for any other feature (strings, plain integers)."""
    feature = features.get(column) if isinstance(features, dict) and column is not None else None
    if isinstance(feature, dict) and isinstance(feature.get("feature"), dict):  # Sequence / List
        feature = feature["feature"]
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and isinstance(feature.get("names"), list):
        return [str(name) for name in feature["names"]]
    return None


def metadata_features(schema: pa.Schema) -> dict | None:
    """The `features` that the `datasets` library stores in the schema metadata of its Arrow and Parquet files
    (the `huggingface` key), or None."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else None
    except (ValueError, KeyError, TypeError):
        return None
    return features if isinstance(features, dict) else None


def _label(value: Any, names: list[str] | None, path: Path, row: int) -> Label:
    if isinstance(value, list):
        return [_one_label(v, names, path, row) for v in value]
    return _one_label(value, names, path, row)


def _one_label(value: Any, names: list[str] | None, path: Path, row: int) -> str:
    if value is None:
        raise DataError(f"{path}, row {row}: no label (null)")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool) and names is not None:
        if not 0 <= value < len(names):
            hint = " (-1: an unlabelled split, such as many datasets' test split)" if value == -1 else ""
            raise DataError(
                f"{path}, row {row}: label {value} is not a class of the dataset's features "
                f"(0..{len(names) - 1}: {', '.join(names)}){hint}"
            )
        return names[value]
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise DataError(f"{path}, row {row}: a label of type {type(value).__name__}; expected a string, a number or a list")


def batch_records(
    batch: pa.RecordBatch, columns: tuple[str, str | None], *, names: list[str] | None, path: Path, first_row: int
) -> Iterator[Record]:
    """The records of one record batch whose first row is row `first_row` (1-based) of the file.

    Raises:
        DataError: naming the row: a null text or label, a class id outside the dataset's class names.
    """
    text, label = columns
    texts = batch.column(text).to_pylist()
    labels = batch.column(label).to_pylist() if label is not None else None
    for i, value in enumerate(texts):
        if value is None:
            raise DataError(f"{path}, row {first_row + i}: no text (null in column '{text}')")
        yield value, None if labels is None else _label(labels[i], names, path, first_row + i), None
