"""CSV, TSV, JSONL and plain text (one text per line), read record by record from an open text stream."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from llmcls.data.readers.records import ReadSpec, Record
from llmcls.errors import DataError


def _column_index(columns: list[str], column: str | int, role: str, path: Path) -> int:
    if isinstance(column, int):
        if not 0 <= column < len(columns):
            raise DataError(f"{path}: {role} column index {column} is out of range: rows have {len(columns)} columns")
        return column
    if column not in columns:
        raise DataError(f"{path}: no {role} column '{column}'; columns found: {', '.join(map(repr, columns))}")
    return columns.index(column)


def _csv_reader(fh: IO[str], delimiter: str):
    csv.field_size_limit(sys.maxsize)  # long documents are legitimate; the tokenizer truncates them
    # CSV is read strictly (a stray quote is an error, not a silently merged row); TSV has no quoting at all.
    if delimiter == ",":
        return csv.reader(fh, strict=True)
    return csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_NONE)


def delimited_records(fh: IO[str], path: Path, *, delimiter: str, spec: ReadSpec) -> Iterator[Record]:
    """The rows of a CSV (`delimiter` ,) or TSV file: the text column, and the label column unless texts only.

    Raises:
        DataError: a missing column, a short or malformed row (with its line), an empty file.
    """
    reader = _csv_reader(fh, delimiter)
    needed = t_idx = 0
    l_idx: int | None = None
    start = 1  # the line where the current record starts
    rows = 0
    try:
        for row in reader:
            if start == 1:
                columns = row if spec.header else [str(i) for i in range(len(row))]
                t_idx = _column_index(columns, spec.text_column, "text", path)
                label_column = spec.label_column
                l_idx = None if label_column is None else _column_index(columns, label_column, "label", path)
                needed = max(t_idx, l_idx if l_idx is not None else 0)
                if spec.header:
                    start = reader.line_num + 1
                    continue
            if row:  # not a blank line
                if len(row) <= needed:
                    raise DataError(f"{path}, line {start}: expected at least {needed + 1} fields, found {len(row)}")
                rows += 1
                yield row[t_idx], None if l_idx is None else row[l_idx].strip(), None
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(
            f"{path}, line {start}: malformed {'CSV' if delimiter == ',' else 'TSV'} record: {exc}"
            f"{' (a quote that is never closed?)' if 'end of data' in str(exc) else ''}"
        ) from None
    if start == 1:
        raise DataError(f"{path}: file is empty")
    if not rows:
        raise DataError(f"{path}: no rows after the header")


def _json_record(line: str, number: int, path: Path) -> dict | list:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {number}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise DataError(f"{path}, line {number}: JSON nested too deeply") from None
    if not isinstance(record, (dict, list)):
        raise DataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
    return record


def _field(record: dict | list, column: str | int) -> object:
    """A present field of a JSON record: an object's by name, an array's by index (checked by the caller)."""
    return record[column] if isinstance(record, dict) else record[int(column)]


def jsonl_records(fh: IO[str], path: Path, spec: ReadSpec) -> Iterator[Record]:
    """The objects (or arrays) of a JSONL file, one a line: the text field, and the label field unless texts
    only (a list of labels stays a list; other values become strings).

    Raises:
        DataError: a line that is not JSON, a missing field or a text that is no string (with its line), no
            records at all.
    """
    text_column, label_column = spec.text_column, spec.label_column
    records = 0
    for number, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        record = _json_record(line, number, path)
        for column, role in ((text_column, "text"), (label_column, "label")):
            if column is None:
                continue
            present = column in record if isinstance(record, dict) else isinstance(column, int) and column < len(record)
            if not present:
                found = ", ".join(map(repr, record)) if isinstance(record, dict) else f"{len(record)} items"
                raise DataError(f"{path}, line {number}: no {role} field '{column}'; found {found}")
        text = _field(record, text_column)
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}: the text field '{text_column}' is not a string")
        label = None
        if label_column is not None:
            value = _field(record, label_column)
            label = [str(v).strip() for v in value] if isinstance(value, list) else str(value).strip()
        records += 1
        yield text, label, None
    if not records:
        raise DataError(f"{path}: file has no records")


def line_records(fh: IO[str]) -> Iterator[Record]:
    """Every line is one text, empty lines included (so that output rows match input lines); a final line
    break does not start another text. Lines may end in LF, CRLF or CR."""
    for line in fh:
        yield line.rstrip("\r\n"), None, None
