"""Long texts: windows, aggregation, and a text whose informative part lies beyond the training length."""

import json
import re
import shutil

import numpy as np
import pytest
import yaml

from llmcls.config import ChunkingConfig, merge_chunking
from llmcls.data.batching import EncodedTexts
from llmcls.errors import ConfigError
from llmcls.inference.chunking import aggregate, split_windows, window_starts
from llmcls.inference.evaluate import evaluate_file
from llmcls.inference.predict import Predictor
from llmcls.training.loop import train
from support.configs import small_config


@pytest.mark.parametrize(
    "length,size,stride,starts",
    [
        (5, 8, 4, [0]),
        (8, 8, 4, [0]),
        (9, 8, 4, [0, 1]),
        (16, 8, 4, [0, 4, 8]),
        (17, 8, 4, [0, 4, 8, 9]),
        (20, 8, 8, [0, 8, 12]),
        (10, 3, 1, list(range(8))),
    ],
)
def test_window_starts_cover_the_text(length, size, stride, starts):
    assert window_starts(length, size, stride) == starts
    covered = set()
    for s in starts:
        covered |= set(range(s, min(s + size, length)))
    assert covered == set(range(length))


def test_split_windows_keeps_owners_in_order():
    texts = EncodedTexts(np.arange(100, 117), np.array([0, 3, 13, 17]))  # lengths 3, 10, 4
    windows, owner = split_windows(texts, 4, 3)
    assert owner.tolist() == [0, 1, 1, 1, 2]
    got = [windows.ids[a:b].tolist() for a, b in zip(windows.offsets[:-1], windows.offsets[1:])]
    assert got == [
        [100, 101, 102],
        [103, 104, 105, 106],
        [106, 107, 108, 109],
        [109, 110, 111, 112],
        [113, 114, 115, 116],
    ]
    windows, owner = split_windows(texts, 4, 4)
    assert owner.tolist() == [0, 1, 1, 1, 2]  # starts 0, 4 and 6, the last one ending at the end
    assert windows.ids[windows.offsets[3] : windows.offsets[4]].tolist() == [109, 110, 111, 112]
    short, same = split_windows(texts, 10, 5)
    assert short is texts and same.tolist() == [0, 1, 2]


def test_aggregate_mean_and_max():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    owner = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(aggregate(probs, owner, n_texts=2, how="mean", exclusive=True), [[0.5, 0.5], [0.7, 0.3]])
    np.testing.assert_allclose(
        aggregate(probs, owner, n_texts=2, how="max", exclusive=True), [[0.9 / 1.7, 0.8 / 1.7], [0.7, 0.3]]
    )
    np.testing.assert_allclose(aggregate(probs, owner, n_texts=2, how="max", exclusive=False), [[0.9, 0.8], [0.7, 0.3]])


def test_chunking_settings_are_validated():
    base = ChunkingConfig(max_tokens=100, stride=50)
    assert merge_chunking(base, {"max_tokens": 10}).step == 5  # the old stride does not outlive its window
    assert not merge_chunking(base, {"max_tokens": None}).enabled
    for changes, message in (
        ({"stride": 200}, "chunking.stride (200) must not exceed chunking.max_tokens (100)"),
        ({"aggregate": "median"}, "chunking.aggregate"),
        ({"size": 3}, "chunking.size: no such key"),
        ({"max_tokens": 0}, "chunking.max_tokens"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            merge_chunking(base, changes)


# A plot summary that carries no verdict, longer than the training length, then the verdict.
FILLER = "the film is about a man and his family . it was shown in theaters in the spring ."
VERDICTS = {
    "positive": "a wonderful , moving and funny masterpiece . a gripping , beautifully acted film . "
    "one of the best films of the year .",
    "negative": "the worst movie of the year , a complete mess . a dull , tedious and pointless film . "
    "bad acting and a boring , stupid script .",
}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A model trained on texts cut at 12 tokens (the SST-2 phrases are mostly shorter)."""
    return train(small_config(tmp_path_factory.mktemp("short"), tokenizer={"max_tokens": 12}), device="cpu")


def test_chunking_reads_what_lies_beyond_the_training_length(short_run, tmp_path):
    texts = {label: f"{FILLER} {verdict}" for label, verdict in VERDICTS.items()}
    head_only = Predictor.load(short_run.run_dir, "cpu")
    assert len(next(iter(head_only.encoding.tokenizer([FILLER])))) == 12  # the filler alone fills the training length
    head = head_only.predict_proba(list(texts.values()))
    # the head sees the filler only: the same answer for both (up to rounding: the two sit in one batch padded
    # to the longer one's length, and oneDNN's kernels may round differently there, e.g. on AVX2)
    np.testing.assert_allclose(head[0], head[1], rtol=1e-5)
    chunked = Predictor.load(short_run.run_dir, "cpu", chunking={"max_tokens": 12})
    assert len(next(iter(chunked.encoding.tokenizer([texts["positive"]])))) > 30
    got = chunked.predict(list(texts.values()))
    assert [p.label for p in got] == list(texts)  # each verdict is found ...
    assert any(p.label != head_only.labels[int(np.argmax(h))] for p, h in zip(got, head))  # ... where the head fails
    for label, p in zip(texts, got):
        assert p.probability > 0.55, (label, p.probability)

    data = tmp_path / "long.csv"
    data.write_text("text,label\n" + "".join(f'"{text}",{label}\n' for label, text in texts.items()))
    assert evaluate_file(short_run.run_dir, data, device="cpu")["accuracy"] == 0.5
    report = evaluate_file(short_run.run_dir, data, device="cpu", chunking={"max_tokens": 12, "stride": 6})
    assert report["accuracy"] == 1.0 and report["chunking"] == {"max_tokens": 12, "stride": 6, "aggregate": "mean"}
    assert np.isfinite(report["loss"])


def test_chunking_from_the_run_config_and_the_command_line(short_run, tmp_path):
    from typer.testing import CliRunner

    from llmcls.cli import app

    text = f"{FILLER} {VERDICTS['negative']}"
    runner = CliRunner()
    args = ["predict", str(short_run.run_dir), text, "--json"]
    head = json.loads(runner.invoke(app, args).output)
    chunked = json.loads(runner.invoke(app, args + ["--chunk-tokens", "12", "--chunk-aggregate", "mean"]).output)
    assert chunked["label"] == "negative" and chunked["probability"] != head["probability"]
    result = runner.invoke(app, args + ["--chunk-tokens", "12", "--chunk-stride", "13"])
    assert result.exit_code == 1 and "chunking.stride (13) must not exceed chunking.max_tokens (12)" in result.output
    result = runner.invoke(app, args + ["--chunk-stride", "4"])
    assert result.exit_code == 1 and "chunking.stride needs chunking.max_tokens" in result.output

    # the run's own chunking section applies by default, and --chunk-tokens 0 turns it off
    run_dir = tmp_path / "run"
    shutil.copytree(short_run.run_dir, run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["chunking"] = {"max_tokens": 12, "stride": 6, "aggregate": "mean"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    assert Predictor.load(run_dir, "cpu").chunking.max_tokens == 12
    args[1] = str(run_dir)
    assert json.loads(runner.invoke(app, args).output) == chunked
    assert json.loads(runner.invoke(app, args + ["--chunk-tokens", "0"]).output) == head
