"""Cost per token of a trained model: FLOPs, measured throughput, achieved FLOP/s and CPU cycles per token."""

from __future__ import annotations

import copy
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from llmcls.run.files import load_run
from llmcls.data.batching import BucketSampler, collate
from llmcls.data.prepare import drop_empty_texts, encode_texts, read_split
from llmcls.data.tokenize import Tokenizer
from llmcls.device import resolve_device
from llmcls.inference.torch_forward import predict_logits
from llmcls.model import ModelArgs, autocast, compute_loss, loss_function
from llmcls.training.optim import make_optimizer
from llmcls.precision import choose_precision


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


def profile_run(run_dir: str | Path, data_path: str | Path | None = None, device: str | torch.device = "auto",
                batch_size: int | None = None, seconds: float = 10.0) -> dict:
    """Measure a run's training and prediction throughput on real texts, and relate it to its FLOPs.

    Training steps run on a copy of the model, so the run is not changed.

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
    examples = drop_empty_texts(read_split(cfg.data, str(path), labelled=False), path, "skip")
    texts = encode_texts(Tokenizer(cfg.tokenizer), run.vocab, examples.texts)
    batch_size = batch_size or cfg.train.batch_size
    n_tokens = int(texts.lengths.sum())

    # prediction: whole passes over the texts until `seconds` have passed
    predict_logits(run.model, texts, cfg.train.eval_batch_size, device)  # warm-up
    passes, start = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - start < seconds:
        predict_logits(run.model, texts, cfg.train.eval_batch_size, device)
        passes += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    predict_s = (time.perf_counter() - start) / passes

    # training: full steps (forward, backward, clip, optimizer) on a copy, on bucketed batches
    precision = choose_precision(cfg.train.precision, device).precision
    model = copy.deepcopy(run.model).train()
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.train)
    criterion = loss_function(len(run.labels)).to(device)
    batches = BucketSampler(texts.lengths, batch_size, cfg.train.bucket_pool, seed=0).batches()
    targets = torch.from_numpy(np.random.default_rng(0).integers(0, len(run.labels), len(texts)))
    steps = trained_tokens = 0
    start = time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        if steps == 3:  # the first steps warm up allocators and kernels
            start, trained_tokens = time.perf_counter(), 0
        batch = batches[steps % len(batches)]
        token_ids, lengths = collate(texts, batch, run.vocab.pad_index)
        with autocast(precision, device):
            logits = model(token_ids.to(device), lengths)
        loss = compute_loss(criterion, logits.float(), targets[batch].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        optimizer.step()
        steps += 1
        trained_tokens += int(lengths.sum())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = time.perf_counter() - start

    flops = flops_per_token(run.model.args)
    train_tps = trained_tokens / train_s
    predict_tps = n_tokens / predict_s
    result = {
        "run": str(run_dir),
        "data": str(path),
        "texts": len(texts),
        "mean_tokens_per_text": n_tokens / len(texts),
        "device": str(device),
        "precision": precision,
        "model": run.model.args.to_dict(),
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
    if device.type == "cpu":
        threads = torch.get_num_threads()
        info = cpu_info()
        clock = info["clock_hz"]
        peak = cpu_peak_flops(threads, info)
        result.update({
            "cpu": info["name"],
            "cpu_cores": os.cpu_count(),
            "threads": threads,
            "clock_hz": clock,
            "peak_flop_per_s": peak,
            "train_cycles_per_token": clock * threads / train_tps if clock else None,
            "predict_cycles_per_token": clock * threads / predict_tps if clock else None,
            "train_share_of_peak": result["train_flop_per_s"] / peak if peak else None,
        })
    else:
        result["gpu"] = torch.cuda.get_device_name(device)
    return result
