"""Claiming a run directory: never reuse one by accident, and never let two processes write the same one."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from llmcls.errors import RunError

LOCK = ".lock"
# Files whose presence marks a directory as an llmcls run (so --overwrite may delete it).
RUN_MARKERS = ("meta.json", "config.yaml", "checkpoint-last.pt")


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_MARKERS)


def clear_for_new_run(run_dir: Path, overwrite: bool) -> None:
    """Make sure the (locked, existing) `run_dir` can hold a new run, deleting an old run if `overwrite`.

    Raises:
        RunError: it already holds files and `overwrite` is false, or it holds files that are not a run.
    """
    entries = [e for e in run_dir.iterdir() if e.name != LOCK]
    if not entries:
        return
    if not overwrite:
        hint = "continue it with --resume, or start again with --overwrite" if is_run_dir(run_dir) else \
            "choose another --run-dir or name"
        raise RunError(f"{run_dir}: already exists and is not empty; {hint}")
    if not is_run_dir(run_dir):
        raise RunError(f"{run_dir}: --overwrite refused: the directory holds files but no llmcls run")
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def discard_unused(run_dir: Path) -> None:
    """Remove a directory this process created for a run that failed before writing anything of the run."""
    if run_dir.is_dir() and not is_run_dir(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete temporary files left by a write that was killed before its rename; returns them."""
    stale = [p for p in run_dir.glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir` for the duration (released by the OS if the process dies).

    Raises:
        RunError: another process holds it, or `run_dir` is not a directory.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking, as before
        yield
        return
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{run_dir}: another llmcls process is writing this run") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
