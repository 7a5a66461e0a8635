"""Class folders, the layout of the classic corpora (aclImdb, 20 Newsgroups, BBC; scikit-learn's `load_files`):

    train/
      neg/0_3.txt  neg/1_1.txt ...     each sub-folder a class, named by the folder
      pos/0_9.txt  ...                 each file one text

Classes are read in the order of their names, files likewise; files and folders whose names start with a dot are
left out, and so are files beside the class folders (aclImdb's urls_*.txt) and folders inside them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from llmcls.data.readers.records import ReadSpec, Record
from llmcls.data.readers.textfile import describe_decode_error
from llmcls.errors import DataError

BINARY_PROBE = 8192  # a NUL byte among a file's first bytes marks it as binary


def _visible(entries: Iterator[Path]) -> list[Path]:
    return sorted((entry for entry in entries if not entry.name.startswith(".")), key=lambda entry: entry.name)


def class_folders(root: Path, spec: ReadSpec) -> list[Path]:
    """The class folders to read: `spec.classes` (checked), else every sub-folder; none when reading texts only
    from a folder without sub-folders.

    Raises:
        DataError: `root` is no folder; a listed class has no folder; labelled reading and fewer than two classes.
    """
    if not root.is_dir():
        raise DataError(
            f"{root}: {'not found' if not root.exists() else 'not a folder'}; class folders are read "
            "from a folder holding one sub-folder per class"
        )
    found = [entry for entry in _visible(root.iterdir()) if entry.is_dir()]
    if not spec.labelled and not found:
        return []  # texts only, from a plain folder of documents (whatever classes the run was trained on)
    if spec.classes is not None:
        names = {entry.name for entry in found}
        missing = [name for name in spec.classes if name not in names]
        if missing:
            raise DataError(
                f"{root}: no class folder '{missing[0]}' (data.classes); folders found: "
                f"{', '.join(sorted(names)) or 'none'}"
            )
        found = [entry for entry in found if entry.name in spec.classes]
    if spec.labelled and len(found) < 2:
        which = f"one class folder ('{found[0].name}')" if found else "no sub-folders"
        raise DataError(
            f"{root}: {which}; a classifier needs at least two classes: one sub-folder per class, each "
            "holding one text file per document (train/pos/*.txt, train/neg/*.txt)"
        )
    return found


def text_files(folder: Path) -> list[Path]:
    """The files of a class folder, by name.

    Raises:
        DataError: the folder holds no file.
    """
    files = [entry for entry in _visible(folder.iterdir()) if entry.is_file()]
    if not files:
        raise DataError(f"{folder}: no files; each class folder holds one text file per document")
    return files


def read_text_file(path: Path, encoding: str) -> str:
    """One file's text, without a final line break (an editor's, not the text's).

    Raises:
        DataError: naming the file: unreadable, binary (NUL bytes), or not in `encoding` (with the line).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data[:BINARY_PROBE]:
        raise DataError(f"{path}: a binary file (NUL bytes), not text; each file of a class folder is one text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise DataError(describe_decode_error(path, encoding, data)) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'") from None
    return text.removesuffix("\n").removesuffix("\r")


def folder_records(root: Path, spec: ReadSpec) -> Iterator[Record]:
    """The texts of a class-folder dataset, class by class, each labelled with its folder's name unless texts
    only; each record names its file. Read for texts only, a folder without sub-folders gives its own files.

    Raises:
        DataError: see `class_folders`, `text_files` and `read_text_file`.
    """
    folders = class_folders(root, spec)
    if not spec.labelled and not folders:
        folders = [root]  # a plain folder of documents to classify
    for folder in folders:
        label = folder.name if spec.labelled else None
        for path in text_files(folder):
            yield read_text_file(path, spec.encoding), label, str(path)
