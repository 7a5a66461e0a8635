"""Killing a training run at a chosen moment (SIGKILL, in a subprocess) and comparing finished runs: the
resume tests of both model families."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import torch

from llmcls.run.checkpoint import CHECKPOINT
from llmcls.run.files import load_run

TIMING = ("seconds", "train_tokens_per_s")


def comparable(history):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in history]


def assert_same_run(a, b):
    """Two finished runs with bit-identical weights, metrics and results."""
    assert comparable(a.history) == comparable(b.history)
    assert a.valid == b.valid
    wa, wb = load_run(a.run_dir).model.state_dict(), load_run(b.run_dir).model.state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def run_until_killed(config, run_dir, kill_at_step=None, kill_at_checkpoint_write=None):
    """Train in a subprocess that SIGKILLs itself at a given batch, or inside the n-th checkpoint write
    (after the temporary file is written, before the rename)."""
    script = textwrap.dedent(f"""
        import json, os, signal, sys
        from llmcls.config import validate_config
        from llmcls.events import StepDone
        from llmcls.training.loop import train

        config = validate_config(json.loads(sys.argv[1]), "test")
        steps = 0

        def on_event(event):
            global steps
            if isinstance(event, StepDone):
                steps += 1
                if steps == {kill_at_step!r}:
                    os.kill(os.getpid(), signal.SIGKILL)

        real_replace, writes = os.replace, 0

        def replace(src, dst):
            global writes
            if str(dst).endswith("{CHECKPOINT}"):
                writes += 1
                if writes == {kill_at_checkpoint_write!r}:
                    os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)

        os.replace = replace
        train(config, device="cpu", run_dir=sys.argv[2], on_event=on_event)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(config.to_dict()), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
