"""Exporting a trained run for prediction without PyTorch: an ONNX model, optionally an int8 one, written into
`RUN/export/` (see llmcls.inference.onnx_forward), checked against the PyTorch model and measured.

The measurements use labelled texts (the run's validation data unless a file is given): the largest difference
between each exported model's logits and PyTorch's, in batches of mixed lengths as they come; the accuracy of
each; and texts per second of each, tokenization excluded, in the length-sorted batches `llmcls predict` uses.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmcls import __version__
from llmcls.data.batching import EncodedTexts, pad_batch
from llmcls.data.inputs import read_labelled
from llmcls.data.prepare import encode_labelled
from llmcls.errors import ExportError, RunError
from llmcls.events import EventHandler, Info, ignore
from llmcls.export.graph import INPUTS, OPSET, OUTPUT, build_onnx_model
from llmcls.export.quantize import FLOAT_TO_INT8, QUANTIZED_OP_TYPES, quantize_int8
from llmcls.fileio import atomic_write_bytes, atomic_write_text
from llmcls.inference.forward import Forward, batched_logits
from llmcls.inference.onnx_forward import INSTALL_HINT, OnnxClassifier, import_onnxruntime
from llmcls.inference.predict import Predictor
from llmcls.inference.scoring import probabilities, report
from llmcls.run.artifacts import read_weights
from llmcls.run.exports import ExportFiles, export_files, quantize_scratch
from llmcls.run.files import LoadedRun, load_run, load_run_info
from llmcls.run.layout import ENCODER_FAMILY, MANIFEST_VERSION

FORMATS = ("onnx", "torchscript")
QUANTIZATIONS = ("int8",)


@dataclass(kw_only=True)
class ExportedModel:
    name: str  # the predict backend that runs it: onnx | onnx-int8
    path: Path
    size_bytes: int
    sha256: str  # of the file's bytes, recorded in the manifest and checked when it is loaded
    quantized_ops: dict[str, int] = field(default_factory=dict)  # e.g. {"DynamicQuantizeLSTM": 2, "MatMulInteger": 1}
    float_ops_left: dict[str, int] = field(default_factory=dict)  # LSTM/MatMul/Gemm ops left in float32


@dataclass(kw_only=True)
class BackendFigures:
    """How one way of running the model did on the measurement texts."""

    name: str  # torch | onnx | onnx-int8
    accuracy: float
    max_abs_diff: float  # largest |logit - PyTorch's logit| over all texts (0 for torch itself)
    texts_per_s: float


@dataclass(kw_only=True)
class ExportResult:
    run_dir: Path
    manifest: Path
    models: list[ExportedModel]
    weights_bytes: int  # the run's model.safetensors, for comparison
    data: str | None = None  # what was measured on; None when not measured
    n_texts: int = 0
    n_tokens: int = 0
    batch_size: int = 0
    torch_threads: int = 0
    figures: list[BackendFigures] = field(default_factory=list)


def export_run(
    run_dir: str | Path,
    *,
    export_format: str = "onnx",
    quantize: str | None = None,
    data: str | Path | None = None,
    measure: bool = True,
    seconds: float = 2.0,
    batch_size: int | None = None,
) -> ExportResult:
    """Export a run's model into `RUN/export/` and, if `measure`, check and time it.

    Args:
        run_dir: a run directory written by `llmcls train`.
        export_format: `onnx`; `torchscript` is refused (torch.jit is deprecated, see the README).
        quantize: `int8` to also write an int8 dynamically quantized model, or None.
        data: labelled texts to measure on (read with the run's data settings); default the run's validation data.
        measure: check and time the exported models against PyTorch.
        seconds: about how long to time each backend.
        batch_size: texts per batch when measuring (default: the run's eval batch size).

    Raises:
        ExportError: an unknown format or quantization, or onnx/onnxruntime not installed.
        RunError: `run_dir` is not a usable run.
        DataError: the measurement data cannot be read.
    """
    _check_options(export_format, quantize)
    try:
        import onnx
    except ImportError:
        raise ExportError(f"onnx is not installed; {INSTALL_HINT}") from None
    ort = import_onnxruntime()

    weights_file = read_weights(Path(run_dir))
    run = load_run(run_dir, "cpu", weights_file)  # exactly the bytes hashed below, even if training rewrites them
    run_dir = run.run_dir
    files = export_files(run_dir)
    weights = {name: t.detach().numpy() for name, t in run.model.state_dict().items()}
    float_path = files.models["onnx"]
    graph = _graph(run, weights).SerializeToString()
    atomic_write_bytes(float_path, graph, RunError)
    models = [
        ExportedModel(name="onnx", path=float_path, size_bytes=len(graph), sha256=hashlib.sha256(graph).hexdigest())
    ]
    int8_path = files.models["onnx-int8"]
    if quantize == "int8":
        models.append(_quantize_int8(float_path, int8_path, files))
    else:
        int8_path.unlink(missing_ok=True)  # an int8 model of earlier weights must not outlive them

    manifest = _manifest(run, models, weights_file, onnx.__version__, ort.__version__)
    manifest_path = files.manifest
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False), RunError)
    result = ExportResult(run_dir=run_dir, manifest=manifest_path, models=models, weights_bytes=len(weights_file))
    if measure:
        _measure(result, run, data, seconds, batch_size or run.config.train.eval_batch_size)
    return result


def _check_options(export_format: str, quantize: str | None) -> None:
    if export_format == "torchscript":
        raise ExportError(
            "export format torchscript: torch.jit.script and torch.jit.trace are deprecated in this "
            "torch (and script cannot compile the model); use the onnx format"
        )
    if export_format not in FORMATS:
        raise ExportError(f"export format {export_format!r}: expected onnx")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"quantization {quantize!r}: expected int8")


def _graph(run: LoadedRun, weights: dict[str, np.ndarray]):
    """The ONNX model of the run's network, built from its weights by its family's graph builder."""
    from llmcls.model import LstmClassifier

    model = run.model
    if isinstance(model, LstmClassifier):
        return build_onnx_model(model.args, weights)
    from llmcls.export.encoder_graph import build_encoder_onnx

    return build_encoder_onnx(model.args, weights)


def _manifest(
    run: LoadedRun, models: list[ExportedModel], weights_file: bytes, onnx_version: str, ort_version: str
) -> dict:
    """What RUN/export/manifest.json says: versions, inputs and output, the network's arguments (as meta.json's),
    the digest of the weights, the models with the digest of each file."""
    args = run.model.args
    return {
        "format_version": MANIFEST_VERSION,
        "llmcls_version": __version__,
        "onnx_version": onnx_version,
        "onnxruntime_version": ort_version,
        "opset": OPSET,
        "inputs": {
            INPUTS[0]: {"dtype": "int64", "shape": ["batch", "seq"]},
            INPUTS[1]: {"dtype": "int64", "shape": ["batch"]},
        },
        "output": {"name": OUTPUT, "dtype": "float32", "shape": ["batch", args.num_outputs]},
        "pad_index": args.pad_index,
        "num_outputs": args.num_outputs,
        "labels": run.labels.labels,
        "model_args": args.to_dict(),
        "weights_sha256": hashlib.sha256(weights_file).hexdigest(),  # as llmcls.run.exports.weights_digest
        "models": {
            m.name: {
                "file": m.path.name,
                "bytes": m.size_bytes,
                "sha256": m.sha256,
                "quantized": None if m.name == "onnx" else "int8 dynamic (onnxruntime.quantization)",
                "quantized_ops": m.quantized_ops,
            }
            for m in models
        },
    }


def export_after_training(run_dir: Path, on_event: EventHandler = ignore) -> Path | None:
    """Write the float ONNX export of a run that training just finished, without timing it; for a pretrained
    encoder also the int8 model, kept only where it loses at most `INT8_MAX_LOSS` of validation accuracy
    (`keep_int8_if_accurate`).

    Args:
        run_dir: the run directory.
        on_event: receives `Info` events saying what was written, or why nothing was.

    Returns:
        The manifest written, or None when onnx or onnxruntime is not installed (then prediction uses torch).
    """
    start = time.perf_counter()
    encoder = load_run_info(run_dir).family == ENCODER_FAMILY
    try:
        result = export_run(run_dir, export_format="onnx", quantize="int8" if encoder else None, measure=False)
    except ExportError as exc:  # only onnx/onnxruntime missing can fail here: the run is complete
        on_event(Info(f"no ONNX export ({exc}); predict will load torch"))
        return None
    on_event(Info(f"exported {result.models[0].path} in {time.perf_counter() - start:.1f}s"))
    if encoder:
        keep_int8_if_accurate(result, on_event)
    return result.manifest


INT8_MAX_LOSS = 0.005  # an int8 model that loses more validation accuracy than this (0.5 point) is not kept


def keep_int8_if_accurate(result: ExportResult, on_event: EventHandler = ignore) -> bool:
    """Compare the int8 model's validation accuracy with the float one's; remove it (file and manifest entry)
    when it loses more than INT8_MAX_LOSS. Returns whether it was kept."""
    info = load_run_info(result.run_dir)
    examples, where = read_labelled(info.config)
    split = encode_labelled(examples, where, config=info.config, encoding=info.encoding(), labels=info.labels)
    accuracy = {}
    for model in result.models:
        args = info.model_args
        forward = OnnxClassifier(
            model.path, pad_index=args["pad_index"], num_outputs=args["num_outputs"], name=model.name
        )
        logits = batched_logits(
            forward,
            split.texts,
            batch_size=info.config.train.eval_batch_size,
            pad_index=forward.pad_index,
            max_tokens=info.config.train.eval_batch_tokens,
        )
        probs = probabilities(logits, info.config.data.multi_label, info.temperature)
        scores = report(probs, split.targets, labels=info.labels.labels, thresholds=info.thresholds)
        accuracy[model.name] = scores["accuracy"]
    loss = accuracy["onnx"] - accuracy["onnx-int8"]
    if loss <= INT8_MAX_LOSS:
        on_event(
            Info(
                f"int8 export kept: validation accuracy {accuracy['onnx-int8']:.4f} (float "
                f"{accuracy['onnx']:.4f}); the onnx-int8 backend uses it"
            )
        )
        return True
    int8 = next(m for m in result.models if m.name == "onnx-int8")
    manifest = json.loads(result.manifest.read_text(encoding="utf-8"))
    del manifest["models"]["onnx-int8"]
    atomic_write_text(result.manifest, json.dumps(manifest, indent=2, ensure_ascii=False), RunError)
    int8.path.unlink(missing_ok=True)
    result.models.remove(int8)
    on_event(
        Info(
            f"int8 export not kept: it loses {100 * loss:.2f} points of validation accuracy "
            f"({accuracy['onnx-int8']:.4f} against {accuracy['onnx']:.4f}; at most {100 * INT8_MAX_LOSS:g})"
        )
    )
    return False


def _quantize_int8(float_path: Path, out_path: Path, files: ExportFiles) -> ExportedModel:
    """Dynamic int8 quantization of the LSTM and linear weights (llmcls.export.quantize), written to `out_path`."""
    with quantize_scratch(files) as (prepared, quantized):
        ops = quantize_int8(float_path, prepared=prepared, quantized=quantized)
        data = quantized.read_bytes()
        atomic_write_bytes(out_path, data, RunError)
    return ExportedModel(
        name="onnx-int8",
        path=out_path,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        quantized_ops={op: ops[op] for op in FLOAT_TO_INT8 if ops[op]},
        float_ops_left={op: ops[op] for op in QUANTIZED_OP_TYPES if ops[op]},
    )


def _measure(result: ExportResult, run: LoadedRun, data: str | Path | None, seconds: float, batch_size: int) -> None:
    """Fill in the figures of each backend (see the module) on `data`, else the run's validation data."""
    import torch

    from llmcls.inference.torch_forward import TorchForward
    from llmcls.precision import bf16_problem

    examples, result.data = read_labelled(run.config, data)
    split = encode_labelled(examples, result.data, config=run.config, encoding=run.encoding(), labels=run.labels)
    texts = split.texts
    result.n_texts, result.n_tokens, result.batch_size = len(texts), len(texts.ids), batch_size
    result.torch_threads = torch.get_num_threads()
    # torch-bf16 only where this CPU runs the LSTM in bfloat16 (oneDNN has no bf16 LSTM on AVX2-only CPUs)
    precisions = ("fp32", "bf16") if bf16_problem(torch.device("cpu")) is None else ("fp32",)
    backends: list[Forward] = [TorchForward(run.model, torch.device("cpu"), p) for p in precisions]
    backends += [
        OnnxClassifier(m.path, pad_index=run.model.args.pad_index, num_outputs=run.model.args.num_outputs, name=m.name)
        for m in result.models
    ]
    thresholds = Predictor(run, backends[0]).thresholds  # multi-label: as predict and eval decide
    reference = None
    for backend in backends:
        mixed = _logits_in_input_order(backend, texts, batch_size)  # batches of mixed lengths
        reference = mixed if reference is None else reference
        probs = probabilities(mixed, run.config.data.multi_label, run.temperature)
        accuracy = report(probs, split.targets, labels=run.labels.labels, thresholds=thresholds)["accuracy"]
        texts_per_s = _texts_per_second(backend, texts, batch_size, seconds)
        result.figures.append(
            BackendFigures(
                name=backend.name,
                accuracy=float(accuracy),
                max_abs_diff=float(np.abs(mixed - reference).max()),
                texts_per_s=texts_per_s,
            )
        )


def _logits_in_input_order(backend: Forward, texts: EncodedTexts, batch_size: int) -> np.ndarray:
    out = np.empty((len(texts), backend.num_outputs), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = np.arange(start, min(start + batch_size, len(texts)))
        out[batch] = backend(*pad_batch(texts, batch, backend.pad_index))
    return out


def _texts_per_second(backend: Forward, texts: EncodedTexts, batch_size: int, seconds: float) -> float:
    batched_logits(backend, texts, batch_size=batch_size, pad_index=backend.pad_index)  # warm-up
    runs, start = 0, time.perf_counter()
    while runs == 0 or time.perf_counter() - start < seconds:
        batched_logits(backend, texts, batch_size=batch_size, pad_index=backend.pad_index)
        runs += 1
    return runs * len(texts) / (time.perf_counter() - start)
