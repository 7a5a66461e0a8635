"""llmcls.device.resolve_device: `auto`, `cpu`, `cuda` and `cuda:N` become torch devices, and anything else, or a GPU
this machine lacks, is refused with one line naming the flag. A GPU cannot exist here: CUDA's presence and count
are the only things pretended (torch.cuda.is_available and device_count)."""

from __future__ import annotations

import pytest
import torch

from llmcls.device import resolve_device
from llmcls.errors import DeviceError


def pretend_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("spec", ["cpu", "CPU", "  cpu\n"])
def test_cpu_whatever_the_case_and_spaces(spec, monkeypatch):
    pretend_gpus(monkeypatch, 2)  # the CPU is taken even where there are GPUs
    assert resolve_device(spec) == torch.device("cpu")


def test_auto_is_the_first_gpu_when_there_is_one_else_the_cpu(monkeypatch):
    pretend_gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")  # auto is the default
    pretend_gpus(monkeypatch, 3)
    assert resolve_device(" AUTO ") == torch.device("cuda")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("cuda", torch.device("cuda", 0)),
        ("cuda:0", torch.device("cuda", 0)),
        ("CUDA:2", torch.device("cuda", 2)),
        ("cuda:02", torch.device("cuda", 2)),
    ],
)
def test_cuda_and_an_index_name_that_gpu(spec, expected, monkeypatch):
    pretend_gpus(monkeypatch, 3)
    device = resolve_device(spec)
    assert device == expected and device.index == expected.index  # plain `cuda` is pinned to GPU 0


@pytest.mark.parametrize(
    "spec", ["tpu", "gpu", "", "cuda:", "cuda:-1", "cuda:x", "cuda 1", "cuda:1:2", "mps", "cpu:0", "cuda:1.5"]
)
def test_a_malformed_spec_is_refused_with_the_forms_accepted(spec, monkeypatch):
    pretend_gpus(monkeypatch, 8)  # refused for its form, not for want of a GPU
    with pytest.raises(DeviceError) as caught:
        resolve_device(spec)
    assert str(caught.value) == f"device {spec.strip().lower()!r}: expected auto, cpu, cuda or cuda:N"


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_on_a_machine_without_it_says_so_and_what_to_use(spec, monkeypatch):
    pretend_gpus(monkeypatch, 0)
    with pytest.raises(DeviceError) as caught:
        resolve_device(spec)
    message = str(caught.value)
    assert message.startswith(f"device {spec}: CUDA is not available on this machine (torch {torch.__version__})")
    assert message.endswith("use device cpu") and "\n" not in message


@pytest.mark.parametrize("count, spec", [(1, "cuda:1"), (2, "cuda:2"), (2, "cuda:9")])
def test_an_index_past_the_gpus_present_names_the_range(count, spec, monkeypatch):
    pretend_gpus(monkeypatch, count)
    with pytest.raises(DeviceError) as caught:
        resolve_device(spec)
    assert str(caught.value) == (f"device {spec}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}")
    assert resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)  # the last one is there
