"""What users get wrong, and what a hostile file could do: each case through the real CLI, in-process.

Every failing case must exit non-zero with one line that names the culprit, print no traceback, and leave every
file that existed before untouched.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from llmcls.cli import app
from support.configs import alias_bomb
from support.paths import FIXTURES, SHIPPED_GLOVE

runner = CliRunner()


def write_config(tmp: Path, files: dict | None = None, **sections) -> Path:
    raw = {
        "name": "t",
        "output_dir": str(tmp / "runs"),
        "data": files or {"train": str(FIXTURES / "sst2_train.csv"), "valid": str(FIXTURES / "sst2_valid.csv")},
        "embeddings": {"source": str(SHIPPED_GLOVE)},
        "model": {"hidden_size": 8},
        "train": {"epochs": 1, "threads": 1},
    }
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def data_file(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def train_on(tmp: Path, name: str, content: str | bytes, **sections) -> list:
    path = data_file(tmp, name, content)
    return ["train", "--config", write_config(tmp, {"train": str(path)}, **sections), "--device", "cpu"]


def run_copy(tmp: Path, run: Path) -> Path:
    target = tmp / "run"
    shutil.copytree(run, target)
    return target


def damage(tmp: Path, run: Path, name: str, change) -> Path:
    target = run_copy(tmp, run)
    path = target / name
    path.write_bytes(change(path.read_bytes()))
    return target


def other_version(tmp: Path, run: Path) -> Path:
    target = run_copy(tmp, run)
    meta = json.loads((target / "meta.json").read_text())
    meta["format_version"] = 99
    (target / "meta.json").write_text(json.dumps(meta))
    return target


def user_folder(tmp: Path) -> Path:
    """A folder of the user's that merely holds a config.yaml, beside notes and a git repository."""
    folder = tmp / "project"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "config.yaml").write_text("name: mine\n")
    (folder / "notes.txt").write_text("precious")
    return folder


def with_file(tmp: Path, run: Path, name: str) -> Path:
    target = run_copy(tmp, run)
    (target / name).write_text("precious")
    return target


def with_config(tmp: Path, run: Path, text: str) -> Path:
    """A copy of the run whose config.yaml is `text`."""
    target = run_copy(tmp, run)
    (target / "config.yaml").write_text(text)
    return target


def linked_lock(tmp: Path) -> Path:
    """A run directory whose .lock is a symbolic link to a file elsewhere."""
    target = tmp / "fresh"
    target.mkdir()
    (target / ".lock").symlink_to(data_file(tmp, "elsewhere.txt", "precious"))
    return target


def linked_plots(tmp: Path, run: Path) -> Path:
    """A run whose plots/ is a symbolic link to a folder elsewhere."""
    target = run_copy(tmp, run)
    shutil.rmtree(target / "plots")
    (tmp / "elsewhere").mkdir()
    (target / "plots").symlink_to(tmp / "elsewhere")
    return target


def overwrite(tmp: Path, run_dir: Path, files: dict | None = None) -> list:
    return ["train", "--config", write_config(tmp, files), "--run-dir", run_dir, "--overwrite"]


def corrupt_gzip(data: bytes) -> bytes:
    """A gzip stream whose compressed body is damaged in the middle (the header stays valid)."""
    packed = bytearray(gzip.compress(data))
    middle = len(packed) // 2
    packed[middle : middle + 16] = bytes(16)
    return bytes(packed)


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


# id -> (build the arguments in a temporary directory, the text the one-line error must contain)
CASES = {
    # config
    "config missing": (lambda t, r: ["train", "--config", t / "nope.yaml"], "nope.yaml: config file not found"),
    "config not yaml": (
        lambda t, r: ["train", "--config", data_file(t, "c.yaml", "data: [oops\n")],
        "c.yaml: not valid YAML at line 2",
    ),
    "config not a mapping": (
        lambda t, r: ["train", "--config", data_file(t, "c.yaml", "- a\n- b\n")],
        "must be a YAML mapping of sections, but the file is a list",
    ),
    "config unknown key": (
        lambda t, r: ["train", "--config", write_config(t, model={"hiden_size": 3})],
        "unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)",
    ),
    "config wrong type": (
        lambda t, r: ["train", "--config", write_config(t, train={"epochs": "many"})],
        "train.epochs: Input should be a valid integer",
    ),
    "config negative lr": (
        lambda t, r: ["train", "--config", write_config(t, train={"lr": -0.1})],
        "train.lr: Input should be greater than 0",
    ),
    "config dropout 1": (
        lambda t, r: ["train", "--config", write_config(t, model={"dropout": 1.0})],
        "model.dropout: Input should be less than 1",
    ),
    "config zero epochs": (
        lambda t, r: ["train", "--config", write_config(t, train={"epochs": 0})],
        "train.epochs: Input should be greater than or equal to 1",
    ),
    "config batch size 0": (
        lambda t, r: ["train", "--config", write_config(t, train={"batch_size": 0})],
        "train.batch_size",
    ),
    "config alias bomb": (
        lambda t, r: ["train", "--config", data_file(t, "bomb.yaml", alias_bomb(7))],
        "bomb.yaml: YAML refused at line 4, column 4: aliases expand the document by more than 10000 values",
    ),
    "set unknown key": (
        lambda t, r: ["train", "--config", write_config(t), "--set", "train.learning_rate=1"],
        "--set train.learning_rate: no such config key",
    ),
    "set wrong type": (
        lambda t, r: ["train", "--config", write_config(t), "--set", "train.batch_size=big"],
        "train.batch_size: Input should be a valid integer",
    ),
    # data
    "data missing": (
        lambda t, r: ["train", "--config", write_config(t, {"train": str(t / "gone.csv")})],
        "gone.csv: file not found",
    ),
    "data is a directory": (
        lambda t, r: ["train", "--config", write_config(t, {"train": str(t)}, data={"format": "csv"})],
        "is a directory, expected a data file",
    ),
    "data empty": (lambda t, r: train_on(t, "e.csv", ""), "e.csv: file is empty"),
    "data header only": (lambda t, r: train_on(t, "h.csv", "text,label\n"), "h.csv: no rows after the header"),
    "data no text column": (
        lambda t, r: train_on(t, "c.csv", "sentence,label\nhi,pos\n"),
        "no text column 'text'; columns found: 'sentence', 'label'",
    ),
    "data malformed row": (
        lambda t, r: train_on(t, "m.csv", 'text,label\nok,pos\n"never closed,neg\nx,pos\n'),
        "m.csv, line 3: malformed CSV record",
    ),
    "data too few fields": (
        lambda t, r: train_on(t, "f.csv", "text,label\nok,pos\nlonely\n"),
        "f.csv, line 3: expected at least 2 fields, found 1",
    ),
    "data not utf-8": (
        lambda t, r: train_on(t, "l.csv", b"text,label\nok,pos\ncaf\xe9 au lait,neg\n"),
        "l.csv, line 3: bytes that are not utf-8 at byte offset 21 (b'\\xe9 au')",
    ),
    "data unknown encoding": (
        lambda t, r: train_on(t, "u.csv", "text,label\nok,pos\n", data={"encoding": "klingon"}),
        "unknown encoding 'klingon'",
    ),
    "data empty texts refused": (
        lambda t, r: train_on(t, "w.csv", "text,label\ngood,pos\n   ,neg\nbad,neg\n", data={"empty_texts": "error"}),
        "w.csv: 1 empty or whitespace-only texts (the first is record 2)",
    ),
    "data single class": (
        lambda t, r: train_on(t, "s.csv", "text,label\ngood,pos\nfine,pos\nnice,pos\n"),
        "the training data has a single class ('pos')",
    ),
    "data unseen valid labels": (
        lambda t, r: [
            "train",
            "--config",
            write_config(
                t,
                {
                    "train": str(FIXTURES / "sst2_train.csv"),
                    "valid": str(data_file(t, "v.csv", "text,label\nmeh,neutral\n")),
                },
            ),
        ],
        "v.csv: labels not seen in the training data: 'neutral'",
    ),
    "jsonl broken line": (
        lambda t, r: train_on(t, "b.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "lab\n'),
        "b.jsonl, line 2: not valid JSON",
    ),
    # embeddings
    "glove missing": (
        lambda t, r: ["train", "--config", write_config(t, embeddings={"source": str(t / "g.txt")})],
        "g.txt: vector file not found",
    ),
    "glove ragged": (
        lambda t, r: [
            "train",
            "--config",
            write_config(t, embeddings={"source": str(data_file(t, "g.txt", "the 1 2 3\nfilm 1 2\n"))}),
        ],
        "g.txt, line 2: 2 values, expected 3",
    ),
    "glove dim": (
        lambda t, r: ["train", "--config", write_config(t, embeddings={"source": str(SHIPPED_GLOVE), "dim": 100})],
        "vectors have dimension 50, but embeddings.dim is 100",
    ),
    "glove nan": (
        lambda t, r: [
            "train",
            "--config",
            write_config(t, embeddings={"source": str(data_file(t, "g.txt", "the 1 2 3\nfilm 1 nan 3\n"))}),
        ],
        "g.txt, line 2: a value is not a finite number (nan)",
    ),
    "glove inf": (
        lambda t, r: [
            "train",
            "--config",
            write_config(t, embeddings={"source": str(data_file(t, "g.txt", "the 1 2 3\nfilm 1 2 -inf\n"))}),
        ],
        "g.txt, line 2: a value is not a finite number (-inf)",
    ),
    "glove extra values": (
        lambda t, r: [
            "train",
            "--config",
            write_config(t, embeddings={"source": str(data_file(t, "g.txt", "the 1 2 3\nfilm 1 2 3 4\n"))}),
        ],
        "g.txt, line 2: 4 values, expected 3",
    ),
    "glove corrupt gz": (
        lambda t, r: [
            "train",
            "--config",
            write_config(t, embeddings={"source": str(data_file(t, "g.txt.gz", corrupt_gzip(b"the 1 2 3\n" * 2000)))}),
        ],
        "g.txt.gz: corrupt archive",
    ),
    # limits
    "seed beyond 2**32": (
        lambda t, r: ["train", "--config", write_config(t), "--set", f"seed={2**32}"],
        "seed: Input should be less than or equal to 4294967295",
    ),
    "hidden size 1e12": (
        lambda t, r: ["train", "--config", write_config(t, model={"hidden_size": 1e12})],
        "model.hidden_size: Input should be less than or equal to 65536",
    ),
    "jsonl nested too deeply": (
        lambda t, r: train_on(t, "n.jsonl", '{"text": "a", "label": "x"}\n' + "[" * 100_000 + "\n"),
        "n.jsonl, line 2: JSON nested too deeply",
    ),
    "data corrupt gz": (
        lambda t, r: train_on(t, "c.csv.gz", corrupt_gzip(b"text,label\ngood,pos\n" * 2000)),
        "c.csv.gz: corrupt or truncated gzip data",
    ),
    "data truncated gz": (
        lambda t, r: train_on(t, "c.csv.gz", gzip.compress(b"text,label\ngood,pos\n" * 2000)[:-30]),
        "c.csv.gz: corrupt or truncated gzip data",
    ),
    "too many classes": (
        lambda t, r: [
            "train",
            "--config",
            write_config(t),
            "--set",
            "data.label_column=text",
            "--set",
            "data.max_classes=100",
        ],
        "sst2_train.csv: label column 'text' holds 600 distinct labels, more than data.max_classes (100)",
    ),
    # runs
    "eval not a run": (
        lambda t, r: ["eval", t / "nothing", "--data", FIXTURES / "sst2_valid.csv"],
        "nothing: no such run directory",
    ),
    "predict not a run": (lambda t, r: ["predict", FIXTURES, "hi"], "not a complete run directory, missing"),
    "weights corrupt": (
        lambda t, r: ["predict", damage(t, r, "model.safetensors", lambda b: b"\x00" * len(b)), "hi"],
        "damaged run directory",
    ),
    "weights truncated": (
        lambda t, r: ["predict", damage(t, r, "model.safetensors", lambda b: b[: len(b) // 3]), "hi"],
        "damaged run directory",
    ),
    "weights are a pickle": (
        lambda t, r: ["predict", damage(t, r, "model.safetensors", lambda b: pickle.dumps(Exploit())), "hi"],
        "damaged run directory",
    ),
    "run config alias bomb": (
        lambda t, r: ["predict", with_config(t, r, alias_bomb(9)), "hi"],
        "run/config.yaml: YAML refused at line 4, column 4: aliases expand the document",
    ),
    "run from another version": (
        lambda t, r: ["predict", other_version(t, r), "hi"],
        "run format version 99, this llmcls",
    ),
    "eval unknown labels": (
        lambda t, r: ["eval", r, "--data", data_file(t, "odd.csv", "text,label\nhm,neutral\n")],
        "labels the model was not trained on: 'neutral'",
    ),
    "resume nothing": (lambda t, r: ["train", "--resume", t / "nothing"], "config.yaml: config file not found"),
    "train into existing run": (
        lambda t, r: ["train", "--config", write_config(t), "--run-dir", run_copy(t, r)],
        "already exists and is not empty; continue it with --resume",
    ),
    "overwrite a folder that is not a run": (
        lambda t, r: overwrite(t, user_folder(t)),
        "--overwrite refused, nothing deleted: it holds what llmcls did not write (2): .git, notes.txt",
    ),
    "overwrite a run beside a foreign file": (
        lambda t, r: overwrite(t, with_file(t, r, "thesis.tex")),
        "run: --overwrite refused, nothing deleted: it holds what llmcls did not write (1): thesis.tex",
    ),
    "overwrite with a missing data file": (
        lambda t, r: overwrite(t, run_copy(t, r), {"train": str(t / "gone.csv")}),
        "gone.csv: file not found",
    ),
    "lock is a symbolic link": (
        lambda t, r: ["train", "--config", write_config(t), "--run-dir", linked_lock(t)],
        "fresh/.lock: is a symbolic link",
    ),
    "plots folder is a symbolic link": (
        lambda t, r: ["plot", linked_plots(t, r)],
        "run/plots: is a symbolic link or not a folder",
    ),
    # devices
    "device cuda without cuda": (lambda t, r: ["predict", r, "hi", "--device", "cuda"], "CUDA is not available"),
    "device nonsense": (lambda t, r: ["predict", r, "hi", "--device", "tpu"], "expected auto, cpu, cuda or cuda:N"),
}


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", list(CASES))
def test_error_case(case, tmp_path, trained_sst2, monkeypatch):
    if case == "device cuda without cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)
    build, culprit = CASES[case]
    args = [str(a) for a in build(tmp_path, trained_sst2.run_dir)]
    before = snapshot(tmp_path)
    run_before = snapshot(trained_sst2.run_dir)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert culprit in result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()  # progress lines may come first; the error is one line, last
    assert lines[-1].startswith("error: ") and culprit in lines[-1]
    assert sum(line.startswith("error: ") for line in lines) == 1, result.output
    after = snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before
    assert not (tmp_path / "runs" / "t").exists() or (tmp_path / "runs" / "t" / "meta.json").exists()
    assert snapshot(trained_sst2.run_dir) == run_before
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("command", ["train", "predict", "eval"])
def test_an_alias_bomb_is_refused_at_once_in_a_short_line(command, tmp_path, trained_sst2):
    """The issue's 339-byte config (7 levels) and a 9-level run config.yaml: refused in well under a second, in a
    line that names the file, where they took minutes and printed megabytes."""
    import time

    if command == "train":
        args = ["train", "--config", str(data_file(tmp_path, "bomb.yaml", alias_bomb(7)))]
    else:
        run = with_config(tmp_path, trained_sst2.run_dir, alias_bomb(9))
        args = [command, str(run), *(["hi"] if command == "predict" else ["--data", str(FIXTURES / "sst2_valid.csv")])]
    start = time.perf_counter()
    result = runner.invoke(app, args)
    assert time.perf_counter() - start < 5.0
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and len(result.output) < 1000, result.output
    assert ("bomb.yaml" if command == "train" else "run/config.yaml: YAML refused") in result.output


def test_a_linked_plot_file_is_replaced_not_written_through(tmp_path, trained_sst2):
    run = run_copy(tmp_path, trained_sst2.run_dir)
    outside = data_file(tmp_path, "outside.png", b"precious")
    (run / "plots" / "curves.png").unlink()
    (run / "plots" / "curves.png").symlink_to(outside)
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert outside.read_bytes() == b"precious"
    assert not (run / "plots" / "curves.png").is_symlink()
    assert (run / "plots" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((run / "plots").glob(".*.tmp"))


def test_cuda_index_beyond_the_gpus_present(trained_sst2, monkeypatch):
    """The one case that needs a GPU: pretend there is exactly one."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = runner.invoke(app, ["predict", str(trained_sst2.run_dir), "hi", "--device", "cuda:7"])
    assert result.exit_code == 1
    assert "device cuda:7: this machine has 1 CUDA device(s), numbered 0 to 0" in result.output


def test_no_space_left_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import os

    from llmcls.run.checkpoint import load_checkpoint

    config = write_config(tmp_path)
    run_dir = tmp_path / "runs" / "t"
    assert runner.invoke(app, ["train", "--config", str(config), "-q"]).exit_code == 0
    before = (run_dir / "checkpoint-last.pt").read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".checkpoint-last.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.epochs=2", "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "checkpoint-last.pt: cannot write: No space left on device (the previous version is kept)" in result.output
    assert (run_dir / "checkpoint-last.pt").read_bytes() == before
    assert load_checkpoint(run_dir)["state"]["epoch"] == 2
    assert not list(run_dir.glob(".*.tmp"))


def test_ctrl_c_exits_cleanly_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import llmcls.training.step as training  # the step computes the loss

    calls = {"n": 0}
    real = training.compute_loss

    def interrupted(criterion, logits, targets):
        if logits.requires_grad:
            calls["n"] += 1
            if calls["n"] == 50:  # in epoch 2 (38 batches an epoch)
                raise KeyboardInterrupt
        return real(criterion, logits, targets)

    monkeypatch.setattr(training, "compute_loss", interrupted)
    config = write_config(tmp_path, train={"epochs": 3, "batch_size": 16})
    result = runner.invoke(app, ["train", "--config", str(config), "-q"])
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert "interrupted" in result.output and "--resume" in result.output
    monkeypatch.setattr(training, "compute_loss", real)
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "runs" / "t"), "-q"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "runs" / "t" / "metrics.jsonl").read_text().splitlines()) == 3


def test_inputs_that_are_odd_but_legal(tmp_path, trained_sst2):
    """Huge CSV fields, a 1 MB text, TSV with stray quotes, and predictions on strange texts all work."""
    huge = "word " * 60_000  # 300 kB in one field: beyond the csv module's default 128 kB limit
    big = "this film is great . " * 50_000  # 1 MB
    rows = "".join(
        f"{text}\t{label}\n"
        for text, label in [('he said "hi', "pos"), ("a 'quoted\" mess", "neg"), (huge, "pos"), (big, "neg")] * 3
    )
    path = data_file(tmp_path, "odd.tsv", "text\tlabel\n" + rows)
    config = write_config(tmp_path, {"train": str(path), "valid": str(path)}, tokenizer={"max_tokens": 50})
    result = runner.invoke(app, ["train", "--config", str(config), "-q"])
    assert result.exit_code == 0, result.output
    texts = ["", "?!...", "zxqv blorft quux", "🎬🍿 fantastique ! 素晴らしい映画", "great " * 20_000]
    result = runner.invoke(app, ["predict", str(trained_sst2.run_dir), *texts, "--json"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: 1 texts longer than 10000 tokens were cut to their first 10000 "
        "(tokenizer.predict_max_tokens; chunking, e.g. --chunk-tokens, reads them whole)"
    ]
    lines = [json.loads(line) for line in result.output.splitlines() if not line.startswith("note: ")]
    assert [line["text"] for line in lines] == texts
    assert all(line["label"] in {"negative", "positive"} and 0.5 <= line["probability"] <= 1 for line in lines)
