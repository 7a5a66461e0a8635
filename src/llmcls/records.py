"""The records that cross modules and layers: an evaluation report, a prediction's JSON row, an epoch's record (a
line of metrics.jsonl) and a run's results.json. Typed, so that a key renamed where a record is made fails in the
type checker where it is read (cli/render.py, inference/report_html.py, plots.py, serve/, the bench), not in a
user's run."""

from __future__ import annotations

from typing import TypedDict

from typing_extensions import NotRequired


class ClassScores(TypedDict):
    """One class's scores in a report."""

    precision: float
    recall: float
    f1: float
    support: int  # examples of the class
    predicted: NotRequired[int]  # multi-label: texts given the label


class CalibrationReport(TypedDict):
    """How well the probabilities match the frequencies (llmcls.inference.calibration)."""

    ece: float
    n_bins: int
    over: str  # "top-class confidence", or "every class probability" (multi-label)
    bins: list[dict[str, float]]


class Mistake(TypedDict):
    """One of the most confident mistakes (llmcls.inference.error_analysis)."""

    index: int
    text: str
    true: str | list[str]
    predicted: str | list[str]
    confidence: float


class Confusion(TypedDict):
    """A pair of classes often confused (llmcls.inference.error_analysis)."""

    true: str
    predicted: str
    count: int
    share: float


class ErrorAnalysis(TypedDict):
    """What llmcls.inference.error_analysis adds to a report."""

    n_mistakes: int
    mistakes: list[Mistake]
    confusions: list[Confusion] | None  # None: multi-label, which has no confusion matrix


class ChunkingReport(TypedDict):
    max_tokens: int
    stride: int
    aggregate: str


class Report(TypedDict):
    """A classification report (llmcls.inference.metrics, llmcls.inference.scoring), and what `llmcls eval`
    adds to it (llmcls.inference.evaluate)."""

    n: int
    accuracy: float  # multi-label: subset accuracy (the whole label set right)
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    labels: list[str]
    loss: NotRequired[float]
    # single-label
    confusion_matrix: NotRequired[list[list[int]]]  # [true][predicted]
    # multi-label
    multi_label: NotRequired[bool]
    hamming_loss: NotRequired[float]
    micro_precision: NotRequired[float]
    micro_recall: NotRequired[float]
    micro_f1: NotRequired[float]
    thresholds: NotRequired[dict[str, float]]
    # llmcls eval
    calibration: NotRequired[CalibrationReport]
    n_mistakes: NotRequired[int]
    mistakes: NotRequired[list[Mistake]]
    confusions: NotRequired[list[Confusion] | None]  # None: multi-label
    path: NotRequired[str]
    chunking: NotRequired[ChunkingReport]


class LabelProbability(TypedDict):
    label: str
    probability: float


class PredictionRow(TypedDict):
    """A prediction as JSON (llmcls.inference.rows): a line of `llmcls predict --format jsonl` (which puts "text"
    first) and an item of POST /v1/predict's "predictions"."""

    # single-label
    label: NotRequired[str | None]
    probability: NotRequired[float | None]
    # multi-label
    labels: NotRequired[list[str]]
    probabilities: NotRequired[list[float]]
    top_k: list[LabelProbability]  # the most probable labels, most probable first, whatever the thresholds


class EpochRecord(TypedDict):
    """One epoch of training: a line of metrics.jsonl (and a row of metrics.csv)."""

    epoch: int
    train_loss: float
    valid_loss: float
    valid_accuracy: float
    valid_macro_f1: float
    valid_micro_f1: NotRequired[float]  # multi-label runs
    lr: float
    seconds: float  # training seconds of the epoch (validation excluded)
    train_tokens_per_s: float  # of all processes
    padding_fraction: float
    best: bool  # the best epoch so far: its weights are the run's


class VectorCoverage(TypedDict):
    tokens: float  # share of the training tokens with a pretrained vector
    words: float  # share of the distinct words with one


class Results(TypedDict):
    """results.json: the summary of a finished run."""

    best_epoch: int
    select_metric: str
    epochs_run: int
    train_seconds: float
    precision: str
    temperature: float | None
    valid_ece_before: float
    valid_ece_after: float
    vector_coverage: VectorCoverage | None
    valid: Report
    test: Report | None
