"""Training: one explicit loop from a config to a run directory, with checkpoints to resume from."""

from __future__ import annotations

import math
import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from llmcls.artifacts import (read_model_args, save_weights, write_json, write_metrics, write_run_header,
                              write_thresholds)
from llmcls.build import build_model, class_weights, configure_torch, seed_everything
from llmcls.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from llmcls.config import Config, TrainConfig, save_config
from llmcls.data.batching import BucketSampler, collate, padding_fraction
from llmcls.data.prepare import PreparedData, Split, prepare_data
from llmcls.data.vocab import LabelMap, Vocab
from llmcls.distributed import (SINGLE, World, all_gather, data_parallel, no_sync, on_main, process_device,
                                process_group, process_seed, shard_batch, shard_range, shard_share, sum_over_processes,
                                text_range)
from llmcls.errors import ConfigError, TrainingError
from llmcls.events import EpochEnded, EpochStarted, EventHandler, Info, StepDone, ignore
from llmcls.inference import predict_logits, report_from_logits
from llmcls.metrics import tune_thresholds
from llmcls.model import LstmClassifier, autocast, compute_loss, loss_function
from llmcls.optim import make_optimizer, make_scheduler
from llmcls.precision import choose_precision
from llmcls.rundir import (FROM_WEIGHTS, TENSORBOARD_DIR, check_new_run, clear_for_new_run, discard_unused,
                           remove_from_run, remove_stale_temporaries, run_lock)


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    valid: dict  # classification report of the best model on the validation split, plus "loss"
    test: dict | None  # likewise on the test split, when the config has one
    history: list[dict]


def evaluate_split(model: LstmClassifier, split: Split, labels: list[str], batch_size: int,
                   device: torch.device, world: World = SINGLE, thresholds: np.ndarray | None = None) -> dict:
    """Classification report of `model` on `split`, with the mean loss under "loss" (multi-label: labels
    predicted at `thresholds`, default 0.5).

    With several processes, each computes the logits of its part of the split and every process gets the
    report of the whole split: the figures one process computes.
    """
    start, stop = shard_range(len(split), world.rank, world.size)
    logits = predict_logits(model, text_range(split.texts, start, stop), batch_size, device)  # [part, outputs]
    return report_from_logits(torch.cat(all_gather(logits, world)), split.targets, labels, thresholds)


def decision_thresholds(cfg: TrainConfig, model: LstmClassifier, valid: Split, batch_size: int,
                        device: torch.device) -> tuple[np.ndarray, str]:
    """Multi-label: the probability each class needs to be predicted, and how it was chosen: `train.threshold`
    for every class, or per class the grid value with the best F1 on the validation split (`tune`)."""
    if cfg.threshold == "tune":
        probs = torch.sigmoid(predict_logits(model, valid.texts, batch_size, device)).numpy()
        return tune_thresholds(probs, valid.targets), "tuned: the best F1 of each class on the validation split"
    return np.full(valid.targets.shape[1], float(cfg.threshold)), "fixed: train.threshold"


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 1  # the epoch in progress
    step: int = 0  # batches of `epoch` already done (global batches, whatever the number of processes)
    global_step: int = 0  # optimizer steps (one per train.accumulate batches)
    best_value: float | None = None
    best_epoch: int = 0
    since_best: int = 0
    loss_sum: float = 0.0  # sums over the batches of `epoch` done so far
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0  # training seconds of `epoch` so far
    history: list[dict] = field(default_factory=list)

    def finished(self, cfg: TrainConfig) -> bool:
        return self.epoch > cfg.epochs or bool(cfg.patience and self.since_best >= cfg.patience)


def _is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def train(config: Config, device: str | torch.device = "auto", run_dir: Path | None = None,
          on_event: EventHandler = ignore, resume: bool = False, overwrite: bool = False,
          world: World = SINGLE) -> TrainResult:
    """Train a classifier as `config` says and write its run directory.

    Args:
        config: the validated config (when resuming, see `llmcls.config.resume_config`).
        device: auto, cpu, cuda, cuda:N, or a torch.device.
        run_dir: where to write; default `config.output_dir / config.name`.
        on_event: receives progress events (see llmcls.events).
        resume: continue the run in `run_dir` from its last checkpoint.
        overwrite: replace an existing run in `run_dir` (otherwise an existing run is refused); refused when the
            directory holds anything llmcls did not write, and the old run is deleted only once the new one has
            read its data.
        world: this process's place among the processes of a torchrun launch (`World.from_env()`); by default
            the only one. With several, they train data-parallel (see llmcls.distributed): process 0 claims and
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
    created = world.main and not run_dir.exists()
    with process_group(world, device):
        try:
            with ExitStack() as lock:
                def claim() -> dict | None:
                    lock.enter_context(run_lock(run_dir))
                    if resume:
                        remove_stale_temporaries(run_dir)
                        return load_checkpoint(run_dir)
                    check_new_run(run_dir, overwrite)  # deletes nothing: _setup does, once the data is read
                    return None

                checkpoint = on_main(world, claim)
                return _train(config, device, run_dir, on_event, checkpoint, world, precision.precision)
        except BaseException:
            if created:  # e.g. a data file was missing: leave no empty run directory behind
                discard_unused(run_dir)
            raise


def _setup(config: Config, run_dir: Path, checkpoint: dict | None,
           on_event: EventHandler) -> tuple[PreparedData, LstmClassifier]:
    """The encoded data and the starting model of a new or resumed run; writes the run's header files.

    Only once the data is read is anything of an old run deleted: a start that fails leaves the directory as it was.
    """
    t0 = time.perf_counter()
    if checkpoint is None:
        data = prepare_data(config, on_event)
        model = build_model(config, data, on_event)
        clear_for_new_run(run_dir)  # --overwrite: the old run (checked by claim; the directory is locked)
        write_run_header(run_dir, config, data.vocab, data.labels, model.args)
    else:
        data = prepare_data(config, on_event, Vocab.load(run_dir / "vocab.json"),
                            LabelMap.load(run_dir / "labels.json"))
        model = LstmClassifier(read_model_args(run_dir))
        model.load_state_dict(checkpoint["model"])
        remove_from_run(run_dir, FROM_WEIGHTS)  # results, thresholds, export: stale once training goes on
        save_config(config, run_dir / "config.yaml")  # keys safe to change on resume may have changed
    on_event(Info(f"data: train {len(data.train)}, valid {len(data.valid)}"
                  f"{' (split from train)' if data.valid_from_train else ''}"
                  f"{f', test {len(data.test)}' if data.test else ''}; classes: {', '.join(data.labels.labels)}; "
                  f"prepared in {time.perf_counter() - t0:.1f}s"))
    return replace(data, vectors=None), model  # the vectors are in the model now


def _set_rng(checkpoint: dict, world: World, seed: int, global_step: int) -> None:
    """Restore this process's random state; a process the saved run did not have starts a stream of its own."""
    states = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
    set_rng_state(states[world.rank] if world.rank < len(states) else states[0])
    if world.rank >= len(states):
        torch.manual_seed(process_seed(seed, world.rank, global_step))


def _train(config: Config, device: torch.device, run_dir: Path, on_event: EventHandler,
           checkpoint: dict | None, world: World, precision: str) -> TrainResult:
    cfg = config.train
    configure_torch(cfg, world)
    summary_writer = _tensorboard_writer_class() if cfg.tensorboard and world.main else None  # fails early
    seed_everything(config.seed)
    # Process 0 reads and encodes the data, builds the vocabulary, label map and model, and writes the run's
    # header; the others receive the encoded data and the model from it, so every process starts alike.
    data, model = on_main(world, lambda: _setup(config, run_dir, checkpoint, on_event))
    tensorboard = summary_writer(str(run_dir / TENSORBOARD_DIR)) if summary_writer else None  # after any clearing
    if world.rank:
        torch.manual_seed(process_seed(config.seed, world.rank))  # dropout masks of its own
    model.to(device)
    ddp_model = data_parallel(model, world, device)  # what the training step runs
    weights = class_weights(cfg, data.labels, data.train.targets)
    criterion = loss_function(len(data.labels), weights, config.data.multi_label).to(device)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    sampler = BucketSampler(data.train.texts.lengths, cfg.batch_size, cfg.bucket_pool, seed=config.seed)
    steps_per_epoch = -(-len(sampler) // cfg.accumulate)  # optimizer steps; the last may accumulate fewer batches
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    per_step_schedule = not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    targets = torch.from_numpy(data.train.targets)
    text_lengths = data.train.texts.lengths
    # each example's weight in the loss of its batch: its class weight, or 1
    # (multi-label: class weights act inside each example's loss, as pos_weight, so examples count alike)
    loss_weights = (np.ones(len(targets)) if weights is None or config.data.multi_label
                    else weights.double().numpy()[data.train.targets])
    state = TrainState()
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = TrainState(**checkpoint["state"])
        _set_rng(checkpoint, world, config.seed, state.global_step)
        on_event(Info(f"resumed {run_dir} at epoch {state.epoch}, batch {state.step}"))
    if world.main:
        write_metrics(run_dir, state.history)  # drops any epoch logged after the checkpoint
    m = config.model
    on_event(Info(f"model: {'Bi' if m.bidirectional else ''}LSTM {m.num_layers}x{m.hidden_size}, pooling {m.pooling}, "
                  f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters on "
                  f"{device}{f' x {world.size} processes' if world.size > 1 else ''}; {cfg.optimizer} lr {cfg.lr:g} "
                  f"({cfg.lr_schedule}), batch {cfg.batch_size}"
                  f"{f' x {cfg.accumulate} accumulated' if cfg.accumulate > 1 else ''}, "
                  f"{cfg.epochs} epochs, {precision}; resolved config: {run_dir / 'config.yaml'}"))

    def save_last() -> None:
        rng = all_gather(rng_state(), world)  # every process's, so that as many processes resume identically
        if world.main:
            save_checkpoint(run_dir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                      "scheduler": scheduler.state_dict(), "state": asdict(state), "rng": rng[0],
                                      **({"rng_ranks": rng} if world.size > 1 else {})})

    epoch_thresholds = None  # multi-label, while training: train.threshold (0.5 when it is tuned at the end)
    if config.data.multi_label:
        epoch_thresholds = np.full(len(data.labels), 0.5 if cfg.threshold == "tune" else float(cfg.threshold))

    while not state.finished(cfg):
        epoch = state.epoch
        sampler.set_epoch(epoch)
        batches = sampler.batches()  # the global batches, the same in every process
        on_event(EpochStarted(epoch, cfg.epochs, len(batches), done=state.step))
        model.train()
        t_start = time.perf_counter()
        # checkpoints fall between optimizer steps, so a resumed epoch starts at the beginning of a step
        for first in range(state.step, len(batches), cfg.accumulate):
            group = batches[first:first + cfg.accumulate]  # the batches of one optimizer step
            optimizer.zero_grad(set_to_none=True)
            for i, batch in enumerate(group):
                part, share = shard_share(batch, loss_weights, world)  # this process's examples, their loss share
                with nullcontext() if i == len(group) - 1 else no_sync(ddp_model):  # gradients sync once a step
                    token_ids, lengths = collate(data.train.texts, part, data.vocab.pad_index)
                    with autocast(precision, device):
                        logits = ddp_model(token_ids.to(device, non_blocking=True), lengths)
                    loss = compute_loss(criterion, logits.float(), targets[part].to(device, non_blocking=True))
                    batch_loss = sum_over_processes(loss.detach() * share, world)  # the loss of the global batch
                    if not math.isfinite(batch_loss):
                        raise TrainingError(f"the training loss became {batch_loss} at epoch {epoch}, batch "
                                            f"{state.step + 1}; stopped with the last checkpoint kept. Try a lower "
                                            "train.lr or set train.grad_clip")
                    # DistributedDataParallel averages the processes' gradients, hence x world.size; and the step's
                    # batches count alike
                    (loss * (share * world.size / len(group))).backward()
                n_tokens = int(text_lengths[batch].sum())
                state.step += 1
                state.loss_sum += batch_loss * len(batch)
                state.examples += len(batch)
                state.tokens += n_tokens
                on_event(StepDone(batch_loss, len(batch), n_tokens))
            if cfg.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if not torch.isfinite(norm):
                    raise TrainingError(f"the gradient became {float(norm)} at epoch {epoch}, batch {state.step}; "
                                        "stopped with the last checkpoint kept. Try a lower train.lr")
            optimizer.step()
            if per_step_schedule:
                scheduler.step()
            state.global_step += 1
            if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
                state.seconds += time.perf_counter() - t_start
                t_start = time.perf_counter()
                save_last()
        state.seconds += time.perf_counter() - t_start

        report = evaluate_split(model, data.valid, data.labels.labels, cfg.eval_batch_size, device, world,
                                epoch_thresholds)
        value = report["loss"] if cfg.select_metric == "loss" else report[cfg.select_metric]
        improved = _is_better(cfg.select_metric, value, state.best_value)
        if improved:
            state.best_value, state.best_epoch, state.since_best = value, epoch, 0
            if world.main:
                save_weights(run_dir / "model.safetensors", model)
        else:
            state.since_best += 1
        parts = [p for b in batches for r in range(world.size) if len(p := shard_batch(b, r, world.size))]
        record = {
            "epoch": epoch,
            "train_loss": state.loss_sum / state.examples,
            "valid_loss": report["loss"],
            "valid_accuracy": report["accuracy"],
            "valid_macro_f1": report["macro_f1"],
            **({"valid_micro_f1": report["micro_f1"]} if "micro_f1" in report else {}),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": state.seconds,
            "train_tokens_per_s": state.tokens / state.seconds,  # of all processes
            "padding_fraction": padding_fraction(parts, text_lengths),
            "best": improved,
        }
        if not per_step_schedule:
            scheduler.step(value)
        state.history.append(record)
        state.epoch, state.step = epoch + 1, 0
        state.loss_sum, state.examples, state.tokens, state.seconds = 0.0, 0, 0, 0.0
        save_last()
        if world.main:
            write_metrics(run_dir, state.history)
        if tensorboard is not None:
            for key, number in record.items():
                if key not in ("epoch", "best"):
                    tensorboard.add_scalar(key, number, epoch)
            tensorboard.flush()
        on_event(EpochEnded(record, improved))
        if cfg.patience and state.since_best >= cfg.patience:
            on_event(Info(f"early stop: no better valid {cfg.select_metric} for {cfg.patience} epochs"))
    if tensorboard is not None:
        tensorboard.close()

    def finish() -> tuple[dict, dict | None]:
        """The best model's reports, results.json and the plots (by process 0 alone, which holds the weights)."""
        from safetensors.torch import load_file

        model.load_state_dict(load_file(run_dir / "model.safetensors"))
        thresholds = None
        if config.data.multi_label:
            thresholds, method = decision_thresholds(cfg, model, data.valid, cfg.eval_batch_size, device)
            write_thresholds(run_dir, data.labels.labels, thresholds, method)
        valid = evaluate_split(model, data.valid, data.labels.labels, cfg.eval_batch_size, device,
                               thresholds=thresholds)
        test = None
        if data.test is not None:
            test = evaluate_split(model, data.test, data.labels.labels, cfg.eval_batch_size, device,
                                  thresholds=thresholds)
        write_json(run_dir / "results.json", {
            "best_epoch": state.best_epoch,
            "select_metric": cfg.select_metric,
            "epochs_run": len(state.history),
            "train_seconds": sum(r["seconds"] for r in state.history),
            "precision": precision,
            "valid": valid,
            "test": test,
        })
        if cfg.plots:
            from llmcls.plots import plot_run

            plot_run(run_dir)
        if cfg.export_onnx:  # so that predict, eval and serve start without torch (llmcls.onnx_runtime)
            from llmcls.export import export_after_training

            export_after_training(run_dir, on_event)
        return valid, test

    valid, test = on_main(world, finish)
    return TrainResult(run_dir, state.best_epoch, valid, test, state.history)


def _tensorboard_writer_class():
    """TensorBoard's SummaryWriter class."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.tensorboard is true, but TensorBoard is not installed: "
                          "pip install 'llmcls[tensorboard]'") from None
    return SummaryWriter
