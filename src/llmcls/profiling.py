"""Cost per token of a trained model: FLOPs, measured throughput, achieved FLOP/s and CPU cycles per token."""

from __future__ import annotations

import copy
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from llmcls.data.batching import BucketSampler, EncodedTexts
from llmcls.data.inputs import drop_empty_texts, read_split
from llmcls.device import resolve_device
from llmcls.inference.torch_forward import predict_logits
from llmcls.model import LstmClassifier, ModelArgs, loss_function
from llmcls.precision import choose_precision
from llmcls.run.files import LoadedRun, load_run
from llmcls.training.optim import make_optimizer
from llmcls.training.step import Stepper, train_step


def flops_per_token(args: ModelArgs) -> dict[str, float]:
    """Floating-point operations per token of the (bi)LSTM (multiply and add counted separately).

    Per layer and direction an LSTM step multiplies the input (size I) and the previous state (size H) by
    4H x I and 4H x H matrices: 8H(I + H) FLOPs, plus about 10H for biases, sigmoids, tanh and products.
    A training step costs about three forward passes (the backward pass about two).
    """
    directions = 2 if args.bidirectional else 1
    h = args.hidden_size
    forward = 0.0
    for layer in range(args.num_layers):
        inputs = args.embedding_dim if layer == 0 else h * directions
        forward += directions * (8 * h * (inputs + h) + 10 * h)
    return {"forward": forward, "train_step": 3 * forward}


def network_flops(run: LoadedRun, mean_tokens: float) -> dict[str, float]:
    """FLOPs per token of a run's network: the BiLSTM's (`flops_per_token`), or a pretrained encoder's, whose
    attention grows with the text (taken at `mean_tokens` content tokens, plus [CLS] and [SEP])."""
    model = run.model
    if isinstance(model, LstmClassifier):
        return flops_per_token(model.args)
    from llmcls.encoder.bert import encoder_flops_per_token

    forward = encoder_flops_per_token(model.args, round(mean_tokens) + 2)
    return {"forward": forward, "train_step": 3 * forward}


def cpu_info() -> dict:
    """Name, current clock (Hz) and feature flags of the first CPU, from /proc/cpuinfo (Linux; empty elsewhere)."""
    info: dict = {"name": platform.processor() or platform.machine(), "clock_hz": None, "flags": set()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    info["name"] = value
                elif key == "cpu MHz" and info["clock_hz"] is None:
                    info["clock_hz"] = float(value) * 1e6
                elif key == "flags":
                    info["flags"] = set(value.split())
                    break
    except OSError:
        pass
    return info


def cpu_peak_flops(threads: int, info: dict) -> float | None:
    """Float32 peak of `threads` cores at the current clock, assuming two FMA units per core: 64 FLOPs a cycle
    with AVX-512, 32 with AVX2+FMA, 8 otherwise."""
    if info["clock_hz"] is None:
        return None
    flags = info["flags"]
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
    return per_cycle * info["clock_hz"] * threads


def profile_run(
    run_dir: str | Path,
    *,
    data_path: str | Path | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    seconds: float = 10.0,
) -> dict:
    """Measure a run's training and prediction throughput on real texts, and relate it to its FLOPs.

    Training steps (`llmcls.training.step.train_step`, as training runs them) run on a copy of the model, so the
    run is not changed.

    Args:
        run_dir: the run.
        data_path: texts to measure on (default: the run's validation file, else its training file).
        device: where to measure.
        batch_size: training batch size (default: the run's).
        seconds: roughly how long to spend on each of training and prediction.

    Returns:
        A JSON-ready dict of the figures.
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    run = load_run(run_dir, device)
    cfg = run.config
    path = data_path or cfg.data.valid or cfg.data.train
    examples = drop_empty_texts(read_split(cfg.data, str(path), labelled=False), path, policy="skip")
    texts = run.encoding().encode(examples.texts)
    batch_size = batch_size or cfg.train.batch_size
    predict_s = _predict_seconds(run, texts, device, seconds)
    precision = choose_precision(cfg.train.precision, device).precision
    train_tps = _train_tokens_per_second(run, texts, device, precision, batch_size, seconds)
    flops = network_flops(run, float(texts.lengths.mean()))
    predict_tps = int(texts.lengths.sum()) / predict_s
    result = {
        "run": str(run_dir),
        "data": str(path),
        "texts": len(texts),
        "mean_tokens_per_text": int(texts.lengths.sum()) / len(texts),
        "device": str(device),
        "precision": precision,
        "model": run.model.args.to_dict(),
        "network": run.model.describe(),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "flops_per_token_forward": flops["forward"],
        "flops_per_token_train_step": flops["train_step"],
        "train_batch_size": batch_size,
        "train_tokens_per_s": train_tps,
        "predict_tokens_per_s": predict_tps,
        "predict_texts_per_s": len(texts) / predict_s,
        "train_flop_per_s": flops["train_step"] * train_tps,
        "predict_flop_per_s": flops["forward"] * predict_tps,
    }
    result.update(_hardware_figures(device, result))
    return result


def _predict_seconds(run: LoadedRun, texts: EncodedTexts, device: torch.device, seconds: float) -> float:
    """Seconds per whole pass of prediction over the texts (passes repeated until `seconds` have passed)."""
    batch_size = run.config.train.eval_batch_size
    predict_logits(run.model, texts, batch_size=batch_size, device=device)  # warm-up
    passes, start = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - start < seconds:
        predict_logits(run.model, texts, batch_size=batch_size, device=device)
        passes += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / passes


def _train_tokens_per_second(
    run: LoadedRun, texts: EncodedTexts, device: torch.device, precision: str, batch_size: int, seconds: float
) -> float:
    """Tokens per second of full training steps (forward, backward, clip, optimizer) on a copy of the model, on
    bucketed batches of the texts with random targets of the run's kind (class ids, or multi-label 0/1 rows)."""
    cfg = run.config
    model = copy.deepcopy(run.model).train()
    optimizer = make_optimizer(model, cfg.train, cfg.model.wide_lr_scale)
    multi_label = cfg.data.multi_label
    criterion = loss_function(len(run.labels), multi_label=multi_label).to(device)
    rng = np.random.default_rng(0)
    targets = (
        rng.integers(0, 2, (len(texts), len(run.labels))).astype(np.float32)
        if multi_label
        else rng.integers(0, len(run.labels), len(texts))
    )
    stepper = Stepper(
        model=model,
        forward=model,
        criterion=criterion,
        optimizer=optimizer,
        texts=texts,
        targets=torch.from_numpy(targets),
        loss_weights=np.ones(len(texts)),
        device=device,
        precision=precision,
        grad_clip=cfg.train.grad_clip,
    )
    batches = BucketSampler(texts.lengths, batch_size, pool_batches=cfg.train.bucket_pool, seed=0).batches()
    steps = trained_tokens = 0
    start = time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        if steps == 3:  # the first steps warm up allocators and kernels
            start, trained_tokens = time.perf_counter(), 0
        batch = batches[steps % len(batches)]
        train_step(stepper, [batch], on_batch=lambda *_: None)
        steps += 1
        trained_tokens += int(texts.lengths[batch].sum())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return trained_tokens / (time.perf_counter() - start)


def _hardware_figures(device: torch.device, result: dict) -> dict:
    """On the CPU: its name, cores, threads, clock and peak, and the cycles per token and share of the peak; on a
    GPU, its name."""
    if device.type != "cpu":
        return {"gpu": torch.cuda.get_device_name(device)}
    threads = torch.get_num_threads()
    info = cpu_info()
    clock = info["clock_hz"]
    peak = cpu_peak_flops(threads, info)
    return {
        "cpu": info["name"],
        "cpu_cores": os.cpu_count(),
        "threads": threads,
        "clock_hz": clock,
        "peak_flop_per_s": peak,
        "train_cycles_per_token": clock * threads / result["train_tokens_per_s"] if clock else None,
        "predict_cycles_per_token": clock * threads / result["predict_tokens_per_s"] if clock else None,
        "train_share_of_peak": result["train_flop_per_s"] / peak if peak else None,
    }
