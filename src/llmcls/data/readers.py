"""Reading labelled text from CSV, TSV and JSONL files (optionally gzipped), and texts to classify from those or
from plain text, one text per line."""

from __future__ import annotations

import csv
import gzip
import json
import random
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Union

from llmcls.errors import DataError

FORMATS = ("csv", "tsv", "jsonl")
TEXT_FORMATS = FORMATS + ("txt",)  # inputs to classify may also be plain text, one text per line

# A label is a string; a JSONL label field may also hold a list of strings (multi-label data).
Label = Union[str, list[str]]


@dataclass
class Examples:
    """Parallel lists of texts and their labels (labels are None for unlabelled input)."""

    texts: list[str]
    labels: list[Label] | None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int]) -> "Examples":
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        return Examples([self.texts[i] for i in indices], labels)


def detect_format(path: Path, fmt: str = "auto", plain_text: bool = False) -> str:
    """Return csv, tsv or jsonl from `fmt`, or from the file name when `fmt` is auto; with `plain_text`, also
    txt (`.txt` files, one text per line)."""
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    by_suffix = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
    if plain_text:
        by_suffix[".txt"] = "txt"
    if suffix not in by_suffix:
        if plain_text:
            raise DataError(f"{path}: cannot tell the format from the name; give it ({', '.join(TEXT_FORMATS)})")
        raise DataError(f"{path}: cannot tell the format from the name; set data.format to one of {', '.join(FORMATS)}")
    return by_suffix[suffix]


def _open_text(path: Path, encoding: str) -> IO[str]:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def _column_index(columns: list[str], column: str | int, role: str, path: Path) -> int:
    if isinstance(column, int):
        if not 0 <= column < len(columns):
            raise DataError(f"{path}: {role} column index {column} is out of range: rows have {len(columns)} columns")
        return column
    if column not in columns:
        raise DataError(f"{path}: no {role} column '{column}'; columns found: {', '.join(map(repr, columns))}")
    return columns.index(column)


def _read_delimited(fh: IO[str], path: Path, delimiter: str, text_column: str | int,
                    label_column: str | int | None, header: bool) -> Examples:
    csv.field_size_limit(sys.maxsize)  # long documents are legitimate; the tokenizer truncates them
    # CSV is read strictly (a stray quote is an error, not a silently merged row); TSV has no quoting at all.
    if delimiter == ",":
        reader = csv.reader(fh, strict=True)
    else:
        reader = csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    texts: list[str] = []
    labels: list[str] | None = None
    needed = t_idx = l_idx = 0
    start = 1  # the line where the current record starts
    try:
        for row in reader:
            if start == 1:
                columns = row if header else [str(i) for i in range(len(row))]
                t_idx = _column_index(columns, text_column, "text", path)
                l_idx = None if label_column is None else _column_index(columns, label_column, "label", path)
                labels = None if l_idx is None else []
                needed = max(t_idx, l_idx if l_idx is not None else 0)
                if header:
                    start = reader.line_num + 1
                    continue
            if row:  # not a blank line
                if len(row) <= needed:
                    raise DataError(f"{path}, line {start}: expected at least {needed + 1} fields, found {len(row)}")
                texts.append(row[t_idx])
                if labels is not None:
                    labels.append(row[l_idx].strip())
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}, line {start}: malformed {'CSV' if delimiter == ',' else 'TSV'} record: {exc}"
                        f"{' (a quote that is never closed?)' if 'end of data' in str(exc) else ''}") from None
    if start == 1:
        raise DataError(f"{path}: file is empty")
    if not texts:
        raise DataError(f"{path}: no rows after the header")
    return Examples(texts, labels)


def _read_jsonl(fh: IO[str], path: Path, text_column: str | int, label_column: str | int | None) -> Examples:
    texts: list[str] = []
    labels: list[str] | None = None if label_column is None else []
    for number, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise DataError(f"{path}, line {number}: JSON nested too deeply") from None
        if not isinstance(record, (dict, list)):
            raise DataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        for column, role in ((text_column, "text"), (label_column, "label")):
            if column is None:
                continue
            present = column in record if isinstance(record, dict) else isinstance(column, int) and column < len(record)
            if not present:
                found = ", ".join(map(repr, record)) if isinstance(record, dict) else f"{len(record)} items"
                raise DataError(f"{path}, line {number}: no {role} field '{column}'; found {found}")
        text = record[text_column]
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}: the text field '{text_column}' is not a string")
        texts.append(text)
        if labels is not None:
            value = record[label_column]
            labels.append([str(v).strip() for v in value] if isinstance(value, list) else str(value).strip())
    if not texts:
        raise DataError(f"{path}: file has no records")
    return Examples(texts, labels)


def _read_lines(fh: IO[str]) -> Examples:
    """Every line is one text, empty lines included (so that output rows match input lines); a final line
    break does not start another text. Lines may end in LF, CRLF or CR."""
    return Examples([line.rstrip("\r\n") for line in fh], None)


def read_examples(path: str | Path, text_column: str | int = "text", label_column: str | int | None = "label",
                  fmt: str = "auto", header: bool = True, encoding: str = "utf-8") -> Examples:
    """Read texts (and labels, unless `label_column` is None) from a CSV, TSV or JSONL file.

    Args:
        path: the file; a `.gz` suffix is decompressed on the fly.
        text_column: column name, or 0-based index (headerless files, JSON arrays).
        label_column: likewise, or None to read texts only.
        fmt: csv, tsv, jsonl, or auto (from the file name).
        header: whether the first CSV/TSV row names the columns.
        encoding: text encoding of the file.

    Returns:
        The examples in file order.

    Raises:
        DataError: naming the file, and the line where one is to blame.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    with _reading_errors(path, encoding), _open_text(path, encoding) as fh:
        if fmt == "jsonl":
            return _read_jsonl(fh, path, text_column, label_column)
        return _read_delimited(fh, path, "," if fmt == "csv" else "\t", text_column, label_column, header)


def read_texts(source: str | Path | IO[str], column: str | int = "text", fmt: str = "auto", header: bool = True,
               encoding: str = "utf-8") -> list[str]:
    """Read texts to classify, in input order: one per line of plain text, or a column of a CSV/TSV/JSONL file.

    Args:
        source: a file (`.gz` is decompressed), or an open text stream such as standard input.
        column: the text column of CSV/TSV/JSONL input (a name, or a 0-based index).
        fmt: txt, csv, tsv, jsonl, or auto: from the file name; a stream must name its format.
        header: whether the first CSV/TSV row names the columns.
        encoding: text encoding of a file.

    Returns:
        The texts. Plain text keeps empty lines as empty texts, so that there is one text per line.

    Raises:
        DataError: naming the file (or `<stdin>`), and the line where one is to blame.
    """
    if not isinstance(source, (str, Path)):
        name = Path(getattr(source, "name", "<stream>"))
        if fmt == "auto":
            raise DataError(f"{name}: give the format of the input stream ({', '.join(TEXT_FORMATS)})")
        return _read_text_stream(source, name, column, fmt, header).texts
    path = Path(source)
    fmt = detect_format(path, fmt, plain_text=True)
    with _reading_errors(path, encoding), _open_text(path, encoding) as fh:
        return _read_text_stream(fh, path, column, fmt, header).texts


def _read_text_stream(fh: IO[str], name: Path, column: str | int, fmt: str, header: bool) -> Examples:
    if fmt == "txt":
        return _read_lines(fh)
    if fmt == "jsonl":
        return _read_jsonl(fh, name, column, None)
    return _read_delimited(fh, name, "," if fmt == "csv" else "\t", column, None, header)


@contextmanager
def _reading_errors(path: Path, encoding: str) -> Iterator[None]:
    """Turn what can go wrong while reading `path` (bad bytes, an unknown encoding, I/O) into a DataError
    naming it."""
    try:
        yield
    except UnicodeDecodeError:
        raise DataError(_describe_decode_error(path, encoding)) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _describe_decode_error(path: Path, encoding: str) -> str:
    """Where a file stops being valid `encoding`: the exact byte offset and line (decoding the whole file again,
    since the text reader only knows the offset inside its current chunk)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (f"{path}, line {line}: bytes that are not {encoding} at byte offset {exc.start} "
                f"({data[exc.start:exc.start + 4]!r}); set data.encoding (for example latin-1 or cp1252)")
    return f"{path}: not valid {encoding}; set data.encoding"


def split_off(examples: Examples, fraction: float, seed: int) -> tuple[Examples, Examples]:
    """Split `examples` into (rest, held_out) with a seeded shuffle; held_out has round(fraction * n) rows."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_held = max(1, int(round(fraction * len(order))))
    if n_held >= len(order):
        raise DataError(f"cannot hold out {fraction:.0%} of {len(order)} training rows for validation")
    return examples.subset(sorted(order[n_held:])), examples.subset(sorted(order[:n_held]))
