"""Prediction: the Predictor and the Python API, and `llmcls predict` on files and standard input."""

import csv
import gzip
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.data.readers import read_examples
from llmcls.events import Info, PredictionProgress
from llmcls.inference.predict import Predictor
from llmcls.inference.torch_forward import TorchForward
from support.cpu import cpu_runs_bf16
from support.paths import FIXTURES, ROOT

runner = CliRunner()

# Real validation sentences, a duplicate, an empty line, and non-ASCII text: order and count must survive.
TEXTS = [
    "an unwise amalgam of broadcast news and vibes .",
    "a gripping , beautifully acted film",
    "",
    "it 's everything you do n't go to the movies for .",
    "a gripping , beautifully acted film",
    "naïve , but “charming” — très bien",
    "x",
]


@pytest.fixture(scope="module")
def predictor(trained_sst2):
    return Predictor.load(trained_sst2.run_dir, "cpu")


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def jsonl(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_predictions_keep_input_order_whatever_the_batching(predictor, trained_sst2):
    texts = [" ".join(["good"] * n) + f" film {n}" for n in (9, 1, 30, 4, 17, 2, 30)] + TEXTS
    seen = []

    class Recording(TorchForward):
        def __call__(self, token_ids, lengths):
            seen.append(lengths.tolist())
            return super().__call__(token_ids, lengths)

    small = Predictor(predictor.run, Recording(predictor.run.model, predictor.forward.device), batch_size=3)
    np.testing.assert_allclose(small.predict_proba(texts), predictor.predict_proba(texts), rtol=1e-5, atol=1e-6)
    flat = [n for batch in seen for n in batch]
    assert flat == sorted(flat) and len(flat) == len(texts)  # batched by length ...
    assert all(len(batch) <= 3 for batch in seen)
    alone = [predictor.predict_proba([t])[0] for t in texts]  # ... and each text's answer is its own
    np.testing.assert_allclose(predictor.predict_proba(texts), alone, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not cpu_runs_bf16(), reason="this CPU has no bf16 LSTM (test_precision checks the refusal)")
def test_bf16_backend_is_close_to_float32(predictor, trained_sst2):
    texts = read_examples(FIXTURES / "sst2_valid.csv").texts[:200]
    bf16 = Predictor.load(trained_sst2.run_dir, "cpu", backend="torch-bf16")
    assert bf16.backend == "torch-bf16" and predictor.backend == "torch"
    fast, exact = bf16.predict_proba(texts), predictor.predict_proba(texts)
    assert not np.array_equal(fast, exact)  # it did compute in bfloat16 ...
    np.testing.assert_allclose(fast, exact, atol=0.05)  # ... and stays close to float32
    assert np.mean(fast.argmax(1) == exact.argmax(1)) >= 0.98


def test_predict_results(predictor):
    out = predictor.predict(TEXTS, top_k=2)
    assert [p.text for p in out] == TEXTS
    for p in out:
        assert p.label in {"negative", "positive"} and p.labels == [p.label] and p.probabilities == [p.probability]
        assert p.top[0] == (p.label, p.probability) and p.probability >= 0.5
        assert p.top[0][1] + p.top[1][1] == pytest.approx(1.0, abs=1e-5)
    assert out[1] == out[4]  # the same text, the same answer
    assert out[0].label == "negative" and out[1].label == "positive"


def test_a_single_string_gives_a_single_result(predictor):
    one = predictor.predict("a gripping , beautifully acted film", top_k=2)
    assert one == predictor.predict(["a gripping , beautifully acted film"], top_k=2)[0]
    probs = predictor.predict_proba("a gripping , beautifully acted film")
    assert probs.shape == (2,) and probs.dtype == np.float32
    assert predictor.predict_proba([]).shape == (0, 2) and predictor.predict([]) == []


def test_progress_events(predictor):
    events = []
    texts = TEXTS * 300  # 2100 texts: more than one block
    predictor.predict_proba(texts, on_event=events.append)
    assert all(isinstance(e, PredictionProgress) and e.total == len(texts) for e in events)
    assert len(events) > 1 and events[-1].done == len(texts)
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_threshold_is_refused_for_a_single_label_run(trained_sst2):
    from llmcls.errors import ConfigError

    with pytest.raises(ConfigError, match="multi-label runs only"):
        Predictor.load(trained_sst2.run_dir, "cpu", threshold=0.3)
    result = invoke("predict", trained_sst2.run_dir, "hello", "--threshold", "0.3")
    assert result.exit_code == 1 and "multi-label runs only" in result.output


def test_file_and_stdin_keep_order_and_count(predictor, trained_sst2, tmp_path):
    expected = predictor.predict(TEXTS, top_k=2)
    path = tmp_path / "in.txt"
    path.write_text("\r\n".join(TEXTS) + "\r\n", encoding="utf-8")  # CRLF lines, a final line break
    from_file = invoke("predict", trained_sst2.run_dir, "--input", path, "--format", "jsonl", "--top-k", "2")
    assert from_file.exit_code == 0, from_file.output
    assert "note: 1 empty texts (the first is text 3)" in from_file.output
    from_stdin = invoke(
        "predict", trained_sst2.run_dir, "--input", "-", "--json", "--top-k", "2", input="\n".join(TEXTS) + "\n"
    )
    assert from_stdin.exit_code == 0, from_stdin.output
    for rows in (jsonl(from_file.output), jsonl(from_stdin.output)):
        assert [r["text"] for r in rows] == TEXTS
        assert [r["label"] for r in rows] == [p.label for p in expected]
        assert [r["probability"] for r in rows] == pytest.approx([p.probability for p in expected], abs=1e-6)
        assert [[t["label"] for t in r["top_k"]] for r in rows] == [[lb for lb, _ in p.top] for p in expected]

    gz = tmp_path / "in.txt.gz"
    gz.write_bytes(gzip.compress("\n".join(TEXTS).encode("utf-8")))  # no final line break
    rows = jsonl(invoke("predict", trained_sst2.run_dir, "--input", gz, "--json").output)
    assert [r["text"] for r in rows] == TEXTS


def test_columns_of_csv_tsv_and_jsonl_input(trained_sst2, tmp_path):
    rows = list(csv.DictReader(open(FIXTURES / "sst2_valid.csv", newline="", encoding="utf-8")))[:40]
    texts = [r["text"] for r in rows]
    (tmp_path / "in.tsv").write_text("id\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in texts))
    for args in (
        ["--input", FIXTURES / "sst2_valid.csv"],
        ["--input", tmp_path / "in.tsv", "--column", "sentence"],
        ["--input", tmp_path / "in.tsv", "--column", "1"],
        ["--input", tmp_path / "in.jsonl", "--column", "body"],
    ):
        result = invoke("predict", trained_sst2.run_dir, *args, "--json")
        assert result.exit_code == 0, result.output
        got = [r["text"] for r in jsonl(result.output)]
        assert got == (
            [r["text"] for r in csv.DictReader(open(FIXTURES / "sst2_valid.csv"))]
            if args[1].name == "sst2_valid.csv"
            else texts
        )
    csv_stdin = invoke(
        "predict",
        trained_sst2.run_dir,
        "--input",
        "-",
        "--input-format",
        "csv",
        "--json",
        input=(FIXTURES / "sst2_valid.csv").read_text(),
    )
    assert len(jsonl(csv_stdin.output)) == 200
    result = invoke("predict", trained_sst2.run_dir, "--input", tmp_path / "in.tsv", "--column", "text")
    assert result.exit_code == 1 and "no text column 'text'" in result.output


def test_output_formats(predictor, trained_sst2, tmp_path):
    expected = predictor.predict(TEXTS, top_k=2)
    texts_args = [t for t in TEXTS if t]  # arguments cannot be empty strings on every shell; use the non-empty
    result = invoke("predict", trained_sst2.run_dir, *texts_args)
    lines = result.output.splitlines()
    assert len(lines) == len(texts_args)
    label, prob, text = lines[0].split("\t")
    assert (label, text) == (expected[0].label, TEXTS[0]) and float(prob) == pytest.approx(
        expected[0].probability, abs=1e-3
    )
    top = invoke("predict", trained_sst2.run_dir, *texts_args, "--top-k", "2").output.splitlines()
    assert re.fullmatch(r"(negative|positive) 0\.\d{3}, (negative|positive) 0\.\d{3}\t.+", top[0])

    out = tmp_path / "p.csv"
    result = invoke(
        "predict",
        trained_sst2.run_dir,
        "--input",
        "-",
        "--format",
        "csv",
        "--top-k",
        "2",
        "--output",
        out,
        input="\n".join(TEXTS) + "\n",
    )
    assert result.exit_code == 0 and "empty texts" in result.output  # the note goes to stderr; stdout is empty
    table = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert table[0] == [
        "text",
        "label",
        "probability",
        "top_1_label",
        "top_1_probability",
        "top_2_label",
        "top_2_probability",
    ]
    assert [row[0] for row in table[1:]] == TEXTS
    assert [row[1] for row in table[1:]] == [p.label for p in expected]
    assert [float(row[2]) for row in table[1:]] == pytest.approx([p.probability for p in expected], abs=1e-5)
    assert all(row[3] == row[1] and float(row[4]) + float(row[6]) == pytest.approx(1, abs=1e-4) for row in table[1:])

    plain = invoke("predict", trained_sst2.run_dir, "a film", "--format", "csv").output
    assert plain.splitlines()[0] == "text,label,probability"


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "give the texts as arguments, or --input FILE"),
        (["hello", "--input", "-"], "not both"),
        (["--input", "nope.txt"], "nope.txt: file not found"),
        (["--input", "in.docx"], "cannot tell the format from the name"),
        (["hello", "--format", "xml"], "--format xml: expected one of table, csv, jsonl"),
        (["--input", "-", "--input-format", "auto"], None),
    ],
)
def test_input_errors(trained_sst2, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.docx").write_text("x")
    result = invoke("predict", trained_sst2.run_dir, *args, input="")
    if message is None:  # empty standard input: no rows, no error
        assert result.exit_code == 0 and result.output == ""
    else:
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_api_example_in_the_readme_runs(trained_sst2, tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'llmcls.load("runs/sst2")' in code
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "sst2").symlink_to(trained_sst2.run_dir)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("positive ") and lines[0].endswith("a gripping , beautifully acted film")
    assert lines[1].startswith("negative ") and lines[1].endswith("a dull , lifeless mess")
    probs = eval(lines[2])
    assert set(probs) == {"negative", "positive"} and probs["positive"] > 0.5
    top = eval(lines[3])
    assert [label for label, _ in top] == ["positive", "negative"]


def test_import_llmcls_stays_light():
    code = (
        "import sys, llmcls, llmcls.cli; print('torch' in sys.modules, 'spacy' in sys.modules, callable(llmcls.load))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    ).stdout
    assert out.split() == ["False", "False", "True"]


@pytest.mark.parametrize(
    "command,options",
    [
        (
            "predict",
            [
                "--input",
                "--input-format",
                "--column",
                "--format",
                "--output",
                "--top-k",
                "--threshold",
                "--chunk-tokens",
                "--chunk-stride",
                "--chunk-aggregate",
                "--batch-size",
                "--json",
            ],
        ),
        ("eval", ["--threshold", "--chunk-tokens", "--chunk-stride", "--chunk-aggregate"]),
    ],
)
def test_help_lists_the_prediction_options(command, options):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and all(option in result.output for option in options)


def test_progress_bar_only_for_long_inputs():
    from llmcls.cli.progress import PredictProgressBar

    short, long = PredictProgressBar(io.StringIO(), minimum=100), PredictProgressBar(io.StringIO(), minimum=100)
    short(PredictionProgress(10, 10))
    assert short.bar is None
    for done in (50, 100, 150):
        long(PredictionProgress(done, 150))
    assert long.bar is not None and long.bar.total == 150
    assert long.bar.disable  # the stream is no terminal: tqdm draws nothing, so pipes and logs stay clean


def test_texts_beyond_the_prediction_cut_are_cut_with_a_note(trained_sst2):
    predictor = Predictor.load(trained_sst2.run_dir, "cpu")
    assert predictor.run.config.tokenizer.max_tokens is None and predictor.cut == 10_000  # the default cut
    events = []
    probs = predictor.predict_proba(["a gripping film", "great " * 12_000, "dull " * 9_000], on_event=events.append)
    notes = [e.message for e in events if isinstance(e, Info)]
    assert notes == [
        "1 texts longer than 10000 tokens were cut to their first 10000 "
        "(tokenizer.predict_max_tokens; chunking, e.g. --chunk-tokens, reads them whole)"
    ]
    np.testing.assert_allclose(probs[1], predictor.predict_proba("great " * 10_000), atol=1e-6)
    windowed = Predictor.load(trained_sst2.run_dir, "cpu", chunking={"max_tokens": 50})
    assert windowed.cut is None  # windows are bounded already; every token is read


def test_the_cli_prints_the_note_on_stderr(trained_sst2):
    result = runner.invoke(app, ["predict", str(trained_sst2.run_dir), "short", "great " * 10_001])
    assert result.exit_code == 0, result.output
    assert "note: 1 texts longer than 10000 tokens were cut to their first 10000" in result.output


def test_one_5_mb_line_among_1000_short_ones_stays_under_2_gb(trained_sst2, tmp_path):
    """The acceptance check of issue 11: memory bounded by the config, not by the input. A fresh process runs
    `llmcls predict` as its only child, so RUSAGE_CHILDREN's peak is that of the prediction alone."""
    short = (read_examples(FIXTURES / "sst2_valid.csv").texts * 5)[:1000]
    huge = "this film is great , " * 250_000  # 5.25 MB, about 1.25 M tokens
    path = tmp_path / "in.txt"
    path.write_text("\n".join(short[:500] + [huge] + short[500:]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [
        sys.executable,
        "-c",
        code,
        sys.executable,
        "-m",
        "llmcls",
        "predict",
        str(trained_sst2.run_dir),
        "--input",
        str(path),
        "--format",
        "jsonl",
        "--output",
        str(out),
        "--device",
        "cpu",
    ]
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "", "LLMCLS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.split()[-1])  # ru_maxrss is in KiB on Linux
    print(f"peak RSS of the prediction: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 2 * 1024 * 1024
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1001 and [row["text"] for row in rows] == short[:500] + [huge] + short[500:]
    assert "note: 1 texts longer than 10000 tokens were cut" in done.stderr
