"""Distillation (`llmcls distill`): a BiLSTM student learns a teacher run's logits over the transfer set; the
teacher's logits are cached in the student's run and reused on resume; the loss; the clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.config import DistillConfig
from llmcls.data.batching import EncodedTexts
from llmcls.inference.predict import Predictor
from llmcls.inference.torch_forward import predict_logits
from llmcls.run.config_file import resume_config
from llmcls.run.files import load_run, read_transfer
from llmcls.training.distill import NO_CLASS, DistillationLoss, distilled_config, teacher_backend
from llmcls.training.loop import train
from support.configs import small_config
from support.paths import FIXTURES

pytest.importorskip("tokenizers")


def student_config(tmp_path, teacher, **distill):
    config = small_config(tmp_path, train={"epochs": 3, "plots": False, "export_onnx": False})
    return distilled_config(config.model_copy(update={"distill": DistillConfig(copies=2, **distill)}), teacher=teacher)


@pytest.fixture(scope="module")
def teacher(trained_encoder, tmp_path_factory):
    """A copy of the tiny encoder run (the tests may delete it)."""
    path = tmp_path_factory.mktemp("teacher") / "run"
    shutil.copytree(trained_encoder.run_dir, path)
    return path


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("student")
    return train(student_config(tmp, teacher), device="cpu", run_dir=tmp / "student")


def test_the_transfer_set_holds_the_teachers_logits_of_the_texts_and_their_copies(student, teacher):
    saved = read_transfer(student.run_dir)
    n_train = 600  # tests/fixtures/sst2_train.csv
    assert len(saved["targets"]) == n_train * 3  # the texts and 2 copies of each
    labels = saved["targets"][:, 1]
    assert set(labels[:n_train]) == {0.0, 1.0} and (labels[n_train:] == NO_CLASS).all()
    # the teacher's own prediction of the training texts (as the student's tokens read, joined by spaces)
    run = load_run(student.run_dir)
    first = EncodedTexts(saved["ids"][: saved["offsets"][20]], saved["offsets"][:21])
    texts = [" ".join(run.vocab.itos[i] for i in first.ids[a:b]) for a, b in zip(first.offsets[:-1], first.offsets[1:])]
    predictor = Predictor.load(teacher, "cpu", backend="onnx")
    expected = predictor.class_probabilities(texts)[:, 1]
    teacher_probs = 1 / (1 + np.exp(-saved["targets"][:20, 0] / predictor.run.temperature))
    bf16 = teacher_backend(torch.device("cpu")) == "torch-bf16"  # where the CPU runs bf16 fast, as here on AMX
    np.testing.assert_allclose(teacher_probs, expected, atol=5e-3 if bf16 else 1e-4)


def test_the_student_is_an_ordinary_bilstm_run_that_records_its_teacher(student, teacher):
    meta = json.loads((student.run_dir / "meta.json").read_text())
    assert meta["model_family"] == "lstm" and meta["teacher"]["run"] == str(teacher.resolve())
    assert meta["teacher"]["model_family"] == "encoder" and len(meta["teacher"]["weights_sha256"]) == 64
    assert load_run(student.run_dir).config.distill.teacher == str(teacher)


def test_the_student_learns_the_teachers_logits(student):
    saved = read_transfer(student.run_dir)
    run = load_run(student.run_dir)
    logits = predict_logits(
        run.model, EncodedTexts(saved["ids"], saved["offsets"]), batch_size=256, device=torch.device("cpu")
    )
    teacher = saved["targets"][:, :1]
    mse = float(((logits.numpy() - teacher) ** 2).mean())
    assert mse < 0.5 * float(teacher.var()), (mse, float(teacher.var()))  # explains over half the variance


def test_a_resumed_student_reuses_the_cached_logits_without_the_teacher(teacher, tmp_path):
    gone = tmp_path / "teacher"
    shutil.copytree(teacher, gone)
    config = student_config(tmp_path, gone)
    first = train(
        config.model_copy(update={"train": config.train.model_copy(update={"epochs": 1})}),
        device="cpu",
        run_dir=tmp_path / "student",
    )
    cached = (first.run_dir / "distill" / "transfer.npz").read_bytes()
    shutil.rmtree(gone)
    resumed = train(resume_config(first.run_dir, ["train.epochs=2"]), device="cpu", run_dir=first.run_dir, resume=True)
    assert len(resumed.history) == 2
    assert (first.run_dir / "distill" / "transfer.npz").read_bytes() == cached


def cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def test_a_teacher_trained_on_other_labels_is_refused(teacher, tmp_path):
    config = tmp_path / "trec.yaml"
    config.write_text(f"data:\n  train: {FIXTURES / 'trec_train.csv'}\noutput_dir: {tmp_path}\n")
    result = cli("distill", "--teacher", teacher, "--config", config)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "differ from the student's training data" in result.output
    assert not (tmp_path / "run-distilled").exists()


def test_a_student_that_is_not_a_bilstm_config_is_refused(teacher, tmp_path, tiny_bert):
    config = tmp_path / "lm.yaml"
    config.write_text(f"data:\n  train: {FIXTURES / 'sst2_train.csv'}\nmodel:\n  encoder: {tiny_bert}\n")
    result = cli("distill", "--teacher", teacher, "--config", config)
    assert result.exit_code == 1 and "the student must be a BiLSTM config" in result.output


def test_a_teacher_that_is_not_a_run_is_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  train: {FIXTURES / 'sst2_train.csv'}\noutput_dir: {tmp_path}\n")
    result = cli("distill", "--teacher", tmp_path / "nothing", "--config", config)
    assert result.exit_code == 1 and "no such run directory" in result.output


def loss_of(settings, logits, targets, classes=2, outputs=1):
    return float(
        DistillationLoss(settings, num_classes=classes, num_outputs=outputs, multi_label=False)(logits, targets)
    )


def test_the_mse_loss_is_the_squared_distance_to_the_teachers_logits():
    logits, teacher = torch.tensor([[1.0], [-2.0]]), torch.tensor([[3.0], [-1.0]])
    targets = torch.cat([teacher, torch.tensor([[1.0], [NO_CLASS]])], 1)
    assert loss_of(DistillConfig(), logits, targets) == pytest.approx((4 + 1) / 2)


def test_the_kl_loss_is_the_cross_entropy_to_the_softened_teacher():
    logits, teacher = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    targets = torch.cat([teacher, torch.tensor([[1.0]])], 1)
    t = 2.0
    soft = torch.softmax(teacher / t, 1)
    expected = float(-(soft * torch.log_softmax(logits / t, 1)).sum()) * t * t
    assert loss_of(DistillConfig(loss="kl", temperature=t), logits, targets, 3, 3) == pytest.approx(expected)


def test_the_label_weight_mixes_in_the_loss_on_the_labelled_texts_only():
    logits, teacher = torch.tensor([[1.0], [-2.0]]), torch.tensor([[1.0], [-2.0]])  # the teacher's loss is 0
    targets = torch.cat([teacher, torch.tensor([[1.0], [NO_CLASS]])], 1)
    label_loss = float(torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(1.0), torch.tensor(1.0)))
    assert loss_of(DistillConfig(label_weight=0.3), logits, targets) == pytest.approx(0.3 * label_loss)


def test_auto_copies_keep_the_transfer_set_near_its_budget(teacher, tmp_path):
    from dataclasses import replace

    from llmcls.adapt.choices import MAX_COPIES, TRANSFER_TEXTS, choose_copies, resolve_auto
    from llmcls.adapt.profile import profile_data

    config = distilled_config(small_config(tmp_path), teacher=teacher)
    assert config.distill.copies == "auto" and "distill.copies" in config.auto_keys()
    assert resolve_auto(config).distill.copies == MAX_COPIES  # 600 texts: far under the budget
    assert "distill.copies" not in small_config(tmp_path).auto_keys()  # ordinary training does not profile for it
    profile = profile_data(config)
    for texts, copies in ((TRANSFER_TEXTS // 3, 2), (TRANSFER_TEXTS, 1), (10 * TRANSFER_TEXTS, 1)):
        assert choose_copies(replace(profile, train_texts=texts)).value == copies


def test_unlabelled_texts_join_the_transfer_set_without_labels(teacher, tmp_path):
    unlabelled = tmp_path / "more.txt"
    unlabelled.write_text("an utterly charming little film\nthe plot goes nowhere\nfine\n", encoding="utf-8")
    config = student_config(tmp_path, teacher)
    config = distilled_config(
        config.model_copy(update={"train": config.train.model_copy(update={"epochs": 1})}),
        teacher=teacher,
        unlabelled=unlabelled,
    )
    result = train(config, device="cpu", run_dir=tmp_path / "student")
    saved = read_transfer(result.run_dir)
    assert len(saved["targets"]) == 600 * 3 + 3
    assert (saved["targets"][-3:, 1] == NO_CLASS).all()
    assert load_run(result.run_dir).config.distill.unlabelled == str(unlabelled)
