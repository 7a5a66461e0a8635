"""The optimizer and the learning-rate schedule of a training run."""

from __future__ import annotations

from typing import Any

import torch

from llmcls.config import TrainConfig, lower_is_better


def parameter_groups(model: torch.nn.Module, wide_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """The trainable parameters as optimizer groups: the network's, and the wide branch's (if the model has one)
    at `wide_lr_scale` times the learning rate, since each of its rows is updated only by the texts holding its
    n-gram."""
    wide = getattr(model, "wide", None)
    wide_params = [] if wide is None else [p for p in wide.parameters() if p.requires_grad]
    taken = {id(p) for p in wide_params}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in taken], "lr_scale": 1.0}]
    if wide_params:
        groups.append({"params": wide_params, "lr_scale": wide_lr_scale})
    return groups


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, wide_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum over `parameter_groups(model)`; the fused kernels (one pass over all
    parameters, CPU and CUDA) where torch has them, which cut the optimizer's share of a CPU step from about 13% to
    4% here."""
    groups = parameter_groups(model, wide_lr_scale)
    for group in groups:
        group["lr"] = cfg.lr * group.pop("lr_scale")
    # None: torch's default (the foreach kernels)
    fused = True if all(p.device.type in ("cpu", "cuda") for p in model.parameters()) else None
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The learning-rate schedule: constant or linear warm-up/decay (stepped after every batch), or
    reduce-on-plateau (stepped after every epoch with the validation metric)."""
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if lower_is_better(cfg.select_metric) else "max",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
        )
    if cfg.lr_schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    warmup = int(cfg.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
