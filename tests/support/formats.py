"""Writing the same labelled rows in every format llmcls reads, as the tools users come from write them: CSV, TSV,
JSONL, fastText lines, Parquet, class folders, and a Hugging Face dataset saved to disk (written with pyarrow as
`datasets.Dataset.save_to_disk` writes it, so the `datasets` package is not needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("csv", "tsv", "jsonl", "fasttext", "parquet", "class_folders", "hf_disk")
SUFFIX = {
    "csv": ".csv",
    "tsv": ".tsv",
    "jsonl": ".jsonl",
    "fasttext": ".txt",
    "parquet": ".parquet",
    "class_folders": "",
    "hf_disk": "",
}

Rows = list[tuple[str, str]]  # (text, label)


def in_folder_order(rows: Rows) -> Rows:
    """The rows in the order class folders are read: class by class (by name), file by file (by name: the row's
    position, zero-padded)."""
    return sorted(rows, key=lambda row: row[1])  # a stable sort keeps each class's rows in file order


def write_csv(path: Path, rows: Rows, delimiter: str = ",") -> Path:
    """CSV as Python's csv module writes it; TSV as `cut` and spreadsheets do: fields joined by tabs, unquoted."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        if delimiter == ",":
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        else:
            fh.write("".join(f"{text}\t{label}\n" for text, label in [("text", "label"), *rows]))
    return path


def write_jsonl(path: Path, rows: Rows) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n" for t, lab in rows), encoding="utf-8"
    )
    return path


def write_fasttext(path: Path, rows: list[tuple[str, str | list[str]]], prefix: str = "__label__") -> Path:
    lines = []
    for text, label in rows:
        labels = label if isinstance(label, list) else [label]
        lines.append(" ".join(prefix + item for item in labels) + " " + text + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: Rows, **columns) -> Path:
    table = pa.table(
        {"id": list(range(len(rows))), "text": [t for t, _ in rows], "label": [lab for _, lab in rows], **columns}
    )
    pq.write_table(table, path, row_group_size=100)  # several row groups, as large files have
    return path


def write_class_folders(root: Path, rows: Rows) -> Path:
    """One sub-folder per label, one file per text, named by its position in `rows` (which must be in folder
    order for the files to be read back in the same order)."""
    for i, (text, label) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:05d}.txt").write_text(text, encoding="utf-8")
    return root


def hf_features(names: list[str] | None, multi_label: bool = False) -> dict:
    label: dict = {"dtype": "string", "_type": "Value"} if names is None else {"names": names, "_type": "ClassLabel"}
    if multi_label:
        label = {"feature": label, "_type": "Sequence"}
    return {"text": {"dtype": "string", "_type": "Value"}, "label": label}


def write_hf_dataset(
    folder: Path,
    texts: list[str],
    labels: list,
    names: list[str] | None = None,
    *,
    split: str = "train",
    stream: bool = True,
    multi_label: bool = False,
) -> Path:
    """A `Dataset.save_to_disk` folder: dataset_info.json, state.json and one Arrow file (the IPC stream format
    that `datasets` writes, or the file format with `stream` False) of record batches of 1,000 rows. With `names`,
    labels are stored as class ids (a ClassLabel feature, or a Sequence of them; a label given as an int is
    stored as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    features = hf_features(names, multi_label)
    if names is not None:

        def class_id(label):
            return label if isinstance(label, int) else names.index(label)

        labels = [[class_id(v) for v in lab] if multi_label else class_id(lab) for lab in labels]
    table = pa.table({"text": texts, "label": labels})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
        with (pa.ipc.new_stream if stream else pa.ipc.new_file)(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1000)
    (folder / "dataset_info.json").write_text(
        json.dumps({"citation": "", "description": "", "features": features, "homepage": "", "license": ""})
    )
    (folder / "state.json").write_text(
        json.dumps(
            {
                "_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                "_fingerprint": "0123456789abcdef",
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": split,
            }
        )
    )
    return folder


def write_hf_dataset_dict(root: Path, splits: dict[str, Rows], names: list[str] | None = None) -> Path:
    """A `DatasetDict.save_to_disk` folder: dataset_dict.json and a dataset folder per split."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    for split, rows in splits.items():
        write_hf_dataset(root / split, [t for t, _ in rows], [lab for _, lab in rows], names, split=split)
    return root


def write_format(fmt: str, path: Path, rows: Rows) -> Path:
    """`rows` written in format `fmt` at `path` (a file, or a folder for class_folders and hf_disk); a Hugging
    Face dataset stores its labels as class ids, as datasets with a ClassLabel do."""
    if fmt in ("csv", "tsv"):
        return write_csv(path, rows, "," if fmt == "csv" else "\t")
    writers = {
        "jsonl": write_jsonl,
        "fasttext": write_fasttext,
        "parquet": write_parquet,
        "class_folders": write_class_folders,
    }
    if fmt in writers:
        return writers[fmt](path, rows)
    names = sorted({label for _, label in rows})
    return write_hf_dataset(path, [t for t, _ in rows], [lab for _, lab in rows], names)
