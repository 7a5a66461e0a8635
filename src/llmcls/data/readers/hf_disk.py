"""A Hugging Face dataset saved with `save_to_disk`, read with pyarrow alone (the `datasets` package is not needed):

    imdb/                      a DatasetDict: dataset_dict.json {"splits": ["train", "test"]} and a folder per split
      train/                   a Dataset: dataset_info.json (its features), state.json (its data files) and
        dataset_info.json      Arrow IPC files (the stream format, which `datasets` writes; the file format is
        state.json             read too)
        data-00000-of-00001.arrow

A single `.arrow` file is read too. Batches are read one at a time, only their text and label columns used; a
ClassLabel's integer labels are mapped to the class names of the dataset's features."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from llmcls.data.readers.columnar import arrow_errors, batch_records, columns_to_read, feature_names, metadata_features
from llmcls.data.readers.records import ReadSpec, Record
from llmcls.errors import DataError

FILE_MAGIC = b"ARROW1"  # the Arrow IPC file format starts so; the stream format does not


def _json(path: Path) -> dict[str, Any]:
    """A JSON object of the dataset's folder.

    Raises:
        DataError: the file is unreadable, or holds something else.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object")
    return value


def _split_folder(path: Path, split: str | None) -> Path:
    """The folder of one split: `path` itself, or its `split` when `path` holds several (dataset_dict.json)."""
    listing = path / "dataset_dict.json"
    if not listing.is_file():
        return path
    splits = _json(listing).get("splits")
    if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
        raise DataError(f'{listing}: expected {{"splits": [names]}}')
    if split is None:
        example = path / splits[0] if splits else path / "train"
        raise DataError(
            f"{path}: a dataset of several splits ({', '.join(splits)}); give one split's folder "
            f"({example}) or set data.split"
        )
    if split not in splits:
        raise DataError(f"{path}: no split '{split}' (data.split); its splits: {', '.join(splits)}")
    return path / split


def _data_files(folder: Path) -> list[Path]:
    """The Arrow files of a split, in order: as state.json lists them, else every `*.arrow` file by name."""
    state = folder / "state.json"
    if state.is_file():
        listed = _json(state).get("_data_files")
        names = [item.get("filename") for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
        if not names or not all(isinstance(name, str) and name == Path(name).name for name in names):
            raise DataError(f'{state}: expected "_data_files": [{{"filename": ...}}] naming files of the folder')
        files = [folder / name for name in names if isinstance(name, str)]  # every name was checked to be one
    else:
        files = sorted(folder.glob("*.arrow"))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{folder}: data file {missing[0]} is missing")
    if not files:
        raise DataError(f"{folder}: no Arrow data files (*.arrow) and no state.json")
    return files


def locate(path: Path, split: str | None) -> tuple[list[Path], dict | None]:
    """The Arrow files of the dataset at `path` (a dataset folder or one `.arrow` file) and its features (None
    where dataset_info.json does not give them).

    Raises:
        DataError: nothing at `path`, several splits and no `split`, an unknown split, missing files.
    """
    if not path.exists():
        raise DataError(f"{path}: not found")
    if path.is_file():
        return [path], None
    folder = _split_folder(path, split)
    if not folder.is_dir():
        raise DataError(f"{folder}: the folder of split '{split}' is missing")
    info = folder / "dataset_info.json"
    features = _json(info).get("features") if info.is_file() else None
    return _data_files(folder), features if isinstance(features, dict) else None


@contextmanager
def ipc_batches(file: Path) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """The schema and the record batches of an Arrow IPC file (stream or file format), read one at a time."""
    with pa.OSFile(str(file)) as source:
        if source.read(len(FILE_MAGIC)) == FILE_MAGIC:
            reader = pa.ipc.open_file(source)
            yield reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            source.seek(0)
            stream = pa.ipc.open_stream(source)
            yield stream.schema, iter(stream)


def hf_records(path: Path, spec: ReadSpec) -> Iterator[Record]:
    """The rows of a dataset saved to disk: its text column, and its label column (class ids mapped to names)
    unless texts only.

    Raises:
        DataError: naming the file: a missing column, not Arrow; naming the row: a null text or label, a class id
            outside the names; a dataset without rows.
    """
    files, features = locate(path, spec.split)
    rows = 0
    columns: tuple[str, str | None] | None = None
    names = None
    for file in files:
        with arrow_errors(file, "Arrow"), ipc_batches(file) as (schema, batches):
            if columns is None:
                columns = columns_to_read(schema, spec, file)
                names = feature_names(features or metadata_features(schema), columns[1])
            row = 1
            for batch in batches:
                yield from batch_records(batch, columns, names=names, path=file, first_row=row)
                row += batch.num_rows
            rows += row - 1
    if not rows:
        raise DataError(f"{path}: the dataset has no rows")
