"""Where a training run starts: a new run's state, or a resumed one's, with its optimizer, schedule, weight
average and random state restored from the checkpoint."""

from __future__ import annotations

import torch

from llmcls.events import Info
from llmcls.records import VectorCoverage
from llmcls.run.checkpoint import set_rng_state
from llmcls.training.distributed import process_seed
from llmcls.training.state import TrainingParts, TrainState
from llmcls.training.world import World


def start_state(parts: TrainingParts, checkpoint: dict | None) -> TrainState:
    """A new run's state, or a resumed one's, with the optimizer, schedule and random state restored."""
    if checkpoint is None:
        coverage = parts.data.coverage
        return TrainState(
            vector_coverage=None if coverage is None else VectorCoverage(tokens=coverage.tokens, words=coverage.words)
        )
    parts.step.optimizer.load_state_dict(checkpoint["optimizer"])
    parts.scheduler.load_state_dict(checkpoint["scheduler"])
    state = TrainState(**checkpoint["state"])
    if parts.average is not None:
        parts.average.load_state_dict(checkpoint["ema"])
    _set_rng(checkpoint, parts.step.world, parts.config.seed, state.global_step)
    parts.on_event(Info(f"resumed {parts.run_dir} at epoch {state.epoch}, batch {state.step}"))
    return state


def _set_rng(checkpoint: dict, world: World, seed: int, global_step: int) -> None:
    """Restore this process's random state; a process the saved run did not have starts a stream of its own."""
    states = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
    set_rng_state(states[world.rank] if world.rank < len(states) else states[0])
    if world.rank >= len(states):
        torch.manual_seed(process_seed(seed, world.rank, global_step))
