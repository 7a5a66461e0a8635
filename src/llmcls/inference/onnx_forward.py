"""The ONNX backend: running the models that `llmcls export` writes into a run directory, with onnxruntime and
numpy only.

Layout of `RUN/export/` (names in llmcls.run.layout; written by llmcls.export.write):
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

import hashlib
from pathlib import Path

import numpy as np

from llmcls.errors import ExportError, RunError
from llmcls.run.layout import EXPORT_DIR, EXPORT_MANIFEST, EXPORT_MODELS, MANIFEST_VERSION, META, WEIGHTS
from llmcls.run.paths import read_run_bytes, read_run_json, run_file

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
    with open(run_file(run_dir, WEIGHTS), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_export(run_dir: str | Path, variant: str = "onnx") -> tuple[Path | None, dict | None, str]:
    """Where the exported model `variant` of a run is, if it exists and was made from the run's current weights.

    Returns:
        (path of the .onnx file, the manifest, "") when usable, else (None, manifest or None, why not). The file's
        digest is checked where it is read (`OnnxClassifier.from_run`).

    Raises:
        RunError: the manifest or the model file is a link, the manifest names a file outside RUN/export/, or its
            network arguments are not meta.json's.
    """
    run_dir = Path(run_dir)
    manifest_path = run_file(run_dir, EXPORT_DIR, EXPORT_MANIFEST, missing_ok=True)
    if not manifest_path.exists():
        return None, None, f"{run_dir} has no exported model (make one with: llmcls export {run_dir})"
    try:
        manifest = read_run_json(run_dir, EXPORT_DIR, EXPORT_MANIFEST)
    except RunError as exc:
        return None, None, f"{exc}; export again with: llmcls export {run_dir}"
    manifest = manifest if isinstance(manifest, dict) else {}
    if manifest.get("format_version") != MANIFEST_VERSION:
        return (
            None,
            manifest,
            (
                f"{manifest_path}: export format version {manifest.get('format_version')}, this "
                f"llmcls reads {MANIFEST_VERSION}; export again with: llmcls export {run_dir}"
            ),
        )
    models = manifest.get("models")
    entry = models.get(variant) if isinstance(models, dict) else None
    if entry is None:
        flag = " --quantize int8" if variant == "onnx-int8" else ""
        return None, manifest, f"{run_dir} has no {variant} export (make one with: llmcls export {run_dir}{flag})"
    path = run_file(run_dir, EXPORT_DIR, _file_name(entry, manifest_path), missing_ok=True)
    _check_same_network(run_dir, manifest, manifest_path)
    if not path.exists():
        return None, manifest, f"{path}: missing; export again with: llmcls export {run_dir}"
    try:
        current = weights_digest(run_dir)
    except OSError as exc:
        return None, manifest, f"{run_dir}: cannot read model.safetensors ({exc.strerror or exc})"
    if manifest.get("weights_sha256") != current:
        return (
            None,
            manifest,
            (
                f"{path} was exported from other weights than {run_dir / 'model.safetensors'} "
                f"(the run was trained further); export again with: llmcls export {run_dir}"
            ),
        )
    return path, manifest, ""


def _file_name(entry: object, manifest_path: Path) -> str:
    """A model entry's file: a plain name in RUN/export/ (run_file refuses a link there).

    Raises:
        RunError: it is not a plain file name (absolute, in another folder, `..`).
    """
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise RunError(f"{manifest_path}: file {name!r} is not a file name in {EXPORT_DIR}/; export again")
    return name


def _check_same_network(run_dir: Path, manifest: dict, manifest_path: Path) -> None:
    """The export's network arguments must be meta.json's, whose sizes the run's tables were checked against.

    Raises:
        RunError: they differ.
    """
    meta = read_run_json(run_dir, META)
    if not isinstance(meta, dict) or manifest.get("model_args") != meta.get("model_args"):
        raise RunError(
            f"{manifest_path}: exported from a network with other arguments than {run_dir / META} "
            f"describes; the files come from different runs (export again with: llmcls export {run_dir})"
        )


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
        if variant not in EXPORT_MODELS:
            raise ExportError(f"unknown exported model {variant!r}; expected one of {', '.join(EXPORT_MODELS)}")
        import_onnxruntime()  # missing: said before the model file is read
        path, manifest, why = find_export(run_dir, variant)
        if path is None or manifest is None:  # a path comes with its manifest
            raise ExportError(why)
        content = read_run_bytes(run_dir, EXPORT_DIR, path.name)
        if hashlib.sha256(content).hexdigest() != manifest["models"][variant].get("sha256"):
            raise RunError(
                f"{path}: its bytes do not match their sha256 in {EXPORT_MANIFEST} (the file was changed "
                f"after the export); export again with: llmcls export {run_dir}"
            )
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
