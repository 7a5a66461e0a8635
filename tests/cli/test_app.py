"""The CLI in-process, through typer's CliRunner."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.config import load_config
from support.configs import small_config
from support.paths import FIXTURES, ROOT

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_eval_predict(tmp_path):
    config = small_config(tmp_path, train={"epochs": 3})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    run_dir = tmp_path / "out"
    result = invoke(
        "train",
        "--config",
        path,
        "--set",
        "train.epochs=2",
        "--set",
        "name=cli",
        "--run-dir",
        run_dir,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "best epoch" in result.output and "accuracy" in result.output
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 2
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2

    result = invoke("eval", run_dir, "--data", FIXTURES / "sst2_valid.csv")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "macro-F1" in result.output and "confusion matrix" in result.output
    result = invoke("eval", run_dir, "--data", FIXTURES / "sst2_valid.csv", "--json")
    report = json.loads(result.output)
    assert report["n"] == 200 and sum(map(sum, report["confusion_matrix"])) == 200
    assert set(report["per_class"]) == {"negative", "positive"}

    result = invoke("predict", run_dir, "a gripping film", "a dull film", "--json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["text"] for line in lines] == ["a gripping film", "a dull film"]
    assert all(line["label"] in {"negative", "positive"} and len(line["top_k"]) == 2 for line in lines)
    assert all(abs(sum(t["probability"] for t in line["top_k"]) - 1) < 1e-5 for line in lines)
    result = invoke("predict", run_dir, "a gripping film")
    label, prob, text = result.output.strip().split("\t")
    assert label in {"negative", "positive"} and 0.5 <= float(prob) <= 1 and text == "a gripping film"


def test_eval_with_other_columns(trained_sst2, tmp_path):
    path = tmp_path / "renamed.jsonl"
    import csv

    rows = list(csv.DictReader(open(FIXTURES / "sst2_valid.csv")))
    path.write_text("".join(json.dumps({"sentence": r["text"], "y": r["label"]}) + "\n" for r in rows))
    result = invoke(
        "eval", trained_sst2.run_dir, "--data", path, "--text-column", "sentence", "--label-column", "y", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == pytest.approx(trained_sst2.valid["accuracy"])


@pytest.mark.parametrize(
    "args,culprit",
    [
        (["train", "--config", "missing.yaml"], "missing.yaml: config file not found"),
        (["eval", "no-such-run", "--data", FIXTURES / "sst2_valid.csv"], "no-such-run: no such run directory"),
        (["predict", "no-such-run", "hello"], "no-such-run: no such run directory"),
        (["predict", FIXTURES, "hello"], "not a complete run directory"),
        (["train", "--config", FIXTURES / "README.md"], "README.md: not valid YAML at line 5"),
        (["train", "--config", FIXTURES], "is a directory"),
    ],
)
def test_errors_are_one_line_without_traceback(args, culprit):
    result = invoke(*args)
    assert result.exit_code == 1
    assert culprit in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_config_key_and_bad_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {train: x.csv}\nmodel: {hiden_size: 3}\n")
    result = invoke("train", "--config", path)
    assert result.exit_code == 1 and "model.hiden_size" in result.output and "model.hidden_size" in result.output
    path.write_text("data: {train: x.csv}\n")
    result = invoke("train", "--config", path, "--set", "train.lr=fast")
    assert result.exit_code == 1 and "train.lr" in result.output and "Traceback" not in result.output
    result = invoke("train", "--config", path, "--device", "cpu")
    assert result.exit_code == 1 and "x.csv: file not found" in result.output


def test_missing_data_file_and_unknown_labels(trained_sst2, tmp_path):
    result = invoke("eval", trained_sst2.run_dir, "--data", tmp_path / "nope.csv")
    assert result.exit_code == 1 and "nope.csv: file not found" in result.output
    (tmp_path / "odd.csv").write_text("text,label\nfine,neutral\n")
    result = invoke("eval", trained_sst2.run_dir, "--data", tmp_path / "odd.csv")
    assert result.exit_code == 1 and "'neutral'" in result.output


def test_cuda_without_cuda_is_a_clean_error(trained_sst2):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = invoke("predict", trained_sst2.run_dir, "hello", "--device", "cuda")
    assert result.exit_code == 1 and "CUDA is not available" in result.output


def test_debug_shows_the_traceback():
    result = invoke("--debug", "train", "--config", "missing.yaml")
    assert result.exit_code == 1 and "Traceback" in result.output


@pytest.mark.parametrize(
    "command,options",
    [
        ([], ["train", "eval", "predict", "plot", "--debug", "--version"]),
        (["train"], ["--config", "--set", "--resume", "--overwrite", "--device", "--run-dir", "--quiet"]),
        (["plot"], ["RUN"]),
        (["eval"], ["--data", "--text-column", "--label-column", "--format", "--device", "--batch-size", "--json"]),
        (["predict"], ["--top-k", "--device", "--json"]),
    ],
)
def test_help_explains_every_option(command, options):
    result = runner.invoke(app, command + ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in options:
        assert option in result.output


def test_train_refuses_an_existing_run_then_resumes_and_overwrites(tmp_path):
    config = small_config(tmp_path, train={"epochs": 1})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    run_dir = tmp_path / "r"
    assert invoke("train", "--config", path, "--run-dir", run_dir, "-q").exit_code == 0
    result = invoke("train", "--config", path, "--run-dir", run_dir, "-q")
    assert result.exit_code == 1 and "already exists" in result.output and "--resume" in result.output
    result = invoke("train", "--resume", run_dir, "--set", "train.epochs=2", "-q")
    assert result.exit_code == 0, result.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    result = invoke("train", "--resume", run_dir, "--set", "model.hidden_size=8")
    assert result.exit_code == 1 and "model.hidden_size: cannot change when resuming" in result.output
    assert invoke("train", "--config", path, "--run-dir", run_dir, "--overwrite", "-q").exit_code == 0
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    result = invoke("train")
    assert result.exit_code != 0 and "--config" in result.output


def test_nproc_starts_the_processes_with_every_option_given():
    """--nproc repeats the command line for each process: every option of `train` but --nproc, as given."""
    import typer

    from llmcls.cli.common import command_line

    command = typer.main.get_command(app).commands["train"]
    ctx = command.make_context(
        "train", ["--nproc", "2", "-q", "--resume", "r", "-s", "a=1", "-s", "b=2", "--device", "cpu"]
    )
    assert command_line(ctx, without=("nproc",)) == [
        "--set",
        "a=1",
        "--set",
        "b=2",
        "--resume",
        "r",
        "--device",
        "cpu",
        "--quiet",
    ]


def test_help_texts_are_paragraphs_the_terminal_wraps():
    """A docstring's line breaks would split sentences in `llmcls --help`; each paragraph is one line of help."""
    from llmcls.cli.app import app as typer_app
    from llmcls.cli.render import paragraphs

    assert (
        paragraphs("""First line
        goes on.

        Second paragraph
        here.""")
        == "First line goes on.\n\nSecond paragraph here."
    )
    for command in typer_app.registered_commands:
        assert command.help and "\n" not in command.help.replace("\n\n", ""), command.callback.__name__
    result = CliRunner().invoke(typer_app, ["--help"], env={"COLUMNS": "200"})
    assert "labels, weights, checkpoint, metrics, plots" in result.output  # one sentence, unbroken


def test_init_writes_a_config_that_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the written config names the shipped vectors by their path in the repository
    out = tmp_path / "trec.yaml"
    result = invoke("init", "--train", FIXTURES / "trec_train.csv", "--test", FIXTURES / "trec_test.csv", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 500 texts, 6 classes" in result.output and "train.epochs: 20" in result.output
    assert load_config(out).data.test == str(FIXTURES / "trec_test.csv")
    again = invoke("init", "--train", FIXTURES / "trec_train.csv", "--out", out)
    assert again.exit_code == 1 and "already exists; give --force" in again.output
    run_dir = tmp_path / "run"
    trained = invoke(
        "train",
        "--config",
        out,
        "--set",
        "train.epochs=2",
        "--set",
        "train.export_onnx=false",
        "--set",
        "train.plots=false",
        "--run-dir",
        run_dir,
        "--device",
        "cpu",
    )
    assert trained.exit_code == 0, trained.output
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["train"]["lr"], saved["train"]["batch_size"], saved["train"]["patience"]) == (2e-3, 32, 3)
