"""The ONNX backend: running the models that `llmcls export` writes into a run directory, with onnxruntime and
numpy only.

Layout of `RUN/export/` (names in llmcls.run.layout; written by llmcls.export.write):
    manifest.json     format version, opset, inputs and output, the digest of the weights exported, the models
    model.onnx        float32
    model.int8.onnx   with `--quantize int8`: LSTM and linear weights as int8 (dynamic quantization)

This module imports neither torch nor onnx, so that predicting with an exported model starts fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from llmcls.errors import ExportError
from llmcls.run.layout import EXPORT_DIR, EXPORT_MANIFEST, EXPORT_MODELS, MANIFEST_VERSION, WEIGHTS

INSTALL_HINT = "pip install 'llmcls[onnx]'"


def import_onnxruntime():
    """The onnxruntime module.

    Raises:
        ExportError: it is not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(f"onnxruntime is not installed; {INSTALL_HINT}") from None
    return onnxruntime


def weights_digest(run_dir: Path) -> str:
    """sha256 of the run's `model.safetensors`: ties an export to the weights it was made from."""
    digest = hashlib.sha256()
    with open(run_dir / WEIGHTS, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_export(run_dir: str | Path, variant: str = "onnx") -> tuple[Path | None, dict | None, str]:
    """Where the exported model `variant` of a run is, if it exists and was made from the run's current weights.

    Returns:
        (path of the .onnx file, the manifest, "") when usable, else (None, manifest or None, why not).
    """
    run_dir = Path(run_dir)
    manifest_path = run_dir / EXPORT_DIR / EXPORT_MANIFEST
    if not manifest_path.exists():
        return None, None, f"{run_dir} has no exported model (make one with: llmcls export {run_dir})"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, None, f"{manifest_path}: unreadable ({exc}); export again with: llmcls export {run_dir}"
    if manifest.get("format_version") != MANIFEST_VERSION:
        return None, manifest, (f"{manifest_path}: export format version {manifest.get('format_version')}, this "
                                f"llmcls reads {MANIFEST_VERSION}; export again with: llmcls export {run_dir}")
    entry = manifest.get("models", {}).get(variant)
    if entry is None:
        flag = " --quantize int8" if variant == "onnx-int8" else ""
        return None, manifest, f"{run_dir} has no {variant} export (make one with: llmcls export {run_dir}{flag})"
    path = run_dir / EXPORT_DIR / entry["file"]
    if not path.exists():
        return None, manifest, f"{path}: missing; export again with: llmcls export {run_dir}"
    try:
        current = weights_digest(run_dir)
    except OSError as exc:
        return None, manifest, f"{run_dir}: cannot read model.safetensors ({exc.strerror or exc})"
    if manifest.get("weights_sha256") != current:
        return None, manifest, (f"{path} was exported from other weights than {run_dir / 'model.safetensors'} "
                                f"(the run was trained further); export again with: llmcls export {run_dir}")
    return path, manifest, ""


class OnnxClassifier:
    """An exported classifier in an onnxruntime session: logits of padded batches of token ids.

    Any padding id and any batch size or length may be used; no sorting or packing is needed.
    """

    def __init__(self, path: str | Path, pad_index: int, num_outputs: int, name: str = "onnx",
                 threads: int | None = None, spinning: bool = True):
        """`threads`: onnxruntime's intra-op threads (None: its default, one per physical core). `spinning`: let
        idle intra-op threads spin for work (onnxruntime's default); a server turns it off, so that they leave
        the CPU to the threads that parse and answer requests."""
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ExportError(f"{path}: onnxruntime cannot load it: {exc}") from None
        self.path = Path(path)
        self.name = name
        self.pad_index = pad_index
        self.num_outputs = num_outputs

    @classmethod
    def from_run(cls, run_dir: str | Path, variant: str = "onnx", threads: int | None = None) -> "OnnxClassifier":
        """The exported model `variant` ("onnx" or "onnx-int8") of a run.

        Raises:
            ExportError: there is no such export, it is out of date, or onnxruntime is missing.
        """
        if variant not in EXPORT_MODELS:
            raise ExportError(f"unknown exported model {variant!r}; expected one of {', '.join(EXPORT_MODELS)}")
        path, manifest, why = find_export(run_dir, variant)
        if path is None:
            raise ExportError(why)
        return cls(path, manifest["pad_index"], manifest["num_outputs"], variant, threads)

    def logits(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Logits [batch, num_outputs] float32 of token ids [batch, seq_len] int64 and lengths [batch] int64 (>= 1)."""
        feed = {"token_ids": np.ascontiguousarray(token_ids, dtype=np.int64),
                "lengths": np.ascontiguousarray(lengths, dtype=np.int64)}
        return self.session.run(["logits"], feed)[0]

    __call__ = logits  # a Forward (llmcls.data.batching)
