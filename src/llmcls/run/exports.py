"""A run's export folder (`RUN/export/`, llmcls.run.layout): the only code that reaches its files. Finding an
exported model (the manifest read and checked against the run), reading its bytes (checked against the manifest's
digest), the digest of the weights an export is tied to, and the paths `llmcls export` writes.

A run directory is untrusted input: the manifest's file names must stay in `RUN/export/`, no link is followed, the
model file must have the digest the manifest records (checked on the bytes that are loaded), and the manifest's
network arguments must be meta.json's; any of these failing is a RunError (a damaged run), not a missing export.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llmcls.errors import RunError
from llmcls.run.claim import run_subdir
from llmcls.run.layout import (
    EXPORT_DIR,
    EXPORT_MANIFEST,
    EXPORT_MODELS,
    MANIFEST_VERSION,
    META,
    PREPARED_ONNX,
    QUANTIZE_PREFIX,
    QUANTIZED_ONNX,
    WEIGHTS,
)
from llmcls.run.paths import read_run_bytes, read_run_json, run_file

EXPORTED_MODELS = tuple(EXPORT_MODELS)  # the variants an export may hold: onnx, onnx-int8


@dataclass(frozen=True)
class ExportFiles:
    """Where `llmcls export` writes: the folder (created), each variant's model file, and the manifest."""

    folder: Path
    models: dict[str, Path]
    manifest: Path


def export_files(run_dir: Path) -> ExportFiles:
    """The export folder of a run (created, as llmcls's: llmcls.run.claim) and the paths of its files."""
    folder = run_subdir(run_dir, EXPORT_DIR)
    return ExportFiles(
        folder=folder,
        models={variant: folder / name for variant, name in EXPORT_MODELS.items()},
        manifest=folder / EXPORT_MANIFEST,
    )


@contextmanager
def quantize_scratch(files: ExportFiles) -> Iterator[tuple[Path, Path]]:
    """A scratch folder in the export folder, removed afterwards (left behind only by a killed export, and then
    a name of RUN_LAYOUT), and the two files int8 quantization writes there: the prepared and quantized models."""
    with tempfile.TemporaryDirectory(dir=files.folder, prefix=QUANTIZE_PREFIX) as tmp:
        yield Path(tmp) / PREPARED_ONNX, Path(tmp) / QUANTIZED_ONNX


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
        digest is checked where it is read (`read_export_model`).

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
                f"{path} was exported from other weights than {Path(run_dir) / WEIGHTS} "
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
            f"{manifest_path}: exported from a network with other arguments than {Path(run_dir) / META} "
            f"describes; the files come from different runs (export again with: llmcls export {run_dir})"
        )


def read_export_model(run_dir: str | Path, path: Path, *, sha256: str | None) -> bytes:
    """The bytes of the exported model at `path` (as `find_export` found it), read once and checked against
    `sha256`, the manifest's digest of it.

    Raises:
        RunError: the file is a link, or its bytes are not those the manifest records.
    """
    content = read_run_bytes(run_dir, EXPORT_DIR, path.name)
    if hashlib.sha256(content).hexdigest() != sha256:
        raise RunError(
            f"{path}: its bytes do not match their sha256 in {EXPORT_MANIFEST} (the file was changed "
            f"after the export); export again with: llmcls export {run_dir}"
        )
    return content
