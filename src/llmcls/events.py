"""Progress events that library code hands to a callback; only the CLI renders them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from llmcls.records import EpochRecord


@dataclass
class Info:
    """A line worth showing the user (what was loaded, how much, how long)."""

    message: str


@dataclass
class DownloadProgress:
    url: str
    done_bytes: int
    total_bytes: int | None


@dataclass
class EpochStarted:
    epoch: int
    epochs: int
    batches: int
    done: int = 0  # batches already done (a run resumed in the middle of an epoch)


@dataclass
class StepDone:
    loss: float
    examples: int
    tokens: int


def _no_record() -> EpochRecord:
    return cast(EpochRecord, {})


@dataclass
class EpochEnded:
    record: EpochRecord = field(default_factory=_no_record)  # the epoch's line of metrics.jsonl
    improved: bool = False


@dataclass
class PredictionProgress:
    """Texts classified so far, of all the texts given (None: an input read as it goes, whose size is not known
    ahead)."""

    done: int
    total: int | None


@dataclass
class TrialEnded:
    """A trial of `llmcls tune` ended: its number, state (complete, pruned, failed), the validation metric of its
    best epoch (None if it has none), epochs trained, wall seconds, sampled values, why it stopped early (a pruned
    or failed trial), and the best trial so far."""

    number: int
    state: str
    value: float | None
    epochs: int
    seconds: float
    params: dict[str, Any]
    note: str
    best_number: int | None
    best_value: float | None


EventHandler = Callable[[object], None]


def ignore(event: object) -> None:
    """The default handler: drop every event."""
