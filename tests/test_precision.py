"""The precision choice: bf16 where the device runs it fast, fp32 elsewhere, and a one-line refusal of bf16
where oneDNN cannot run the LSTM in it. `ONEDNN_MAX_CPU_ISA=AVX2` makes any CPU act as an AVX2-only one, so the
refusals are checked on every machine in a subprocess (oneDNN reads the variable once, at start)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from llmcls.errors import ConfigError
from llmcls.precision import choose_precision, cpu_bf16_units, fast_bf16
from support.cpu import cpu_runs_bf16
from support.paths import FIXTURES, SHIPPED_GLOVE

CPU = torch.device("cpu")


def as_avx2(args: list[str], cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_fp32_is_always_fp32():
    assert choose_precision("fp32", CPU).precision == "fp32"


def test_auto_takes_bf16_exactly_where_the_cpu_runs_it_fast():
    choice = choose_precision("auto", CPU)
    fast = cpu_runs_bf16() and cpu_bf16_units() is not None
    assert choice.precision == ("bf16" if fast else "fp32")
    assert choice.reason.startswith("auto: ")
    assert (fast_bf16(CPU) is not None) == fast


def test_bf16_on_this_cpu_is_taken_or_refused_in_one_line():
    if cpu_runs_bf16():
        assert choose_precision("bf16", CPU).precision == "bf16"
    else:
        with pytest.raises(ConfigError, match=r"^train.precision: bf16 is not available: .*set train.precision"):
            choose_precision("bf16", CPU)


def test_an_avx2_cpu_gets_fp32_and_refuses_bf16():
    code = (
        "import torch; from llmcls.precision import choose_precision as c; cpu = torch.device('cpu')\n"
        "print(c('auto', cpu).precision, '|', c('auto', cpu).reason)\n"
        "try:\n    c('bf16', cpu)\nexcept Exception as e:\n    print(type(e).__name__, '|', e)\n"
    )
    out = as_avx2(["-c", code])
    assert out.returncode == 0, out.stderr
    auto, refusal = out.stdout.strip().splitlines()
    assert auto.startswith("fp32 | auto: ") and "ONEDNN_MAX_CPU_ISA=AVX2" in auto
    assert refusal.startswith("ConfigError | train.precision: bf16 is not available") and "could not create" in refusal


def test_a_gpu_with_bf16_gets_bf16_and_one_without_is_refused(monkeypatch):
    gpu = torch.device("cuda", 0)  # no GPU here: its two answers are mocked
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Mock GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_precision("auto", gpu).precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_precision("auto", gpu).precision == "fp32"
    with pytest.raises(ConfigError, match="Mock GPU has no bfloat16"):
        choose_precision("bf16", gpu)


def _tiny_config(tmp_path, precision: str):
    raw = {
        "name": "p",
        "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(FIXTURES / "sst2_train.csv"), "valid": str(FIXTURES / "sst2_valid.csv")},
        "embeddings": {"source": str(SHIPPED_GLOVE)},
        "model": {"hidden_size": 8},
        "train": {"epochs": 1, "threads": 1, "precision": precision},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_on_an_avx2_cpu_trains_auto_in_fp32_and_refuses_bf16(tmp_path, trained_sst2):
    refused = as_avx2(["-m", "llmcls", "train", "--config", str(_tiny_config(tmp_path, "bf16")), "--quiet"])
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "train.precision: bf16 is not available" in refused.stderr
    assert not (tmp_path / "runs").exists()  # refused before any work

    trained = as_avx2(["-m", "llmcls", "train", "--config", str(_tiny_config(tmp_path, "auto"))])
    assert trained.returncode == 0, trained.stderr
    assert "precision: fp32 (auto: " in trained.stdout + trained.stderr
    assert (tmp_path / "runs" / "p" / "model.safetensors").is_file()

    predicted = as_avx2(
        ["-m", "llmcls", "predict", str(trained_sst2.run_dir), "a fine film", "--backend", "torch-bf16"]
    )
    assert predicted.returncode == 1 and predicted.stderr.strip().count("\n") == 0
    assert "backend torch-bf16 is not available" in predicted.stderr and "use backend torch" in predicted.stderr
