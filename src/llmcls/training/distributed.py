"""Training on several processes, GPUs and machines through torchrun: which process this is, the process group,
how the work is shared, and the `llmcls train --nproc N` launcher.

The scheme: `train.batch_size` is the global batch size. Every process builds the same global batches from
(seed, epoch) with the usual BucketSampler and trains on its own contiguous slice of each (a batch holds texts of
similar lengths, so each slice does too). DistributedDataParallel averages the processes' gradients, and each
slice's loss is weighted so that the average is the loss of the global batch. So N processes make the updates
one process makes (up to rounding), every process takes the same number of steps, and a position in an epoch
counts global batches whatever the number of processes: a run saved by N processes resumes on M.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from llmcls.data.batching import EncodedTexts
from llmcls.device import resolve_device
from llmcls.errors import DeviceError, RemoteError, TrainingError
from llmcls.training.world import World

T = TypeVar("T")


def process_device(spec: str | torch.device, world: World) -> torch.device:
    """The device of this process: `spec` as `llmcls.device.resolve_device` reads it, and with several processes
    one GPU each: `cuda` (or `auto` on a GPU machine) means cuda:LOCAL_RANK.

    Raises:
        DeviceError: the spec is invalid, names one GPU for several processes, or this machine has fewer GPUs than
            processes.
    """
    device = spec if isinstance(spec, torch.device) else resolve_device(spec)
    if world.size == 1 or device.type != "cuda":
        return device
    named = device.index is not None if isinstance(spec, torch.device) else ":" in spec
    if named:
        raise DeviceError(
            f"device {spec}: with several processes each uses its own GPU (cuda:LOCAL_RANK); "
            "ask for device cuda or auto"
        )
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise DeviceError(
            f"{world.local_size} processes on this machine but {count} CUDA device(s); "
            "start at most one process per GPU"
        )
    return torch.device("cuda", world.local_rank)


def threads_per_process(world: World) -> int:
    """This process's share of the CPU cores: the cores it may run on, divided among the processes on this
    machine (more threads than cores make LSTM training several times slower)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // world.local_size)


def process_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for the random numbers (dropout) of process `rank`, so that processes do not draw the same masks."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the processes of a torchrun launch for the duration: gloo on the CPU, NCCL on CUDA. Nothing to do
    for one process, or when the group already exists."""
    if world.size == 1 or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=world.rank, world_size=world.size, device_id=device)
    else:
        dist.init_process_group("gloo", rank=world.rank, world_size=world.size)
    try:
        yield
        # Tear down only once every process is past its last collective, and once nothing holds the group any
        # more: a DistributedDataParallel wrapper left in a reference cycle kept gloo's threads alive until the
        # interpreter's exit, where they could abort a worker ("terminate called without an active exception").
        dist.barrier()
        gc.collect()
    finally:
        dist.destroy_process_group()


def data_parallel(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """`model` wrapped in DistributedDataParallel when several processes train (which starts every process from
    rank 0's weights and averages gradients), else `model` itself."""
    if world.size == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def no_sync(model: torch.nn.Module) -> ContextManager:
    """Inside it, a backward pass of a DistributedDataParallel model keeps its gradients local (for every
    micro-batch of an accumulated step but the last)."""
    return model.no_sync() if isinstance(model, torch.nn.parallel.DistributedDataParallel) else nullcontext()


def shard_range(n: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous part [start, stop) of n items that process `rank` of `size` takes; sizes differ by at most
    one, and a process gets nothing only when n < size."""
    return n * rank // size, n * (rank + 1) // size


def shard_batch(batch: np.ndarray, rank: int, size: int) -> np.ndarray:
    """Process `rank`'s contiguous slice of a global batch (of length-sorted indices, as BucketSampler makes)."""
    start, stop = shard_range(len(batch), rank, size)
    return batch[start:stop]


def shard_share(batch: np.ndarray, loss_weights: np.ndarray, world: World) -> tuple[np.ndarray, float]:
    """This process's slice of a global batch, and the slice's share of the batch's loss.

    Args:
        batch: [batch] indices of the global batch, the same in every process.
        loss_weights: [n] each example's weight in the loss of its batch (its class weight, or 1).

    Returns:
        The slice's indices, and the sum of their weights over that of the batch's (the shares of all processes
        add up to 1). A batch smaller than the process count leaves some slices empty: such a process runs the
        batch's first example with share 0, so that it still takes part in the step.
    """
    part = shard_batch(batch, world.rank, world.size)
    if not len(part):
        return batch[:1], 0.0
    return part, float(loss_weights[part].sum() / loss_weights[batch].sum())


def text_range(texts: EncodedTexts, start: int, stop: int) -> EncodedTexts:
    """Texts start .. stop - 1 (the same object when that is all of them)."""
    if (start, stop) == (0, len(texts)):
        return texts
    offsets = texts.offsets[start : stop + 1]
    return EncodedTexts(texts.ids[offsets[0] : offsets[-1]], offsets - offsets[0])


def on_main(world: World, fn: Callable[[], T]) -> T:
    """`fn()` run by the main process only, its result handed to every process.

    The result travels pickled, between processes of this one launch. If `fn` fails, the main process raises its
    error and the others raise RemoteError (the main process reports it), so that none waits for nothing.
    """
    if world.size == 1:
        return fn()
    if world.main:
        try:
            result = fn()
        except Exception as exc:
            dist.broadcast_object_list([_Failure(f"{type(exc).__name__}: {exc}")], src=0)
            raise
        dist.broadcast_object_list([result], src=0)
        return result
    received: list = [None]
    dist.broadcast_object_list(received, src=0)
    if isinstance(received[0], _Failure):
        raise RemoteError(f"process 0 failed: {received[0].message}")
    return received[0]


@dataclass
class _Failure:
    message: str


def all_gather(value: T, world: World) -> list[T]:
    """`value` of every process, in rank order (pickled; for small objects)."""
    if world.size == 1:
        return [value]
    values: list = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def sum_over_processes(value: torch.Tensor, world: World) -> float:
    """The sum of a scalar tensor over all processes."""
    if world.size == 1:
        return float(value)
    total = value.detach().clone()
    dist.all_reduce(total)
    return float(total)


def launch(nproc: int, argv: list[str], verbose: bool = False) -> int:
    """Run `python -m llmcls ARGV` as `nproc` processes of this machine through torch's own launcher, as
    `torchrun --standalone --nproc-per-node NPROC -m llmcls ARGV` does, and wait for them.

    The launcher's own log lines (which restate a failure the failed process has already reported) are shown
    only if `verbose`.

    Returns:
        0 when every process succeeded, else the exit code of the first that failed (1 after an error it
        reported, 130 after Ctrl-C).

    Raises:
        TrainingError: a process was killed by a signal or crashed without reporting.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun sets one thread per process otherwise (and warns): each process sets its share of the cores anyway
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_process(World(local_size=nproc))))
    if not verbose:
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("torch.distributed.elastic"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "llmcls", *argv])
    try:
        run(args)
    except SignalException as exc:  # Ctrl-C or a kill: the launcher has stopped the processes
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode in (1, 130):
            return failure.exitcode
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with {failure.exitcode}"
        raise TrainingError(
            f"training process {rank} {how}; the run keeps its last checkpoint (continue it with --resume RUN_DIR)"
        ) from None
    return 0
