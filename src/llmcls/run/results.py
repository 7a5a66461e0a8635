"""A run's record of its training: metrics.jsonl and metrics.csv (an EpochRecord a line) and results.json (the
summary of a finished run), written by training and read, as untrusted files, by plots and the server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import cast

from llmcls.errors import RunError
from llmcls.fileio import atomic_write_bytes
from llmcls.records import EpochRecord, Results
from llmcls.run.files import write_json
from llmcls.run.layout import METRICS_CSV, METRICS_JSONL, RESULTS
from llmcls.run.paths import read_run_json, read_run_text, run_file


def write_results(run_dir: Path, results: Results) -> None:
    """The summary of a finished run: best epoch, validation and test reports, timings."""
    write_json(run_dir / RESULTS, results)


def read_results(run_dir: str | Path) -> Results | None:
    """results.json, or None for a run still training (or one whose results were removed by --resume).

    Raises:
        RunError: results.json is a link, not a plain file, damaged, or not a JSON object.
    """
    if not run_file(run_dir, RESULTS, missing_ok=True).exists():
        return None
    results = read_run_json(run_dir, RESULTS)
    if not isinstance(results, dict) or not isinstance(results.get("valid"), dict):
        raise RunError(f"{Path(run_dir) / RESULTS}: damaged: not the results of a run")
    return cast(Results, results)


def read_history(run_dir: str | Path) -> list[EpochRecord]:
    """The records of the finished epochs (metrics.jsonl), oldest first; [] when none has finished.

    Raises:
        RunError: metrics.jsonl is missing (not a run directory), a link, or damaged.
    """
    if not run_file(run_dir, METRICS_JSONL, missing_ok=True).exists():
        raise RunError(f"{run_dir}: no {METRICS_JSONL} (is it a run directory?)")
    records = []
    for number, line in enumerate(read_run_text(run_dir, METRICS_JSONL).splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise RunError(f"{Path(run_dir) / METRICS_JSONL}, line {number}: damaged, not JSON") from None
    return cast(list[EpochRecord], records)


def write_metrics(run_dir: Path, history: list[EpochRecord]) -> None:
    """(Re)write `metrics.jsonl` and `metrics.csv` from the per-epoch records."""
    atomic_write_bytes(
        run_dir / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in history).encode("utf-8"), RunError
    )
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    atomic_write_bytes(run_dir / METRICS_CSV, buffer.getvalue().encode("utf-8"), RunError)
