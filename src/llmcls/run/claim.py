"""Claiming a run directory: never reuse one by accident, never let two processes write the same one, and never
delete or write through anything llmcls did not write there (what it writes is llmcls.run.layout.RUN_LAYOUT, by
exact name). A directory that is refused is left as it was: no lock file, nothing created."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from llmcls.errors import RunError
from llmcls.fileio import temporary_of
from llmcls.run.layout import CHECKPOINT, CONFIG, LOCK, META, RUN_LAYOUT, Layout
from llmcls.run.paths import run_file


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in (META, CONFIG, CHECKPOINT))


def _layout_of(name: str, layout: Layout) -> tuple[bool, Layout | None]:
    """(whether llmcls writes an entry called `name` where `layout` applies, what it writes inside it): a name of
    the table, or the temporary file of an atomic write of a file named there."""
    for pattern, inside in layout.items():
        if fnmatch(name, pattern):
            return True, inside
    target = temporary_of(name)
    if target is not None and _layout_of(target, layout) == (True, None):
        return True, None
    return False, None


def _owned(entry: Path, layout: Layout) -> bool:
    """Whether llmcls writes `entry`: a file (or a link, removed and never followed) where it writes a file, a real
    folder holding only what llmcls writes there where it writes a folder."""
    known, inside = _layout_of(entry.name, layout)
    if not known:
        return False
    if entry.is_symlink() or not entry.is_dir():
        return inside is None
    return inside is not None and all(_owned(child, inside) for child in entry.iterdir())


def _remove(entry: Path, layout: Layout) -> None:
    """Delete what llmcls wrote of `entry`: a file or link; of a folder, what llmcls writes there, then the folder
    if that left it empty. Anything else is left alone."""
    known, inside = _layout_of(entry.name, layout)
    if not known:
        return
    if entry.is_symlink() or not entry.is_dir():
        if inside is None:
            entry.unlink()
    elif inside is not None:
        for child in entry.iterdir():
            _remove(child, inside)
        if not any(entry.iterdir()):
            entry.rmdir()


def foreign_entries(run_dir: Path) -> list[str]:
    """The names of the entries of `run_dir` that llmcls does not write, sorted."""
    return sorted(entry.name for entry in run_dir.iterdir() if not _owned(entry, RUN_LAYOUT))


def check_new_run(run_dir: Path, overwrite: bool) -> None:
    """Make sure the existing `run_dir` may hold a new run, an old one there deleted; reads only (it is checked
    before it is locked, so that a refused directory gets no lock file, and again under the lock).

    Raises:
        RunError: it already holds files and `overwrite` is false, or it holds anything llmcls did not write.
    """
    if not any(entry.name != LOCK for entry in run_dir.iterdir()):
        return
    if not overwrite:
        hint = (
            "continue it with --resume, or start again with --overwrite"
            if is_run_dir(run_dir)
            else "choose another --run-dir or name"
        )
        raise RunError(f"{run_dir}: already exists and is not empty; {hint}")
    foreign = foreign_entries(run_dir)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise RunError(
            f"{run_dir}: --overwrite refused, nothing deleted: it holds what llmcls did not write "
            f"({len(foreign)}): {shown}"
        )
    if not is_run_dir(run_dir):
        raise RunError(f"{run_dir}: --overwrite refused: the directory holds files but no llmcls run")


def clear_for_new_run(run_dir: Path) -> None:
    """Delete the old run in the (locked) `run_dir`, if it holds only what llmcls writes (the lock stays).

    Raises:
        RunError: it holds anything llmcls did not write; then nothing is deleted.
    """
    check_new_run(run_dir, overwrite=True)
    for entry in run_dir.iterdir():
        if entry.name != LOCK:
            _remove(entry, RUN_LAYOUT)


def remove_from_run(run_dir: Path, names: tuple[str, ...]) -> None:
    """Delete `names` (paths relative to `run_dir`, such as FROM_WEIGHTS) where llmcls wrote them."""
    for name in names:
        _remove_path(run_dir, name.split("/"))


def _remove_path(folder: Path, parts: list[str], layout: Layout = RUN_LAYOUT) -> None:
    entry = folder / parts[0]
    if len(parts) == 1:
        if entry.is_symlink() or entry.exists():
            _remove(entry, layout)
        return
    inside = _layout_of(parts[0], layout)[1]
    if isinstance(inside, dict) and entry.is_dir() and not entry.is_symlink():  # never follow a link
        _remove_path(entry, parts[1:], inside)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files that writes of the run's own files left when they were killed before their
    rename (by exact name: `.NAME.PID.HEX8.tmp` of a NAME llmcls writes there); returns them."""
    stale = [
        entry
        for entry in run_dir.iterdir()
        if temporary_of(entry.name) is not None
        and _layout_of(entry.name, RUN_LAYOUT) == (True, None)
        and entry.is_file()
        and not entry.is_symlink()
    ]
    for path in stale:
        path.unlink()
    return stale


def resumable_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resumed run continues from.

    Raises:
        RunError: there is none (or it is a link, or not a file).
    """
    path = run_file(run_dir, CHECKPOINT, missing_ok=True)
    if not path.exists():
        raise RunError(f"{run_dir}: no {CHECKPOINT} to resume from (the first epoch never finished?)")
    return path


@contextmanager
def claim_run_dir(run_dir: Path, *, resume: bool, overwrite: bool = False) -> Iterator[None]:
    """Hold `run_dir` for this process's run, new or resumed, for the duration.

    The directory is first checked without writing anything, so that one that is refused is left as it was (no
    lock file, nothing created); then it is created if missing, locked, and checked again under the lock, which
    alone decides (another process may have come first). A resumed run's stale temporary files are removed then.
    If the body fails before the run is written (no meta.json, config.yaml or checkpoint), what llmcls wrote in a
    directory this process created is removed, and the directory if that empties it, before the lock is released:
    a directory another process holds is never touched.

    Raises:
        RunError: as `check_new_run`, or resuming where there is no checkpoint, or `run_lock`.
    """
    _check_claim(run_dir, resume=resume, overwrite=overwrite)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
        created = True
    except FileExistsError:
        created = False
    with run_lock(run_dir):
        try:
            _check_claim(run_dir, resume=resume, overwrite=overwrite)
            if resume:
                remove_stale_temporaries(run_dir)
            yield
        except BaseException:
            if created and not is_run_dir(run_dir):
                for entry in run_dir.iterdir():
                    _remove(entry, RUN_LAYOUT)  # the lock file included: nothing else may hold it now
                if not any(run_dir.iterdir()):
                    run_dir.rmdir()
            raise


def _check_claim(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Whether a run may start in (`check_new_run`), or resume from, `run_dir`; reads only."""
    if os.path.lexists(run_dir) and not run_dir.is_dir():
        raise RunError(f"{run_dir}: exists and is not a directory")
    if resume:
        resumable_checkpoint(run_dir)
    elif run_dir.is_dir():
        check_new_run(run_dir, overwrite)


def run_subdir(run_dir: Path, name: str) -> Path:
    """`run_dir/name`, created if missing: a real folder, so that nothing is written through a link.

    Raises:
        RunError: it is a symbolic link or not a folder.
    """
    path = run_dir / name
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise RunError(
            f"{path}: is a symbolic link or not a folder; llmcls writes only into a real folder there (move it away)"
        )
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir` for the duration (released by the OS if the process dies).

    Raises:
        RunError: another process holds it, `run_dir` is not a directory, or its `.lock` is not a plain file.
    """
    if os.path.lexists(run_dir) and not run_dir.is_dir():
        raise RunError(f"{run_dir}: exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking, as before
        yield
        return
    fd = _open_lock(run_dir / LOCK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{run_dir}: another llmcls process is writing this run") from None
        if not _still_there(run_dir / LOCK, fd):  # its holder removed it (a failed start) before we locked it
            raise RunError(f"{run_dir}: another llmcls process is writing this run")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def _still_there(path: Path, fd: int) -> bool:
    """Whether `path` is still the file open as `fd`."""
    try:
        return os.path.samestat(os.lstat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


def _open_lock(path: Path) -> int:
    """Open (creating) the lock file, refusing a link or anything but a plain file of its own: the lock is
    truncated and gets a PID written into it, which must never reach a file elsewhere.

    Raises:
        RunError: `path` is a symbolic link, a hard link to another file, or not a plain file.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        why = "is a symbolic link" if path.is_symlink() else f"cannot be opened ({exc.strerror or exc})"
        raise RunError(f"{path}: {why}; llmcls keeps its lock only in a plain file there (remove it)") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        why = "is not a plain file" if not stat.S_ISREG(info.st_mode) else "is a hard link to another file"
        raise RunError(f"{path}: {why}; llmcls keeps its lock only in a plain file there (remove it)")
    return fd
