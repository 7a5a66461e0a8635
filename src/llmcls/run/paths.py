"""Finding and reading a file of a run directory as untrusted input: a run may come from anywhere (a download, a
shared disk), so a name it holds (a manifest's `file`) or a link placed in it must never lead llmcls to load or
serve a file elsewhere. Every file of a run that llmcls loads or serves is found with `run_file`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from llmcls.errors import RunError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # 0 where the OS has no such flag: then the lstat walk alone checks


def run_file(run_dir: str | Path, *relative: str, missing_ok: bool = False) -> Path:
    """`run_dir/relative...`: a regular file inside the run, reached without following a symbolic link.

    Args:
        run_dir: the run directory (it may itself be a link: that is the name the user gave).
        relative: the path inside it, in one or more pieces, each relative (`"plots/curves.png"`, or `"export"`
            and a manifest's file name); none may be absolute or climb out with `..`.
        missing_ok: return the path of a file that does not exist (the caller checks) instead of refusing it.

    Raises:
        RunError: a piece is absolute or holds `..`; the file or a folder on the way is a symbolic link, or not
            a regular file (a folder); the file is missing (unless `missing_ok`).
    """
    run_dir = Path(run_dir)
    parts = _parts(run_dir, relative)
    path = run_dir
    for depth, part in enumerate(parts, start=1):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            if missing_ok:
                return run_dir.joinpath(*parts)
            raise RunError(f"{path}: missing; the run directory is incomplete") from None
        except OSError as exc:
            raise RunError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if stat.S_ISLNK(mode):
            raise RunError(
                f"{path}: is a symbolic link; llmcls reads a run's own files only, never through a link "
                "(put the file itself there)"
            )
        last = depth == len(parts)
        if (last and not stat.S_ISREG(mode)) or (not last and not stat.S_ISDIR(mode)):
            raise RunError(f"{path}: is not a {'regular file' if last else 'folder'}")
    return path


def _parts(run_dir: Path, relative: tuple[str, ...]) -> list[str]:
    """The names on the way to a file of the run, each piece of `relative` checked to stay inside it."""
    parts: list[str] = []
    for piece in relative:
        if not isinstance(piece, str) or not piece or "\x00" in piece:
            raise RunError(f"{run_dir}: {piece!r} is not a file name")
        pure = PurePosixPath(piece)
        if pure.is_absolute() or ".." in pure.parts or "\\" in piece:
            raise RunError(f"{run_dir}: {piece!r} is not a path inside the run directory (absolute, or with '..')")
        parts += [part for part in pure.parts if part != "."]
    if not parts:
        raise RunError(f"{run_dir}: {relative!r} names no file")
    return parts


def read_run_bytes(run_dir: str | Path, *relative: str) -> bytes:
    """The bytes of a file of the run (see `run_file`), opened without following a link even if one appeared
    since it was checked.

    Raises:
        RunError: as `run_file` (never `missing_ok`), or the file cannot be read.
    """
    path = run_file(run_dir, *relative)
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise RunError(f"{path}: is not a regular file")
        return fh.read()


def read_run_text(run_dir: str | Path, *relative: str) -> str:
    """A UTF-8 text file of the run (see `read_run_bytes`).

    Raises:
        RunError: as `read_run_bytes`, or the file is not UTF-8.
    """
    data = read_run_bytes(run_dir, *relative)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{Path(run_dir).joinpath(*relative)}: damaged, not UTF-8 text") from None


def read_run_json(run_dir: str | Path, *relative: str) -> Any:
    """A JSON file of the run (see `read_run_bytes`), parsed.

    Raises:
        RunError: as `read_run_text`, or the file is not valid JSON.
    """
    text = read_run_text(run_dir, *relative)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RunError(f"{Path(run_dir).joinpath(*relative)}: damaged, not valid JSON ({exc})") from None
