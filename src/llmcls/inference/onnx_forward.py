"""The ONNX backend: running the models that `llmcls export` writes into a run directory, with onnxruntime and
numpy only.

Layout of `RUN/export/` (names in llmcls.run.layout; found and read through llmcls.run.exports; written by
llmcls.export.write):
    manifest.json     format version, opset, inputs and output, the network's arguments, the digest of the weights
                      exported, the models and the digest of each file
    model.onnx        float32
    model.int8.onnx   with `--quantize int8`: LSTM and linear weights as int8 (dynamic quantization)

A run directory is untrusted input: the manifest's file names must stay in `RUN/export/`, no link is followed,
the model file must have the digest the manifest records (checked on the bytes that are loaded), and the manifest's
network arguments must be meta.json's; any of these failing is a RunError (a damaged run), not a missing export.

This module imports neither torch nor onnx, so that predicting with an exported model starts fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmcls.errors import ExportError
from llmcls.run.exports import EXPORTED_MODELS, find_export, read_export_model

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


class OnnxClassifier:
    """An exported classifier in an onnxruntime session: logits of padded batches of token ids.

    Any padding id and any batch size or length may be used; no sorting or packing is needed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        pad_index: int,
        num_outputs: int,
        name: str = "onnx",
        threads: int | None = None,
        spinning: bool = True,
        content: bytes | None = None,
    ):
        """`threads`: onnxruntime's intra-op threads (None: its default, one per physical core). `spinning`: let
        idle intra-op threads spin for work (onnxruntime's default); a server turns it off, so that they leave
        the CPU to the threads that parse and answer requests. `content`: the bytes of the file at `path`, when
        the caller has read (and checked) them; default: onnxruntime reads the file."""
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path) if content is None else content, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ExportError(f"{path}: onnxruntime cannot load it: {exc}") from None
        self.path = Path(path)
        self.name = name
        self.pad_index = pad_index
        self.num_outputs = num_outputs

    @classmethod
    def from_run(
        cls, run_dir: str | Path, variant: str = "onnx", *, threads: int | None = None, spinning: bool = True
    ) -> OnnxClassifier:
        """The exported model `variant` ("onnx" or "onnx-int8") of a run, its file read once: those bytes are
        checked against the manifest's digest and loaded. `threads`, `spinning`: as the constructor's.

        Raises:
            ExportError: there is no such export, it is out of date, or onnxruntime is missing.
            RunError: the export is not what the manifest records, or not the run's (see `find_export`).
        """
        if variant not in EXPORTED_MODELS:
            raise ExportError(f"unknown exported model {variant!r}; expected one of {', '.join(EXPORTED_MODELS)}")
        import_onnxruntime()  # missing: said before the model file is read
        path, manifest, why = find_export(run_dir, variant)
        if path is None or manifest is None:  # a path comes with its manifest
            raise ExportError(why)
        content = read_export_model(run_dir, path, sha256=manifest["models"][variant].get("sha256"))
        args = manifest["model_args"]
        return cls(
            path,
            pad_index=args["pad_index"],
            num_outputs=args["num_outputs"],
            name=variant,
            threads=threads,
            spinning=spinning,
            content=content,
        )

    def logits(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Logits [batch, num_outputs] float32 of token ids [batch, seq_len] int64 and lengths [batch] int64 (>= 1)."""
        feed = {
            "token_ids": np.ascontiguousarray(token_ids, dtype=np.int64),
            "lengths": np.ascontiguousarray(lengths, dtype=np.int64),
        }
        return self.session.run(["logits"], feed)[0]

    __call__ = logits  # a Forward (llmcls.data.batching)
