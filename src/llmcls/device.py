"""Choosing the torch device from `auto`, `cpu`, `cuda` or `cuda:N`."""

from __future__ import annotations

import re

import torch

from llmcls.errors import DeviceError


def resolve_device(spec: str = "auto") -> torch.device:
    """The device named by `spec`; `auto` is the first CUDA GPU when there is one, else the CPU.

    Raises:
        DeviceError: the spec is malformed, or names a GPU this machine does not have.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise DeviceError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec}: CUDA is not available on this machine (torch {torch.__version__}); use device cpu"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}")
    return torch.device("cuda", index)
