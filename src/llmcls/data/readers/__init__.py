"""Reading labelled text, and texts to classify, from the formats users keep them in: CSV, TSV and JSONL (plain or
gzipped), fastText's `__label__` lines, Parquet, class folders (one sub-folder per class, one file per text) and
Hugging Face datasets saved to disk; texts to classify also from plain text, one text per line.

Every format is read record by record (`records`): labelled data is gathered into `Examples`, texts to classify are
given in bounded blocks (`iter_texts`), so that a large input never has to fit in memory at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from llmcls.data.readers.delimited import delimited_records, jsonl_records, line_records
from llmcls.data.readers.detect import FORMATS, STREAM_FORMATS, TEXT_FORMATS, detect_format
from llmcls.data.readers.fasttext import fasttext_records
from llmcls.data.readers.folders import folder_records
from llmcls.data.readers.records import (
    BLOCK_TEXTS,
    LABEL_PREFIX,
    Examples,
    Label,
    ReadSpec,
    Record,
    gather,
    split_off,
    text_blocks,
)
from llmcls.data.readers.textfile import open_text, reading_errors
from llmcls.errors import DataError

__all__ = [
    "FORMATS",
    "STREAM_FORMATS",
    "TEXT_FORMATS",
    "Examples",
    "Label",
    "ReadSpec",
    "detect_format",
    "iter_texts",
    "read_examples",
    "read_texts",
    "records",
    "split_off",
]


def stream_records(fh: IO[str], name: Path, *, fmt: str, spec: ReadSpec) -> Iterator[Record]:
    """The records of an open text stream in a line format (STREAM_FORMATS); `name` is what messages call it."""
    if fmt == "txt":
        return line_records(fh)
    if fmt == "jsonl":
        return jsonl_records(fh, name, spec)
    if fmt == "fasttext":
        return fasttext_records(fh, name, spec)
    return delimited_records(fh, name, delimiter="," if fmt == "csv" else "\t", spec=spec)


def _text_file_records(fmt: str) -> Callable[[Path, ReadSpec], Iterator[Record]]:
    def read(path: Path, spec: ReadSpec) -> Iterator[Record]:
        with reading_errors(path, spec.encoding), open_text(path, spec.encoding) as fh:
            yield from stream_records(fh, path, fmt=fmt, spec=spec)

    return read


def _parquet_records(path: Path, spec: ReadSpec) -> Iterator[Record]:
    from llmcls.data.readers.parquet import parquet_records  # pyarrow only where it is used: predict starts fast

    return parquet_records(path, spec)


def _hf_records(path: Path, spec: ReadSpec) -> Iterator[Record]:
    from llmcls.data.readers.hf_disk import hf_records

    return hf_records(path, spec)


READERS: dict[str, Callable[[Path, ReadSpec], Iterator[Record]]] = {
    **{fmt: _text_file_records(fmt) for fmt in STREAM_FORMATS},
    "parquet": _parquet_records,
    "class_folders": folder_records,
    "hf_disk": _hf_records,
}


def records(
    source: str | Path | IO[str], spec: ReadSpec, *, fmt: str = "auto", plain_text: bool = False
) -> Iterator[Record]:
    """The records of a file, folder or text stream, in order, read as `spec` says.

    Args:
        fmt: one of TEXT_FORMATS, or auto: told from the path (`detect_format`); a stream must name a line format.
        plain_text: whether a `.txt` file may be plain text (texts to classify).

    Raises:
        DataError: naming the file (or `<stdin>`), and the line, row or file where one is to blame.
    """
    if not isinstance(source, (str, Path)):
        name = Path(getattr(source, "name", "<stream>"))
        if fmt == "auto":
            raise DataError(f"{name}: give the format of the input stream ({', '.join(STREAM_FORMATS)})")
        if fmt not in STREAM_FORMATS:
            raise DataError(f"{name}: {fmt} cannot be read from a stream; give a path")
        return stream_records(source, name, fmt=fmt, spec=spec)
    path = Path(source)
    return READERS[
        detect_format(path, fmt, plain_text=plain_text, label_prefix=spec.label_prefix, encoding=spec.encoding)
    ](path, spec)


def _spec(
    text_column: str | int,
    label_column: str | int | None,
    header: bool,
    encoding: str,
    label_prefix: str,
    split: str | None,
    classes: list[str] | tuple[str, ...] | None,
) -> ReadSpec:
    return ReadSpec(
        text_column, label_column, header, encoding, label_prefix, split, None if classes is None else tuple(classes)
    )


def read_examples(
    path: str | Path,
    *,
    text_column: str | int = "text",
    label_column: str | int | None = "label",
    fmt: str = "auto",
    header: bool = True,
    encoding: str = "utf-8",
    label_prefix: str = LABEL_PREFIX,
    split: str | None = None,
    classes: list[str] | None = None,
) -> Examples:
    """Read texts (and labels, unless `label_column` is None) from a file or folder in one of FORMATS.

    Args:
        path: the file (a `.gz` text file is decompressed on the fly), or the folder (class folders, hf_disk).
        text_column: column name, or 0-based index (headerless files, JSON arrays, Arrow columns).
        label_column: likewise, or None to read texts only.
        fmt: one of FORMATS, or auto (from the path: `detect_format`).
        header: whether the first CSV/TSV row names the columns.
        encoding: text encoding of text files.
        label_prefix: fastText: what marks a label.
        split: hf_disk: the split to read from a folder of several.
        classes: class_folders: the sub-folders to read (None: all).

    Returns:
        The examples in file order (class folders: class by class, each text's file in `sources`).

    Raises:
        DataError: naming the file, and the line, row or file where one is to blame.
    """
    spec = _spec(text_column, label_column, header, encoding, label_prefix, split, classes)
    return gather(records(Path(path), spec, fmt=fmt), spec.labelled)


def iter_texts(
    source: str | Path | IO[str],
    *,
    column: str | int = "text",
    fmt: str = "auto",
    header: bool = True,
    encoding: str = "utf-8",
    label_prefix: str = LABEL_PREFIX,
    split: str | None = None,
    classes: list[str] | None = None,
    block_texts: int = BLOCK_TEXTS,
) -> Iterator[list[str]]:
    """Texts to classify, in input order, in blocks (of at most `block_texts` texts, and a bounded number of
    characters), read as they are needed: one per line of plain text, or a column of any of FORMATS.

    Args:
        source: a file or folder, or an open text stream such as standard input (in a line format).
        column: the text column (a name, or a 0-based index).
        fmt: one of TEXT_FORMATS, or auto: from the path; a stream must name its format.
        header, encoding, label_prefix, split, classes: as for `read_examples`.

    Raises:
        DataError: naming the file (or `<stdin>`), and the line, row or file where one is to blame.
    """
    spec = _spec(column, None, header, encoding, label_prefix, split, classes)
    return text_blocks(records(source, spec, fmt=fmt, plain_text=True), max_texts=block_texts)


def read_texts(
    source: str | Path | IO[str],
    *,
    column: str | int = "text",
    fmt: str = "auto",
    header: bool = True,
    encoding: str = "utf-8",
    **options,
) -> list[str]:
    """Every text of `iter_texts` (same arguments) in one list. Plain text keeps empty lines as empty texts, so
    that there is one text per line."""
    return [
        text
        for block in iter_texts(source, column=column, fmt=fmt, header=header, encoding=encoding, **options)
        for text in block
    ]
