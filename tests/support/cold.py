"""`llmcls predict` in a fresh Python process, to see what a cold start imports."""

from __future__ import annotations

import os
import subprocess
import sys

from support.paths import ROOT


def cold_predict(args: list[str]):
    """`llmcls predict ARGS` in a fresh Python process; returns the finished process, whose last line of output
    says whether torch was imported (`torch imported: False` on the ONNX path)."""
    code = (
        "import sys\n"
        "from llmcls.cli import app\n"
        "try:\n"
        f"    app(['predict', *{args!r}], standalone_mode=False)\n"
        "finally:\n"
        "    print('torch imported:', sys.modules.get('torch') is not None)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
