"""What this CPU can do, for the tests whose expectation depends on it."""

from __future__ import annotations


def cpu_runs_bf16() -> bool:
    """Whether oneDNN runs the LSTM in bfloat16 on this CPU (not on AVX2-only CPUs, or under
    ONEDNN_MAX_CPU_ISA=AVX2): the bf16 tests check the bf16 path there, and its refusal elsewhere."""
    import torch

    from llmcls.precision import bf16_problem

    return bf16_problem(torch.device("cpu")) is None
