"""llmcls.inference.backends.open_forward on the tiny SST-2 run: `auto` takes the ONNX export on the CPU and falls
back to the PyTorch model without one; an ONNX backend named outright is refused when it cannot be used, with the
reason; the checks on the backend's name and the device come before anything is read; the two backends agree;
and the ONNX path never imports torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from llmcls.data.batching import pad_batch
from llmcls.errors import DeviceError, ExportError
from llmcls.inference.backends import BACKENDS, open_forward
from llmcls.inference.torch_forward import TorchForward
from llmcls.run.files import LoadedRun
from support.cpu import cpu_runs_bf16
from support.paths import ROOT

pytest.importorskip("onnxruntime")


@pytest.fixture()
def no_export(trained_sst2, tmp_path):
    """A copy of the run without its export/ folder."""
    run = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run, symlinks=True)
    shutil.rmtree(run / "export")
    return run


def batch(info, texts=("a gripping , funny film", "dull and lifeless", "the", "not bad at all , really")):
    """A padded batch of real texts as the run encodes them."""
    encoded = info.encoding().encode(list(texts))
    return pad_batch(encoded, np.arange(len(texts)), info.vocab.pad_index)


@pytest.mark.parametrize("device", ["auto", "cpu", " CPU ", torch.device("cpu")])
def test_auto_on_the_cpu_opens_the_onnx_export_without_loading_the_weights(trained_sst2, device):
    info, forward = open_forward(trained_sst2.run_dir, device, backend="auto")
    assert forward.name == "onnx" and forward.num_outputs == 1 and forward.pad_index == info.vocab.pad_index
    assert not isinstance(info, LoadedRun)  # the tables only: the PyTorch model is not built
    assert info.labels.labels == ["negative", "positive"]


def test_onnx_and_torch_backends_give_the_same_logits(trained_sst2):
    info, onnx = open_forward(trained_sst2.run_dir, "cpu", backend="onnx")
    run, torch_forward = open_forward(trained_sst2.run_dir, "cpu", backend="torch")
    assert isinstance(run, LoadedRun) and isinstance(torch_forward, TorchForward)
    assert torch_forward.precision == "fp32" and torch_forward.name == "torch"
    token_ids, lengths = batch(info)
    a, b = onnx(token_ids, lengths), torch_forward(token_ids, lengths)
    assert a.shape == b.shape == (4, 1) and a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert len(set(np.round(a[:, 0], 3))) == 4  # four texts, four answers: not a constant


def test_auto_falls_back_to_the_pytorch_model_without_an_export(no_export, trained_sst2):
    run, forward = open_forward(no_export, "auto", backend="auto")
    assert isinstance(forward, TorchForward) and forward.precision == "fp32"
    assert isinstance(run, LoadedRun) and run.model is not None and run.run_dir == no_export
    _, original = open_forward(trained_sst2.run_dir, "cpu", backend="torch")
    token_ids, lengths = batch(run)
    np.testing.assert_array_equal(forward(token_ids, lengths), original(token_ids, lengths))


def test_an_onnx_backend_named_outright_does_not_fall_back(no_export, trained_sst2):
    with pytest.raises(ExportError) as caught:
        open_forward(no_export, "cpu", backend="onnx")
    assert str(caught.value) == f"{no_export} has no exported model (make one with: llmcls export {no_export})"
    with pytest.raises(ExportError) as caught:
        open_forward(trained_sst2.run_dir, "cpu", backend="onnx-int8")  # exported, but not quantized
    assert str(caught.value) == (
        f"{trained_sst2.run_dir} has no onnx-int8 export (make one with: llmcls export "
        f"{trained_sst2.run_dir} --quantize int8)"
    )


def test_the_name_and_the_device_are_checked_before_the_run_is_read(tmp_path):
    missing = tmp_path / "no-such-run"
    with pytest.raises(ExportError) as caught:
        open_forward(missing, "cpu", backend="tensorrt")
    assert str(caught.value) == "backend 'tensorrt': expected one of auto, torch, torch-bf16, onnx, onnx-int8"
    assert BACKENDS == ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
    for backend, device in [("onnx", "cuda"), ("onnx-int8", "cuda:1"), ("onnx", torch.device("cuda", 0))]:
        with pytest.raises(ExportError) as caught:
            open_forward(missing, device, backend=backend)
        assert str(caught.value) == f"backend {backend} runs on the CPU; use device cpu, or backend torch"


def test_auto_on_a_gpu_device_means_torch(trained_sst2, monkeypatch):
    """Not the ONNX export: `auto` with a CUDA device goes to torch, which refuses a GPU this machine lacks."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="device cuda: CUDA is not available on this machine"):
        open_forward(trained_sst2.run_dir, "cuda", backend="auto")


def test_torch_bf16_runs_under_bfloat16_where_the_cpu_can(trained_sst2):
    if not cpu_runs_bf16():
        with pytest.raises(DeviceError, match="backend torch-bf16 is not available"):
            open_forward(trained_sst2.run_dir, "cpu", backend="torch-bf16")
        return
    run, forward = open_forward(trained_sst2.run_dir, "cpu", backend="torch-bf16")
    assert forward.name == "torch-bf16" and forward.precision == "bf16"
    _, fp32 = open_forward(trained_sst2.run_dir, "cpu", backend="torch")
    token_ids, lengths = batch(run)
    np.testing.assert_allclose(forward(token_ids, lengths), fp32(token_ids, lengths), atol=0.1)


def test_the_onnx_path_does_not_import_torch(trained_sst2):
    code = (
        "import sys\n"
        "from llmcls.inference.backends import open_forward\n"
        f"info, forward = open_forward({str(trained_sst2.run_dir)!r}, 'cpu', backend='auto')\n"
        "print(forward.name, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onnx", "False"]
