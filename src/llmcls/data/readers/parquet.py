"""Parquet files, read batch by batch and only the columns needed, so that memory stays bounded whatever the
file's size. Integer labels of a Hugging Face dataset's Parquet files (a ClassLabel in the `huggingface` schema
metadata) are mapped to their class names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from llmcls.data.readers.columnar import arrow_errors, batch_records, columns_to_read, feature_names, metadata_features
from llmcls.data.readers.records import ReadSpec, Record
from llmcls.errors import DataError

BATCH_ROWS = 1024  # rows decoded at a time
# Column chunks are read page by page through a buffer this large, and not pre-buffered: pyarrow's default
# (pre_buffer) reads each row group's chunks whole and keeps them until the file is closed, so that reading a 1 GB
# file held ~1 GB; so, a few MB (measured: BENCHMARKS.md, "Reading large inputs").
READ_BUFFER = 1 << 20


def parquet_records(path: Path, spec: ReadSpec) -> Iterator[Record]:
    """The rows of a Parquet file: its text column, and its label column unless texts only.

    Raises:
        DataError: naming the file: not Parquet, a missing column, a text column of another type; naming the row:
            a null text or label; a file without rows.
    """
    with arrow_errors(path, "Parquet"):
        if path.is_dir():
            raise DataError(
                f"{path}: is a directory, expected a Parquet file (a folder of Parquet files is not "
                "read as one; give each file)"
            )
        source = pq.ParquetFile(path, buffer_size=READ_BUFFER, pre_buffer=False)
        schema = source.schema_arrow
        columns = columns_to_read(schema, spec, path)
        names = feature_names(metadata_features(schema), columns[1])
        row = 1
        for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=list(dict.fromkeys(c for c in columns if c))):
            yield from batch_records(batch, columns, names=names, path=path, first_row=row)
            row += batch.num_rows
    if row == 1:
        raise DataError(f"{path}: the file has no rows")
