"""Training: one explicit loop from a config to a run directory, with checkpoints to resume from.

`train` claims the run directory; `_train` is the loop, read top to bottom: set up (`_build_parts`), then per
epoch the optimizer steps (`_train_epoch`, each one `llmcls.training.step.train_step`), validation (`_validate`)
and the record (`_end_epoch`), then the best model's calibration and scores (`llmcls.training.finish`).
"""

from __future__ import annotations

import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from llmcls.adapt.choices import resolve_auto
from llmcls.config import Config, is_better
from llmcls.data.batching import BucketSampler, padding_fraction
from llmcls.data.prepare import PreparedData
from llmcls.errors import ConfigError
from llmcls.events import EpochEnded, EpochStarted, EventHandler, Info, StepDone, ignore
from llmcls.model import Classifier, loss_function
from llmcls.precision import choose_precision
from llmcls.records import EpochRecord
from llmcls.run.artifacts import save_best_weights, tensorboard_dir
from llmcls.run.checkpoint import load_checkpoint, rng_state, save_checkpoint
from llmcls.run.claim import claim_run_dir
from llmcls.run.config_file import config_path_of
from llmcls.run.results import write_metrics
from llmcls.training.averaging import WeightAverage
from llmcls.training.distill import DistillationLoss
from llmcls.training.distributed import (
    all_gather,
    data_parallel,
    on_main,
    process_device,
    process_group,
    process_seed,
    shard_batch,
)
from llmcls.training.evaluation import evaluate_split
from llmcls.training.finish import finish_run
from llmcls.training.optim import make_optimizer, make_scheduler
from llmcls.training.resume import start_state
from llmcls.training.setup import class_weights, configure_torch, seed_everything, setup_run
from llmcls.training.state import TrainingParts, TrainResult, TrainState, resolved
from llmcls.training.step import Stepper, train_step
from llmcls.training.world import SINGLE, World


def train(
    config: Config,
    *,
    device: str | torch.device = "auto",
    run_dir: Path | None = None,
    on_event: EventHandler = ignore,
    resume: bool = False,
    overwrite: bool = False,
    world: World = SINGLE,
) -> TrainResult:
    """Train a classifier as `config` says and write its run directory.

    Args:
        config: the validated config (when resuming, see `llmcls.run.config_file.resume_config`). Its `auto` values are
            chosen from the training data first (`llmcls.adapt.choices.resolve_auto`, one Info event each) and
            the run's config.yaml holds what they became.
        device: auto, cpu, cuda, cuda:N, or a torch.device.
        run_dir: where to write; default `config.output_dir / config.name`.
        on_event: receives progress events (see llmcls.events).
        resume: continue the run in `run_dir` from its last checkpoint.
        overwrite: replace an existing run in `run_dir` (otherwise an existing run is refused); refused when the
            directory holds anything llmcls did not write, and the old run is deleted only once the new one has
            read its data.
        world: this process's place among the processes of a torchrun launch (`World.from_env()`); by default
            the only one. With several, they train data-parallel (see llmcls.training.distributed): process 0 claims and
            writes the run directory, hands the others its data and starting point, and alone emits events.

    Returns:
        The best epoch's validation report, the test report when there is a test split, and the history.

    Raises:
        RunError: the run directory is taken, locked, holds files llmcls did not write, or has nothing to resume.
        TrainingError: the loss or gradient became non-finite.
        RemoteError: another process failed (it reports why).
    """
    device = process_device(device, world)
    run_dir = Path(run_dir) if run_dir is not None else config.run_dir()
    on_event = on_event if world.main else ignore
    precision = choose_precision(config.train.precision, device)  # refuses bf16 before any work
    on_event(Info(f"precision: {precision.precision} ({precision.reason})"))
    with process_group(world, device), ExitStack() as held:

        def claim() -> dict | None:
            # locked until training ends; deletes nothing (setup_run does, once the data is read); a directory
            # created here is removed again if the run fails before it is written (e.g. a data file is missing)
            held.enter_context(claim_run_dir(run_dir, resume=resume, overwrite=overwrite))
            return load_checkpoint(run_dir) if resume else None

        checkpoint = on_main(world, claim)
        return _train(
            config,
            device=device,
            run_dir=run_dir,
            on_event=on_event,
            checkpoint=checkpoint,
            world=world,
            precision=precision.precision,
        )


def _train(
    config: Config,
    *,
    device: torch.device,
    run_dir: Path,
    on_event: EventHandler,
    checkpoint: dict | None,
    world: World,
    precision: str,
) -> TrainResult:
    """The loop: set up, then per epoch train, validate and record, then score the best model."""
    config = on_main(world, lambda: resolve_auto(config, on_event))  # `auto` keys, chosen from the training data
    cfg = config.train
    configure_torch(cfg, world)
    summary_writer = _tensorboard_writer_class() if cfg.tensorboard and world.main else None  # fails early
    seed_everything(config.seed)
    # Process 0 reads and encodes the data, builds the vocabulary, label map and model, and writes the run's
    # header; the others receive the encoded data and the model from it, so every process starts alike.
    data, model = on_main(
        world, lambda: setup_run(config, run_dir, checkpoint=checkpoint, on_event=on_event, device=device)
    )
    tensorboard = summary_writer(str(tensorboard_dir(run_dir))) if summary_writer else None  # after any clearing
    if world.rank:
        torch.manual_seed(process_seed(config.seed, world.rank))  # dropout masks of its own
    parts = _build_parts(
        config, data, model=model, device=device, world=world, precision=precision, run_dir=run_dir, on_event=on_event
    )
    state = start_state(parts, checkpoint)
    if world.main:
        write_metrics(run_dir, state.history)  # drops any epoch logged after the checkpoint
    on_event(Info(_describe(parts)))
    while not state.finished(cfg):
        parts.sampler.set_epoch(state.epoch)
        batches = parts.sampler.batches()  # the global batches, the same in every process
        on_event(EpochStarted(state.epoch, resolved(cfg.epochs, "train.epochs"), len(batches), done=state.step))
        _train_epoch(parts, state, batches)
        record, improved = _validate(parts, state, batches)
        _end_epoch(parts, state, record, tensorboard)
        on_event(EpochEnded(record, improved))
        if cfg.patience and state.since_best >= cfg.patience:
            on_event(Info(f"early stop: no better valid {cfg.select_metric} for {cfg.patience} epochs"))
    if tensorboard is not None:
        tensorboard.close()
    valid, test = on_main(world, lambda: finish_run(parts, state))
    return TrainResult(run_dir=run_dir, best_epoch=state.best_epoch, valid=valid, test=test, history=state.history)


def _build_parts(
    config: Config,
    data: PreparedData,
    *,
    model: Classifier,
    device: torch.device,
    world: World,
    precision: str,
    run_dir: Path,
    on_event: EventHandler,
) -> TrainingParts:
    """The model on its device, the loss, optimizer, sampler and schedule of a run."""
    cfg = config.train
    model.to(device)
    ddp_model = data_parallel(model, world, device)  # what the training step runs
    weights = class_weights(cfg, data.labels, data.train.targets)
    criterion = _criterion(config, data, model, weights).to(device)
    optimizer = make_optimizer(model, cfg, config.model.wide_lr_scale)
    sampler = BucketSampler(
        data.train.texts.lengths,
        cfg.batch_size,
        pool_batches=cfg.bucket_pool,
        seed=config.seed,
        max_tokens=cfg.batch_tokens,
    )
    # optimizer steps of all epochs (the last of an epoch may accumulate fewer batches; with a token budget that
    # binds, the number of batches may differ a little between epochs)
    epochs = resolved(cfg.epochs, "train.epochs")
    total_steps = sum(-(-n // cfg.accumulate) for n in sampler.batch_counts(range(1, epochs + 1)))
    scheduler = make_scheduler(optimizer, cfg, total_steps)
    step = Stepper(
        model=model,
        forward=ddp_model,
        criterion=criterion,
        optimizer=optimizer,
        texts=data.train.texts,
        targets=torch.from_numpy(data.train.targets),
        loss_weights=_loss_weights(config, data, weights),
        device=device,
        precision=precision,
        grad_clip=cfg.grad_clip,
        world=world,
    )
    epoch_thresholds = None
    if config.data.multi_label:
        epoch_thresholds = np.full(len(data.labels), cfg.fixed_threshold)
    average = WeightAverage(model, cfg.ema, round(cfg.ema_start * total_steps)) if cfg.ema else None
    return TrainingParts(
        config=config,
        data=data,
        step=step,
        scheduler=scheduler,
        sampler=sampler,
        run_dir=run_dir,
        on_event=on_event,
        epoch_thresholds=epoch_thresholds,
        average=average,
    )


def _criterion(config: Config, data: PreparedData, model: Classifier, weights: torch.Tensor | None) -> torch.nn.Module:
    """The training loss: the distillation loss of a student, else the loss of the labels with `class_weights`."""
    if config.distill.teacher:
        return DistillationLoss(
            config.distill,
            num_classes=len(data.labels),
            num_outputs=model.args.num_outputs,
            multi_label=config.data.multi_label,
        )
    return loss_function(len(data.labels), weights, config.data.multi_label)


def _loss_weights(config: Config, data: PreparedData, weights: torch.Tensor | None) -> np.ndarray:
    """[n] each training example's weight in the loss of its batch: its class weight, or 1 (multi-label: class
    weights act inside each example's loss, as pos_weight, so examples count alike)."""
    if weights is None or config.data.multi_label:
        return np.ones(len(data.train))
    return weights.double().numpy()[data.train.targets]


def _describe(parts: TrainingParts) -> str:
    """The line that says what is trained, where and how."""
    cfg, world, model = parts.config.train, parts.step.world, parts.step.model
    return (
        f"model: {model.describe()}, "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters on "
        f"{parts.step.device}{f' x {world.size} processes' if world.size > 1 else ''}; {cfg.optimizer} lr "
        f"{cfg.lr:g} ({cfg.lr_schedule}), batch {cfg.batch_size}"
        f"{f' x {cfg.accumulate} accumulated' if cfg.accumulate > 1 else ''}, "
        f"{cfg.epochs} epochs, {parts.step.precision}"
        f"{f', weights averaged (EMA {cfg.ema:g} from step {parts.average.start_step})' if parts.average else ''}"
        f"; resolved config: {config_path_of(parts.run_dir)}"
    )


def _save_last(parts: TrainingParts, state: TrainState) -> None:
    """The checkpoint to resume from, with every process's random state (so that as many resume identically)."""
    world = parts.step.world
    rng = all_gather(rng_state(), world)
    if world.main:
        save_checkpoint(
            parts.run_dir,
            {
                "model": parts.step.model.state_dict(),
                "optimizer": parts.step.optimizer.state_dict(),
                "scheduler": parts.scheduler.state_dict(),
                "state": asdict(state),
                "rng": rng[0],
                **({"rng_ranks": rng} if world.size > 1 else {}),
                **({"ema": parts.average.state_dict()} if parts.average else {}),
            },
        )


def _train_epoch(parts: TrainingParts, state: TrainState, batches: list[np.ndarray]) -> None:
    """The optimizer steps of the epoch in progress, from where it stands (checkpoints fall between optimizer
    steps, so a resumed epoch starts at the beginning of a step)."""
    cfg = parts.config.train
    lengths = parts.data.train.texts.lengths

    def count(batch: np.ndarray, loss: float) -> None:
        n_tokens = int(lengths[batch].sum())
        state.step += 1
        state.loss_sum += loss * len(batch)
        state.examples += len(batch)
        state.tokens += n_tokens
        parts.on_event(StepDone(loss, len(batch), n_tokens))

    parts.step.model.train()
    t_start = time.perf_counter()
    for first in range(state.step, len(batches), cfg.accumulate):
        train_step(
            parts.step, batches[first : first + cfg.accumulate], on_batch=count, epoch=state.epoch, done=state.step
        )
        if not isinstance(parts.scheduler, ReduceLROnPlateau):  # stepped per epoch, by `_validate`
            parts.scheduler.step()
        state.global_step += 1
        if parts.average is not None:
            parts.average.update(parts.step.model, state.global_step)
        if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
            state.seconds += time.perf_counter() - t_start
            t_start = time.perf_counter()
            _save_last(parts, state)
    state.seconds += time.perf_counter() - t_start


def _validate(parts: TrainingParts, state: TrainState, batches: list[np.ndarray]) -> tuple[EpochRecord, bool]:
    """Score the epoch's model (with train.ema, its averaged weights) on the validation split, keep those weights
    if they are the best so far, and return the epoch's record and whether it improved."""
    cfg, world = parts.config.train, parts.step.world
    with parts.average.applied(parts.step.model) if parts.average else nullcontext(parts.step.model) as model:
        report = evaluate_split(
            model,
            parts.data.valid,
            labels=parts.data.labels.labels,
            batch_size=cfg.eval_batch_size,
            device=parts.step.device,
            world=world,
            thresholds=parts.epoch_thresholds,
            batch_tokens=cfg.eval_batch_tokens,
        )
        value = report["loss"] if cfg.select_metric == "loss" else report[cfg.select_metric]
        improved = is_better(cfg.select_metric, value, state.best_value)
        if improved and world.main:
            save_best_weights(parts.run_dir, model)
    if improved:
        state.best_value, state.best_epoch, state.since_best = value, state.epoch, 0
    else:
        state.since_best += 1
    shards = [p for b in batches for r in range(world.size) if len(p := shard_batch(b, r, world.size))]
    record = cast(
        EpochRecord,
        {
            "epoch": state.epoch,
            "train_loss": state.loss_sum / state.examples,
            "valid_loss": report["loss"],
            "valid_accuracy": report["accuracy"],
            "valid_macro_f1": report["macro_f1"],
            **({"valid_micro_f1": report["micro_f1"]} if "micro_f1" in report else {}),
            "lr": parts.step.optimizer.param_groups[0]["lr"],
            "seconds": state.seconds,
            "train_tokens_per_s": state.tokens / state.seconds,  # of all processes
            "padding_fraction": padding_fraction(shards, parts.data.train.texts.lengths),
            "best": improved,
        },
    )
    if isinstance(parts.scheduler, ReduceLROnPlateau):
        parts.scheduler.step(value)
    return record, improved


def _end_epoch(parts: TrainingParts, state: TrainState, record: EpochRecord, tensorboard) -> None:
    """Log the epoch's record, move on to the next epoch and save the checkpoint."""
    state.history.append(record)
    state.epoch, state.step = state.epoch + 1, 0
    state.loss_sum, state.examples, state.tokens, state.seconds = 0.0, 0, 0, 0.0
    _save_last(parts, state)
    if parts.step.world.main:
        write_metrics(parts.run_dir, state.history)
    if tensorboard is not None:
        for key, number in record.items():
            if key not in ("epoch", "best"):
                tensorboard.add_scalar(key, number, record["epoch"])
        tensorboard.flush()


def _tensorboard_writer_class():
    """TensorBoard's SummaryWriter class."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "train.tensorboard is true, but TensorBoard is not installed: pip install 'llmcls[tensorboard]'"
        ) from None
    return SummaryWriter
