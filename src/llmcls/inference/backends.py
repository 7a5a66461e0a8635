"""Opening a run's network as a `Forward` (llmcls.inference.forward): the PyTorch model (`torch`, `torch-bf16`)
or the ONNX export (`onnx`, `onnx-int8`), and `auto`'s choice between them. torch is imported only when a torch
backend is opened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llmcls.errors import ExportError
from llmcls.inference.forward import Forward
from llmcls.run.files import RunInfo, load_run, load_run_info

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")


def open_forward(
    run_dir: str | Path, device: str | torch.device = "auto", *, backend: str = "torch", spinning: bool = True
) -> tuple[RunInfo, Forward]:
    """A run's tables and the network of `backend` (see llmcls.inference.predict.Predictor.load): `auto` takes the
    ONNX export when it is usable on the CPU, and falls back to the run's PyTorch model otherwise.

    Args:
        spinning: an ONNX session's idle threads spin for work (see `OnnxClassifier`); a server turns it off.

    Raises:
        RunError: `run_dir` is not a usable run.
        DeviceError: the device does not exist here.
        ExportError: an unknown backend, or an ONNX backend that cannot be used (the message says why).
    """
    if backend not in BACKENDS:
        raise ExportError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    on_cpu = str(device).strip().lower() in ("auto", "cpu")
    if backend in ("onnx", "onnx-int8") and not on_cpu:
        raise ExportError(f"backend {backend} runs on the CPU; use device cpu, or backend torch")
    if backend in ("onnx", "onnx-int8") or (backend == "auto" and on_cpu):
        from llmcls.inference.onnx_forward import OnnxClassifier

        info = load_run_info(run_dir)
        try:
            return info, OnnxClassifier.from_run(run_dir, "onnx" if backend == "auto" else backend, spinning=spinning)
        except ExportError:
            if backend != "auto":
                raise  # auto falls back to the run's PyTorch model
    import torch

    from llmcls.device import resolve_device
    from llmcls.inference.torch_forward import TorchForward

    device = device if isinstance(device, torch.device) else resolve_device(device)
    run = load_run(run_dir, device)
    return run, TorchForward(run.model, device, "bf16" if backend == "torch-bf16" else "fp32")
