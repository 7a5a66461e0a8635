"""Not a test: one process of a test launch through torch's launcher (see test_distributed.py): trains as `llmcls train`
does under torchrun, and records what this process did in TRACE_DIR/rank<R>.json: the training examples of
each step (the indices `collate` received) and the files it wrote (every file of a run is written by os.replace).

Usage: python -m torch.distributed.run --standalone --nproc-per-node N distributed_worker.py CONFIG_JSON RUN_DIR
TRACE_DIR
"""

import json
import os
import sys
from pathlib import Path

import llmcls.training.step as step
from llmcls.config import validate_config
from llmcls.training.distributed import World
from llmcls.training.loop import train

config = validate_config(json.loads(sys.argv[1]), "test")
run_dir, trace_dir = Path(sys.argv[2]), Path(sys.argv[3])
world = World.from_env()
batches, writes = [], []

real_collate, real_replace = step.collate, os.replace


def recording_collate(texts, indices, pad_index):
    batches.append(indices.tolist())
    return real_collate(texts, indices, pad_index)


def recording_replace(src, dst):
    writes.append(str(dst))
    real_replace(src, dst)


step.collate = recording_collate
os.replace = recording_replace
result = train(config, device="cpu", run_dir=run_dir, world=world)
(trace_dir / f"rank{world.rank}.json").write_text(json.dumps({
    "batches": batches, "writes": writes, "valid_accuracy": result.valid["accuracy"], "history": result.history,
}))
