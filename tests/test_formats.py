"""Every data format end to end. The same texts in CSV and in each other format (fastText, Parquet, class folders,
a Hugging Face dataset saved to disk, TSV, JSONL) give the same encoded data and the same trained model with the
same seed; train, eval and init take each; and the commands docs/configuration.md shows work as written: `init` on
an aclImdb-style layout, `train` on fastText files, `predict --input` on Parquet, read and written block by
block."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from llmcls.adapt.render import init_config
from llmcls.cli import app
from llmcls.data.prepare import prepare_data
from llmcls.data.readers import iter_texts, read_examples
from llmcls.inference.evaluate import evaluate_file
from llmcls.inference.predict import Predictor
from llmcls.training.loop import train
from support.configs import small_config
from support.formats import FORMATS, SUFFIX, in_folder_order, write_class_folders, write_fasttext, write_format
from support.paths import FIXTURES, SHIPPED_GLOVE
from support.resume import assert_same_run

runner = CliRunner()
FAST = {"epochs": 2, "export_onnx": False, "plots": False}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows_of(path):
    ex = read_examples(path)
    return in_folder_order(list(zip(ex.texts, ex.labels)))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """SST-2's 600 training and 200 validation sentences in every format: format -> (train, valid)."""
    root = tmp_path_factory.mktemp("formats")
    train_rows, valid_rows = rows_of(FIXTURES / "sst2_train.csv"), rows_of(FIXTURES / "sst2_valid.csv")
    return {
        fmt: (
            write_format(fmt, root / f"train-{fmt}{SUFFIX[fmt]}", train_rows),
            write_format(fmt, root / f"valid-{fmt}{SUFFIX[fmt]}", valid_rows),
        )
        for fmt in FORMATS
    }


def config_for(tmp_path, paths):
    return small_config(tmp_path, data={"train": str(paths[0]), "valid": str(paths[1])}, train=FAST)


@pytest.fixture(scope="module")
def from_csv(written, tmp_path_factory):
    """The CSV files' encoded data, trained run, evaluation and init profile: what every other format must give."""
    tmp = tmp_path_factory.mktemp("csv")
    config = config_for(tmp, written["csv"])
    result = train(config, device="cpu")
    return {
        "data": prepare_data(config),
        "run": result,
        "eval": evaluate_file(result.run_dir, written["csv"][1], device="cpu", backend="torch"),
        "init": init_config({"train": str(written["csv"][0])}, out=tmp / "init.yaml"),
    }


def assert_same_data(a, b):
    assert a.labels.labels == b.labels.labels and a.vocab.itos == b.vocab.itos
    for split in ("train", "valid"):
        x, y = getattr(a, split), getattr(b, split)
        assert np.array_equal(x.texts.ids, y.texts.ids) and np.array_equal(x.texts.offsets, y.texts.offsets)
        assert np.array_equal(x.targets, y.targets)


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "csv"])
def test_each_format_gives_the_data_model_evaluation_and_init_of_csv(fmt, written, from_csv, tmp_path):
    config = config_for(tmp_path, written[fmt])
    assert_same_data(prepare_data(config), from_csv["data"])
    result = train(config, device="cpu")
    assert_same_run(result, from_csv["run"])  # bit-identical weights, metrics and history
    report = evaluate_file(result.run_dir, written[fmt][1], device="cpu", backend="torch")
    for key in ("n", "accuracy", "macro_f1", "confusion_matrix", "loss"):
        assert report[key] == from_csv["eval"][key], key
    init = init_config({"train": str(written[fmt][0])}, out=tmp_path / "init.yaml")
    expected = from_csv["init"]
    assert (init.profile.texts, init.profile.class_counts, init.profile.percentiles) == (
        expected.profile.texts,
        expected.profile.class_counts,
        expected.profile.percentiles,
    )
    assert [(c.key, c.value) for c in init.choices] == [(c.key, c.value) for c in expected.choices]
    assert yaml.safe_load(init.path.read_text())["data"] == {"train": str(written[fmt][0])}  # told from the path


def test_predicting_in_blocks_gives_what_predicting_at_once_gives(written, from_csv):
    predictor = Predictor.load(from_csv["run"].run_dir, "cpu", backend="torch")
    path = written["parquet"][1]
    at_once = predictor.predict(read_examples(path).texts, top_k=2)
    in_blocks = [p for block in predictor.predict_blocks(iter_texts(path, block_texts=64), top_k=2) for p in block]
    assert len(in_blocks) == len(at_once) == 200
    assert [(p.text, p.label) for p in in_blocks] == [(p.text, p.label) for p in at_once]
    # other batches, other float sums: equal to rounding
    np.testing.assert_allclose([p.probability for p in in_blocks], [p.probability for p in at_once], rtol=1e-5)


def imdb_folders(root):
    """60 real IMDB reviews (tests/fixtures/imdb_train.csv) in aclImdb's layout: train/ and test/, each with neg/
    and pos/ (train/ also with unsup/ and the url lists beside the class folders, as aclImdb ships)."""
    ex = read_examples(FIXTURES / "imdb_train.csv")
    rows = [(text, {"negative": "neg", "positive": "pos"}[label]) for text, label in zip(ex.texts, ex.labels)]
    write_class_folders(root / "train", in_folder_order(rows[:40] + rows[50:]))
    write_class_folders(root / "test", in_folder_order(rows[40:50] + rows[-4:]))
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("an unlabelled review")
    (root / "train" / "urls_pos.txt").write_text("http://www.imdb.com/title/tt0453418/usercomments\n")
    return root


def test_init_and_train_on_aclimdb_folders_as_the_docs_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    imdb_folders(tmp_path / "aclImdb")
    result = invoke("init", "--train", "aclImdb/train", "--classes", "neg,pos", "--test", "aclImdb/test")
    assert result.exit_code == 0, result.output
    assert "wrote aclImdb.yaml: 50 texts, 2 classes" in result.output
    assert load_yaml("aclImdb.yaml")["data"] == {
        "train": "aclImdb/train",
        "test": "aclImdb/test",
        "classes": ["neg", "pos"],
    }
    trained = invoke(
        "train",
        "--config",
        "aclImdb.yaml",
        "--set",
        f"embeddings.source={SHIPPED_GLOVE}",
        "--set",
        "train.epochs=1",
        "--set",
        "model.num_layers=1",
        "--set",
        "model.hidden_size=16",
        "--set",
        "train.export_onnx=false",
        "--set",
        "train.plots=false",
        "-q",
    )
    assert trained.exit_code == 0, trained.output
    assert "test\n" in trained.output
    evaluated = invoke("eval", "runs/aclImdb", "--data", "aclImdb/test", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["n"] == 14
    unsup = invoke("init", "--train", "aclImdb/train", "--out", "three.yaml")  # without --classes: unsup is a class
    assert unsup.exit_code == 0 and "3 classes" in unsup.output


def load_yaml(path):
    return yaml.safe_load(open(path, encoding="utf-8"))


def test_train_and_predict_on_fasttext_files_as_the_docs_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for split in ("train", "valid"):
        write_fasttext(tmp_path / f"sst2.{split}", rows_of(FIXTURES / f"sst2_{split}.csv"))
    config = small_config(tmp_path, name="sst2-ft", data={"train": "sst2.train", "valid": "sst2.valid"}, train=FAST)
    (tmp_path / "sst2-ft.yaml").write_text(yaml.safe_dump(config.to_dict()))
    trained = invoke("train", "--config", "sst2-ft.yaml", "-q")
    assert trained.exit_code == 0, trained.output
    run_dir = tmp_path / "runs" / "sst2-ft"
    predicted = invoke("predict", run_dir, "--input", "sst2.valid", "--format", "csv", "--output", "preds.csv")
    assert predicted.exit_code == 0, predicted.output
    with open("preds.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["text"] for row in rows] == read_examples("sst2.valid").texts  # the labels are not text
    accuracy = np.mean([row["label"] == label for row, label in zip(rows, read_examples("sst2.valid").labels)])
    assert accuracy > 0.6


def test_predict_reads_parquet_and_writes_the_output_whole(written, from_csv, tmp_path):
    run_dir, path = from_csv["run"].run_dir, written["parquet"][1]
    result = invoke("predict", run_dir, "--input", path, "--format", "jsonl", "--backend", "torch")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    expected = Predictor.load(run_dir, "cpu", backend="torch").predict(read_examples(path).texts)
    assert [(x["text"], x["label"]) for x in lines] == [(p.text, p.label) for p in expected]
    bad = invoke("predict", run_dir, "--input", path, "--column", "body", "--output", tmp_path / "out.csv")
    assert bad.exit_code == 1 and "no text column 'body'" in bad.output
    assert not list(tmp_path.iterdir())  # nothing half-written
    to_null = invoke("predict", run_dir, "--input", path, "--format", "csv", "--output", "/dev/null")
    assert to_null.exit_code == 0 and Path("/dev/null").is_char_device()  # written into, never replaced


def test_tune_searches_on_any_format_as_on_csv(written, tmp_path):
    pytest.importorskip("optuna")
    from llmcls.tuning.search import tune
    from llmcls.tuning.space import Param

    space = [Param("model.hidden_size", "choice", choices=(16,))]
    found = {}
    for fmt in ("csv", "hf_disk"):
        config = config_for(tmp_path / fmt, written[fmt])
        out = tmp_path / fmt / "tune"
        tune(config, 600, trials=1, out_dir=out, search_space=space, device="cpu")
        with open(out / "trials.csv", newline="") as fh:
            [row] = list(csv.DictReader(fh))
        found[fmt] = (row["state"], row["valid_accuracy"])
    assert found["hf_disk"] == found["csv"] and found["csv"][0] == "complete"
