"""Data-parallel training: sharding of batches, loss shares, gradient accumulation, the device and threads of each
process, and real 2-process CPU trainings (gloo) launched through torch's launcher and `llmcls train --nproc`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from llmcls.config import TrainConfig, save_config
from llmcls.data.batching import BucketSampler
from llmcls.data.prepare import prepare_data
from llmcls.errors import DeviceError
from llmcls.inference.evaluate import evaluate_file
from llmcls.inference.predict import Predictor
from llmcls.model import LstmClassifier, ModelArgs, compute_loss, loss_function
from llmcls.run.checkpoint import load_checkpoint
from llmcls.run.config_file import resume_config
from llmcls.training.distributed import process_device, shard_batch, shard_share, text_range, threads_per_process
from llmcls.training.loop import train
from llmcls.training.setup import class_weights
from llmcls.training.world import World
from support.configs import encoder_config, small_config
from support.paths import FIXTURES, ROOT
from support.resume import assert_same_run, comparable, run_until_killed

WORKER = ROOT / "tests" / "support" / "distributed_worker.py"  # launched by the tests, not a test


@pytest.fixture(scope="module")
def sst2_data(tmp_path_factory):
    return prepare_data(small_config(tmp_path_factory.mktemp("data")))


def test_world_from_torchrun_environment():
    assert World.from_env({}) == World()
    world = World.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (world.rank, world.size, world.local_rank, world.local_size, world.main) == (3, 4, 1, 2, False)


@pytest.mark.parametrize("size", [2, 3])
def test_shards_are_disjoint_cover_each_epoch_and_take_equal_steps(sst2_data, size):
    lengths = sst2_data.train.texts.lengths
    sampler = BucketSampler(lengths, batch_size=16, pool_batches=10, seed=7)
    epochs = {}
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        shards = [[shard_batch(b, rank, size) for b in batches] for rank in range(size)]
        assert {len(s) for s in shards} == {len(batches)}  # every process takes every step
        for step, batch in enumerate(batches):
            parts = [shards[rank][step] for rank in range(size)]
            assert np.array_equal(np.concatenate(parts), batch)  # disjoint, and together the whole batch
            assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
            for p in parts:  # a slice of a length-sorted batch: lengths at least as close as in the batch
                assert np.ptp(lengths[p]) <= np.ptp(lengths[batch])
        seen = np.concatenate([p for rank in range(size) for p in shards[rank]])
        assert sorted(seen.tolist()) == list(range(len(lengths)))  # each example once an epoch
        epochs[epoch] = shards[0]
    assert not all(np.array_equal(a, b) for a, b in zip(epochs[1], epochs[2]))  # reshuffled every epoch
    sampler.set_epoch(1)
    assert all(np.array_equal(a, shard_batch(b, 0, size)) for a, b in zip(epochs[1], sampler.batches()))


def test_loss_shares_give_the_global_batch_loss_and_gradient(sst2_data):
    """Two processes, each weighting its slice's loss by its share, together make the gradient of the whole
    batch (DistributedDataParallel averages, hence x 2); class weights included."""
    data = sst2_data
    weights = class_weights(TrainConfig(class_weights={"positive": 3.0}), data.labels, data.train.targets)
    criterion = loss_function(2, weights)
    loss_weights = weights.double().numpy()[data.train.targets]
    torch.manual_seed(0)
    model = LstmClassifier(
        ModelArgs(
            vocab_size=len(data.vocab),
            embedding_dim=8,
            num_outputs=1,
            hidden_size=8,
            dropout=0.0,
            embedding_dropout=0.0,
        )
    )
    targets = torch.from_numpy(data.train.targets)
    batch = np.argsort(data.train.texts.lengths, kind="stable")[100:115]  # 15 texts: slices of 8 and 7

    def gradient(indices, scale):
        from llmcls.data.batching import collate

        model.zero_grad()
        logits = model(*collate(data.train.texts, indices, data.vocab.pad_index))
        loss = compute_loss(criterion, logits, targets[indices])
        (loss * scale).backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    whole_loss, whole = gradient(batch, 1.0)
    shares, losses, grads = [], [], []
    for rank in range(2):
        part, share = shard_share(batch, loss_weights, World(rank=rank, size=2))
        loss, grad = gradient(part, share * 2)
        shares.append(share), losses.append(loss * share), grads.append(grad)
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] != pytest.approx(8 / 15)  # the weights count, not just the sizes
    assert sum(losses) == pytest.approx(whole_loss, rel=1e-6)
    torch.testing.assert_close((grads[0] + grads[1]) / 2, whole, rtol=1e-5, atol=1e-7)
    # a batch smaller than the process count: the process without a slice takes part with weight 0
    assert [shard_share(np.array([5]), loss_weights, World(rank=r, size=2)) for r in (0, 1)] == [
        (np.array([5]), 0.0),
        (np.array([5]), 1.0),
    ]


def test_text_range(sst2_data):
    texts = sst2_data.valid.texts
    part = text_range(texts, 10, 20)
    assert len(part) == 10 and np.array_equal(part.lengths, texts.lengths[10:20])
    assert np.array_equal(part.ids, texts.ids[texts.offsets[10] : texts.offsets[20]])
    assert text_range(texts, 0, len(texts)) is texts


def test_each_process_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    second = World(rank=3, size=4, local_rank=1, local_size=2)
    assert process_device("cuda", second) == torch.device("cuda", 1)
    assert process_device("auto", second) == torch.device("cuda", 1)
    assert process_device("cpu", second) == torch.device("cpu")
    assert process_device("cuda:1", World()) == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="each uses its own GPU"):
        process_device("cuda:0", second)
    with pytest.raises(DeviceError, match="3 processes on this machine but 2 CUDA"):
        process_device("cuda", World(rank=2, size=3, local_rank=2, local_size=3))


def test_processes_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert threads_per_process(World()) == cores
    assert threads_per_process(World(rank=1, size=2, local_rank=1, local_size=2)) == max(1, cores // 2)
    assert threads_per_process(World(local_size=cores * 4)) == 1


def _first_rows(n, tmp_path):
    path = tmp_path / f"train{n}.csv"
    path.write_text("".join((FIXTURES / "sst2_train.csv").read_text().splitlines(keepends=True)[: n + 1]))
    return str(path)


def test_accumulated_batches_make_the_update_of_one_larger_batch(tmp_path):
    """On 16 texts, batch 8 accumulated twice makes the same SGD steps (and LR schedule) as batch 16."""
    train16 = _first_rows(16, tmp_path)

    def run(name, batch_size, accumulate):
        config = small_config(
            tmp_path / name,
            data={"train": train16},
            model={"dropout": 0.0, "embedding_dropout": 0.0},
            train={
                "epochs": 2,
                "batch_size": batch_size,
                "accumulate": accumulate,
                "optimizer": "sgd",
                "momentum": 0.0,
                "lr": 0.5,
                "grad_clip": None,
                "lr_schedule": "linear",
                "precision": "fp32",
            },
        )  # bf16 rounds per batch
        result = train(config, device="cpu")
        checkpoint = load_checkpoint(result.run_dir)
        return result.history, checkpoint["model"], checkpoint["state"]["global_step"]

    history16, weights16, steps16 = run("b16", 16, 1)
    history8x2, weights8x2, steps8x2 = run("b8x2", 8, 2)
    assert steps16 == steps8x2 == 2
    assert [h["lr"] for h in history8x2] == [h["lr"] for h in history16] == [0.25, 0.0]
    for name in weights16:
        torch.testing.assert_close(weights8x2[name], weights16[name], rtol=1e-5, atol=1e-6)
    assert [h["train_loss"] for h in history8x2] == pytest.approx([h["train_loss"] for h in history16], rel=1e-5)
    _, weights8, _ = run("b8", 8, 1)  # two steps of 8 an epoch: a different model (the test can tell)
    assert not torch.allclose(weights8["head.weight"], weights16["head.weight"], atol=1e-4)


def test_accumulation_resumes_mid_epoch_identically(tmp_path):
    """Accumulate 2 over 5 batches an epoch (steps of 2, 2 and 1 batches), a checkpoint every step, a kill in
    the middle of a step: the resumed run equals the uninterrupted one."""
    train80 = _first_rows(80, tmp_path)
    config = small_config(
        tmp_path,
        data={"train": train80},
        train={"epochs": 2, "accumulate": 2, "checkpoint_every_steps": 1, "lr_schedule": "linear"},
    )
    expected = train(config, device="cpu", run_dir=tmp_path / "expected")
    assert load_checkpoint(expected.run_dir)["state"]["global_step"] == 6
    assert expected.history[-1]["lr"] == 0.0  # the schedule counted the 6 steps
    run_dir = tmp_path / "killed"
    run_until_killed(config, run_dir, kill_at_step=3)  # after batch 3, the first of step 2
    state = load_checkpoint(run_dir)["state"]
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 2, 1)
    resumed = train(resume_config(run_dir), device="cpu", run_dir=run_dir, resume=True)
    assert_same_run(resumed, expected)


def launch_worker(config, tmp_path, nproc=2):
    """Train `config` in `nproc` processes through torch's launcher (what torchrun runs); returns each process's
    record (see support/distributed_worker.py)."""
    trace = tmp_path / "trace"
    trace.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            str(WORKER),
            json.dumps(config.to_dict()),
            str(tmp_path / "run"),
            str(trace),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((trace / f"rank{rank}.json").read_text()) for rank in range(nproc)]


def test_two_processes_train_like_one_and_resume_in_one(tmp_path):
    # dropout 0: the two runs then make the same updates up to rounding (with dropout they draw different masks);
    # fp32: bfloat16's rounding would differ between a batch and its halves
    config = small_config(
        tmp_path, model={"dropout": 0.0, "embedding_dropout": 0.0}, train={"epochs": 4, "precision": "fp32"}
    )
    single = train(config, device="cpu", run_dir=tmp_path / "single")
    ranks = launch_worker(config, tmp_path)
    run_dir = tmp_path / "run"

    # each step, the processes trained on disjoint halves of a batch; each epoch, on every example once
    steps_per_epoch, epochs = 38, config.train.epochs
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) == steps_per_epoch * epochs
    for a, b in zip(ranks[0]["batches"], ranks[1]["batches"]):
        assert not set(a) & set(b) and abs(len(a) - len(b)) <= 1
    for epoch in range(epochs):
        steps = slice(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch)
        seen = [i for rank in ranks for batch in rank["batches"][steps] for i in batch]
        assert sorted(seen) == list(range(600))

    # process 0 alone wrote the run directory, each file when due
    assert ranks[1]["writes"] == []
    written = [os.path.basename(path) for path in ranks[0]["writes"]]
    assert written.count("metrics.jsonl") == epochs + 1 and written.count("checkpoint-last.pt") == epochs
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == epochs
    assert sorted(p.name for p in run_dir.iterdir() if p.name != "plots") == sorted(
        p.name for p in single.run_dir.iterdir() if p.name != "plots"
    )

    # the same figures in every process; and one process's, up to float rounding (the gradient of a batch is
    # summed in another order): per epoch, losses within 1e-4 relative and accuracies within one text. (The
    # final accuracy within a point, compared before, let a rounding flip near a tie between epochs decide.)
    assert comparable(ranks[0]["history"]) == comparable(ranks[1]["history"])
    assert ranks[0]["valid_accuracy"] == ranks[1]["valid_accuracy"]
    for two, one in zip(ranks[0]["history"], single.history, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["valid_loss"] == pytest.approx(one["valid_loss"], rel=1e-4)
        assert abs(two["valid_accuracy"] - one["valid_accuracy"]) <= 1 / 200 + 1e-9
    assert sum(h["train_tokens_per_s"] > 0 for h in ranks[0]["history"]) == epochs

    # one process evaluates, predicts from and resumes the run of two
    assert evaluate_file(run_dir, FIXTURES / "sst2_valid.csv", device="cpu")["accuracy"] == ranks[0]["valid_accuracy"]
    assert Predictor.load(run_dir, "cpu").predict(["a gripping , beautifully acted film"])[0].label in (
        "negative",
        "positive",
    )
    resumed = train(resume_config(run_dir, [f"train.epochs={epochs + 1}"]), device="cpu", run_dir=run_dir, resume=True)
    assert comparable(resumed.history[:epochs]) == comparable(ranks[0]["history"])
    assert [h["epoch"] for h in resumed.history] == list(range(1, epochs + 2))
    assert load_checkpoint(run_dir)["state"]["global_step"] == (epochs + 1) * steps_per_epoch


def test_two_processes_keep_one_weight_average(tmp_path):
    """train.ema: every process averages the weights of its own model (the module DDP wraps); they are the same
    everywhere, so the averages are too, and they score like one process's."""
    config = small_config(
        tmp_path, model={"dropout": 0.0, "embedding_dropout": 0.0}, train={"epochs": 2, "precision": "fp32", "ema": 0.9}
    )
    single = train(config, device="cpu", run_dir=tmp_path / "single")
    ranks = launch_worker(config, tmp_path)
    assert len(ranks[0]["averages"]) == 2 and ranks[0]["averages"] == ranks[1]["averages"]
    assert comparable(ranks[0]["history"]) == comparable(ranks[1]["history"])
    for two, one in zip(ranks[0]["history"], single.history, strict=True):
        assert two["valid_loss"] == pytest.approx(one["valid_loss"], rel=1e-4)


def test_llmcls_train_nproc_resumes_a_one_process_run_on_two(tmp_path):
    """`llmcls train --nproc 2` launches through torch.distributed.run; it prints once, resumes a run saved
    by one process, and reports an error once."""
    config = small_config(tmp_path, train={"epochs": 1})
    first = train(config, device="cpu")
    command = [sys.executable, "-m", "llmcls", "train", "--nproc", "2", "--quiet"]
    proc = subprocess.run(
        command + ["--resume", str(first.run_dir), "--set", "train.epochs=2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("best epoch") == 1 and proc.stdout.count("validation") == 1
    history = [json.loads(line) for line in (first.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert comparable(history[:1]) == comparable(first.history)
    assert load_checkpoint(first.run_dir)["state"]["global_step"] == 2 * 38

    config_file = tmp_path / "config.yaml"
    save_config(config, config_file)
    proc = subprocess.run(command + ["--config", str(config_file)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {first.run_dir}: already exists and is not empty; continue it with --resume, or start again "
        "with --overwrite"
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_through_a_c10d_rendezvous_train_like_one_process(tmp_path):
    """The multi-machine path the README documents, on one machine: two torchrun launchers ("nodes") of one
    process each meet at a c10d rendezvous on 127.0.0.1, and train as one process does, up to rounding."""
    config = small_config(
        tmp_path, model={"dropout": 0.0, "embedding_dropout": 0.0}, train={"epochs": 2, "precision": "fp32"}
    )
    single = train(config, device="cpu", run_dir=tmp_path / "single")
    config_file = tmp_path / "config.yaml"
    save_config(config, config_file)
    endpoint = f"127.0.0.1:{_free_port()}"
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        endpoint,
        "--rdzv-id",
        "llmcls-test",
        "-m",
        "llmcls",
        "train",
        "--config",
        str(config_file),
        "--run-dir",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(launch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    outputs = [node.communicate(timeout=900) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum(out.count("best epoch") for out, _ in outputs) == 1  # process 0 alone reports
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    for two, one in zip(history, single.history, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["valid_loss"] == pytest.approx(one["valid_loss"], rel=1e-4)


def test_two_processes_fine_tune_an_encoder_like_one(tmp_path):
    """The pretrained-encoder family on two processes: the same figures in both, and those of one process up to
    float rounding (dropout 0 and fp32, as above)."""
    pytest.importorskip("tokenizers")
    from support.tiny_bert import write_tiny_bert

    tiny_bert = write_tiny_bert(tmp_path / "bert", dropout=0.0)
    config = encoder_config(
        tmp_path,
        tiny_bert,
        train={"epochs": 2, "precision": "fp32", "plots": False, "export_onnx": False},
        model={"dropout": 0.0},
    )
    single = train(config, device="cpu", run_dir=tmp_path / "single")
    ranks = launch_worker(config, tmp_path)
    assert comparable(ranks[0]["history"]) == comparable(ranks[1]["history"])
    assert (tmp_path / "run" / "tokenizer.json").is_file() and not (tmp_path / "run" / "vocab.json").exists()
    for two, one in zip(ranks[0]["history"], single.history, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-3)
        assert two["valid_loss"] == pytest.approx(one["valid_loss"], rel=1e-3)
