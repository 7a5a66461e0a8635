"""Which format a path holds: named, or told from the path (a folder's marker files, a file's suffix, a fastText
file's first line)."""

from __future__ import annotations

from pathlib import Path

from llmcls.data.readers.records import LABEL_PREFIX
from llmcls.data.readers.textfile import first_line_starts_with
from llmcls.errors import DataError

# Formats of labelled data, as `data.format` names them.
FORMATS = ("csv", "tsv", "jsonl", "fasttext", "parquet", "class_folders", "hf_disk")
# Inputs to classify may also be plain text, one text per line.
TEXT_FORMATS = FORMATS + ("txt",)
# Formats read line by line from a text stream (standard input may hold them); the others need a path.
STREAM_FORMATS = ("csv", "tsv", "jsonl", "fasttext", "txt")

# A folder holding one of these is a Hugging Face dataset saved to disk (a DatasetDict's, or one split's).
HF_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "hf_disk",
}


def detect_format(
    path: Path,
    fmt: str = "auto",
    *,
    plain_text: bool = False,
    label_prefix: str = LABEL_PREFIX,
    encoding: str = "utf-8",
) -> str:
    """`fmt`, or when it is auto, the format of `path`: a folder with a Hugging Face dataset's marker files
    (dataset_dict.json, dataset_info.json, state.json) is hf_disk and any other folder class_folders; a file goes by
    its suffix (`.gz` aside), and a file of another suffix whose first line starts with `label_prefix` is fastText.
    With `plain_text`, other `.txt` files are txt (one text per line).

    Raises:
        DataError: an unknown `fmt`; the format cannot be told (the messages list those that can be named).
    """
    if fmt != "auto":
        if fmt not in TEXT_FORMATS or (fmt == "txt" and not plain_text):
            raise DataError(
                f"{path}: unknown format '{fmt}'; formats: {', '.join(TEXT_FORMATS if plain_text else FORMATS)}"
            )
        return fmt
    if path.is_dir():
        return "hf_disk" if any((path / name).is_file() for name in HF_MARKERS) else "class_folders"
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in BY_SUFFIX:
        return BY_SUFFIX[suffix]
    if first_line_starts_with(path, label_prefix, encoding):
        return "fasttext"
    if plain_text and suffix == ".txt":
        return "txt"
    if plain_text:
        raise DataError(f"{path}: cannot tell the format from the name; give it ({', '.join(TEXT_FORMATS)})")
    raise DataError(f"{path}: cannot tell the format from the name; set data.format to one of {', '.join(FORMATS)}")
