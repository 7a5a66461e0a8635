"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one file written atomically (temporary file, fsync, rename), so a kill at any moment leaves the
previous checkpoint intact. It is read back with `torch.load(weights_only=True)`, whose unpickler accepts only
tensors and plain containers: a checkpoint cannot run code.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from llmcls.errors import RunError
from llmcls.fileio import atomic_write_bytes
from llmcls.run.claim import resumable_checkpoint
from llmcls.run.layout import CHECKPOINT
from llmcls.run.paths import read_run_bytes


def rng_state() -> dict[str, Any]:
    """Every random generator training touches: Python, NumPy, torch CPU and CUDA."""
    # the legacy tuple, which the global generator (always MT19937) gives; the stubs also allow a dict
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the training state atomically to `run_dir/checkpoint-last.pt`."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(run_dir / CHECKPOINT, buffer.getvalue(), RunError)


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Read the training state of a run (tensors on the CPU).

    Raises:
        RunError: there is no checkpoint (or a link in its place), or it is damaged.
    """
    path = resumable_checkpoint(run_dir)
    data = read_run_bytes(run_dir, CHECKPOINT)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; all mean the same here
        raise RunError(f"{path}: damaged checkpoint: {type(exc).__name__}: {str(exc)[:200]}") from None
