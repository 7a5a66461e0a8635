"""What a run reads, with its data settings: its labelled files (empty texts handled as `data.empty_texts` says,
the validation part held out of the training file where there is no validation file) and the texts to predict,
block by block."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmcls.config import Config, DataConfig
from llmcls.data.readers import Examples, iter_texts, read_examples, split_off
from llmcls.errors import DataError
from llmcls.events import EventHandler, Info, ignore


def _format_options(data: DataConfig) -> dict[str, Any]:
    """The data settings that say how to read a file or folder, beyond its columns and format."""
    return {
        "header": data.header,
        "encoding": data.encoding,
        "label_prefix": data.label_prefix,
        "split": data.split,
        "classes": data.classes,
    }


def read_split(data: DataConfig, path: str, labelled: bool = True) -> Examples:
    """Read one file or folder with the column and format settings of the data config."""
    return read_examples(
        Path(path),
        text_column=data.text_column,
        label_column=data.label_column if labelled else None,
        fmt=data.format,
        **_format_options(data),
    )


def input_blocks(
    source: str, data: DataConfig, *, column: str | int | None = None, fmt: str = "auto"
) -> Iterator[list[str]]:
    """The texts to predict, in blocks read as they are needed (memory stays bounded whatever the input's size): a
    file or folder (`-`: standard input, plain text unless `fmt` says otherwise) read with the run's data settings,
    its text column unless `column` is given. Empty texts keep their rows.

    Raises:
        DataError: the input is unreadable, or has no such column.
    """
    column = data.text_column if column is None else column
    if source == "-":
        return iter_texts(sys.stdin, column=column, fmt="txt" if fmt == "auto" else fmt, **_format_options(data))
    return iter_texts(Path(source), column=column, fmt=fmt, **_format_options(data))


def read_input(source: str, data: DataConfig, *, column: str | int | None = None, fmt: str = "auto") -> list[str]:
    """Every text of `input_blocks` (same arguments) in one list."""
    return [text for block in input_blocks(source, data, column=column, fmt=fmt) for text in block]


def drop_empty_texts(examples: Examples, path: str | Path, *, policy: str, on_event: EventHandler = ignore) -> Examples:
    """Remove rows whose text is empty or whitespace only (policy `skip`, counted in an Info event), or refuse
    them (policy `error`).

    Raises:
        DataError: `error` policy and an empty text, or no text left at all.
    """
    empty = [i for i, text in enumerate(examples.texts) if not text.strip()]
    if not empty:
        return examples
    if policy == "error":
        raise DataError(
            f"{path}: {len(empty)} empty or whitespace-only texts (the first is "
            f"{examples.record(empty[0])}); set data.empty_texts: skip to leave them out"
        )
    if len(empty) == len(examples):
        raise DataError(f"{path}: every text is empty")
    on_event(
        Info(f"{path}: skipped {len(empty)} empty or whitespace-only texts (the first is {examples.record(empty[0])})")
    )
    dropped = set(empty)
    return examples.subset([i for i in range(len(examples)) if i not in dropped])


def read_labelled(
    config: Config, path: str | Path | None = None, on_event: EventHandler = ignore
) -> tuple[Examples, str]:
    """A labelled file of a run, read with its data settings, empty texts handled as `data.empty_texts` says: the
    one way train, eval, export and profile read one. Without `path`, the run's validation data: its file, or
    the part of the training file that training holds out.

    Returns:
        The examples, and what they are (the path, or which part of which file).

    Raises:
        DataError: the file is unreadable, or has empty texts that `data.empty_texts: error` refuses.
    """
    data = config.data
    if path is None and data.valid is None:
        train, _ = read_labelled(config, data.train, on_event)
        return split_off(train, data.valid_fraction, config.seed)[1], f"{data.train} (the held-out validation part)"
    path = str(data.valid if path is None else path)
    return drop_empty_texts(read_split(data, path), path, policy=data.empty_texts, on_event=on_event), path
