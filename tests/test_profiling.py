import pytest
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.model import ModelArgs
from llmcls.profiling import cpu_peak_flops, flops_per_token, profile_run


def test_flops_of_the_seed_model_by_hand():
    """2-layer BiLSTM 256 on 50d inputs: the ~13 MFLOPs per training-step token quoted for the reference."""
    f = flops_per_token(ModelArgs(vocab_size=10, embedding_dim=50, num_outputs=1, hidden_size=256, num_layers=2))
    layer1 = 2 * (8 * 256 * (50 + 256) + 10 * 256)
    layer2 = 2 * (8 * 256 * (512 + 256) + 10 * 256)
    assert f["forward"] == layer1 + layer2
    assert f["train_step"] == pytest.approx(13.2e6, rel=0.01)
    uni = flops_per_token(ModelArgs(vocab_size=10, embedding_dim=4, num_outputs=3, hidden_size=2, bidirectional=False))
    assert uni["forward"] == 8 * 2 * (4 + 2) + 20


def test_peak_from_vector_units():
    assert cpu_peak_flops(2, {"clock_hz": 2e9, "flags": {"avx2", "fma"}}) == 32 * 2e9 * 2
    assert cpu_peak_flops(1, {"clock_hz": 1e9, "flags": {"avx512f", "avx2", "fma"}}) == 64e9
    assert cpu_peak_flops(1, {"clock_hz": None, "flags": set()}) is None


def test_profile_measures_a_run(trained_sst2):
    figures = profile_run(trained_sst2.run_dir, device="cpu", seconds=0.3)
    assert figures["texts"] == 200 and figures["device"] == "cpu"
    assert figures["train_tokens_per_s"] > 0 and figures["predict_tokens_per_s"] > figures["train_tokens_per_s"]
    assert figures["train_flop_per_s"] == pytest.approx(
        figures["flops_per_token_train_step"] * figures["train_tokens_per_s"]
    )
    if figures["clock_hz"]:
        assert figures["train_cycles_per_token"] == pytest.approx(
            figures["clock_hz"] * figures["threads"] / figures["train_tokens_per_s"]
        )
    result = CliRunner().invoke(app, ["profile", str(trained_sst2.run_dir), "--seconds", "0.2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "FLOPs/token" in result.output and "tokens/s" in result.output
