"""Which floating-point precision the LSTM can run in on a device, and the choice `train.precision: auto` makes.

bfloat16 autocast roughly doubles the LSTM's speed on CPUs with bf16 matrix units (AVX-512 BF16, AMX) and on
recent GPUs. Elsewhere it is either slow (emulated) or impossible: on an AVX2-only CPU oneDNN has no bf16 LSTM and
the first forward pass fails with "could not create a primitive descriptor". torch's CPU flags read the processor
itself and ignore `ONEDNN_MAX_CPU_ISA`, so what oneDNN will actually do is found by a probe: one tiny bf16 LSTM
call (forward and backward), its answer cached for the process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from llmcls.errors import ConfigError

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) that still include bf16 instructions.
_BF16_ISAS = {
    "ALL",
    "DEFAULT",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run or a prediction uses, and why (shown to the user)."""

    precision: str  # fp32 | bf16
    reason: str


def _isa_cap() -> str | None:
    """The oneDNN instruction-set cap set in the environment, upper-cased, or None."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value else None


def cpu_bf16_units() -> str | None:
    """The CPU's bfloat16 matrix units that oneDNN may use ("AMX", "AVX-512 BF16"), or None."""
    cap = _isa_cap()
    if cap is not None and cap not in _BF16_ISAS:
        return None
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX-512 BF16"
    return None


@functools.cache
def cpu_bf16_lstm_error() -> str | None:
    """Why oneDNN cannot run a bfloat16 LSTM on this CPU (its error, shortened), or None when it can.

    One tiny LSTM call under bf16 autocast, forward and backward; cached for the process.
    """
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    weights: list[torch.Tensor] = list(lstm.all_weights[0])  # weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0
    x = torch.randn(1, 2, 4)
    zeros = x.new_zeros(1, 1, 4)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.lstm(x, (zeros, zeros), weights, True, 1, 0.0, True, False, True)[0]
        out.float().sum().backward()
    except RuntimeError as exc:
        return str(exc).split(". ")[0]
    return None


def _cpu_name() -> str:
    capped = f", ONEDNN_MAX_CPU_ISA={_isa_cap()}" if _isa_cap() else ""
    return f"this CPU ({torch.backends.cpu.get_cpu_capability()}{capped})"


def bf16_problem(device: torch.device) -> str | None:
    """Why bfloat16 cannot run on `device`, as a phrase, or None when it can."""
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else f"{torch.cuda.get_device_name(device)} has no bfloat16"
    if device.type != "cpu":
        return f"bfloat16 is not supported on {device.type}"
    error = cpu_bf16_lstm_error()
    return f"{_cpu_name()} cannot run the LSTM in bfloat16 (oneDNN: {error})" if error else None


def fast_bf16(device: torch.device) -> str | None:
    """What makes bfloat16 fast on `device` ("AMX", "AVX-512 BF16", a GPU's name), or None when it is not."""
    if bf16_problem(device) is not None:
        return None
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_bf16_units()


def choose_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """The precision to use for `requested` (auto, fp32 or bf16) on `device`.

    `auto` takes bf16 where the device has fast bfloat16 (a CUDA GPU with bf16, a CPU with AMX or AVX-512 BF16
    that oneDNN uses), fp32 elsewhere.

    Raises:
        ConfigError: bf16 was asked for and the device cannot run it (naming `train.precision`).
    """
    if requested == "fp32":
        return PrecisionChoice("fp32", "train.precision is fp32")
    if requested == "bf16":
        problem = bf16_problem(device)
        if problem is not None:
            raise ConfigError(f"train.precision: bf16 is not available: {problem}; set train.precision to auto or fp32")
        units = fast_bf16(device)
        return PrecisionChoice("bf16", f"train.precision is bf16 ({units or 'emulated: slower than fp32 here'})")
    units = fast_bf16(device)
    if units is not None:
        return PrecisionChoice("bf16", f"auto: {units} runs bfloat16 fast")
    problem = bf16_problem(device)
    why = problem if problem is not None else f"{_cpu_name()} has no bfloat16 units"
    return PrecisionChoice("fp32", f"auto: {why}")
