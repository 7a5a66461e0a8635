"""Not a test: one process of a test launch through torch's launcher (see test_distributed.py): trains as `llmcls train`
does under torchrun, and records what this process did in TRACE_DIR/rank<R>.json: the training examples of
each step (the indices `collate` received), the files it wrote (every file of a run is written by os.replace) and,
with train.ema, a digest of its weight average at each checkpoint.

Usage: python -m torch.distributed.run --standalone --nproc-per-node N distributed_worker.py CONFIG_JSON RUN_DIR
TRACE_DIR
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import llmcls.training.loop as loop
import llmcls.training.step as step
from llmcls.config import validate_config
from llmcls.training.loop import train
from llmcls.training.world import World

config = validate_config(json.loads(sys.argv[1]), "test")
run_dir, trace_dir = Path(sys.argv[2]), Path(sys.argv[3])
world = World.from_env()
batches, writes, averages = [], [], []

real_collate, real_replace, real_save_last = step.collate, os.replace, loop._save_last


def recording_collate(texts, indices, pad_index):
    batches.append(indices.tolist())
    return real_collate(texts, indices, pad_index)


def recording_replace(src, dst):
    writes.append(str(dst))
    real_replace(src, dst)


def recording_save_last(t, state):  # every process takes part in a checkpoint
    if t.average is not None:
        digest = hashlib.sha256()
        for name, tensor in sorted(t.average.state_dict().items()):
            digest.update(name.encode() + tensor.numpy().tobytes())
        averages.append(digest.hexdigest())
    real_save_last(t, state)


step.collate = recording_collate
os.replace = recording_replace
loop._save_last = recording_save_last
result = train(config, device="cpu", run_dir=run_dir, world=world)
(trace_dir / f"rank{world.rank}.json").write_text(
    json.dumps(
        {
            "batches": batches,
            "writes": writes,
            "averages": averages,
            "valid_accuracy": result.valid["accuracy"],
            "history": result.history,
        }
    )
)
