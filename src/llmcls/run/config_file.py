"""A run's config.yaml: where it is, written again when a resumed run may have changed a key, and read back to
resume the run (only the keys that are safe to change may change)."""

from __future__ import annotations

from pathlib import Path

from llmcls.config import SAFE_ON_RESUME, Config, config_drift, load_config, parse_override, save_config
from llmcls.config.schema import _get
from llmcls.errors import ConfigError
from llmcls.run.layout import CONFIG


def config_path_of(run_dir: str | Path) -> Path:
    """The path of a run's resolved config (config.yaml)."""
    return Path(run_dir) / CONFIG


def save_run_config(run_dir: Path, config: Config) -> None:
    """Write the run's resolved config (every default filled in)."""
    save_config(config, config_path_of(run_dir))


def resume_config(run_dir: str | Path, overrides: list[str] | None = None, config_path: Path | None = None) -> Config:
    """The config to resume a run with: the run's own, or `config_path` if given, plus `--set` overrides.

    Only keys in SAFE_ON_RESUME may be overridden, and a given config may differ from the run's only in those
    keys (and `name`/`output_dir`, since the run directory is given).

    Raises:
        ConfigError: naming the keys that would change what was already computed.
    """
    overrides = overrides or []
    saved = load_config(config_path_of(run_dir))
    keys = [parse_override(item)[0] for item in overrides]
    unsafe = [key for key in keys if key not in SAFE_ON_RESUME]
    if unsafe:
        raise ConfigError(
            f"--set {', '.join(unsafe)}: cannot change when resuming, it would change what was "
            f"already computed; keys that may change: {', '.join(sorted(SAFE_ON_RESUME))}"
        )
    new = load_config(config_path or config_path_of(run_dir), overrides)
    for key in new.auto_keys():  # `auto` was resolved when the run started: keep what it chose
        section, leaf = key.split(".")
        setattr(getattr(new, section), leaf, _get(saved, key))
    drift = [key for key in config_drift(saved, new) if key not in keys and key not in ("name", "output_dir")]
    if drift:
        raise ConfigError(
            f"{config_path}: differs from the config of {run_dir} in {', '.join(drift)}; resume "
            "without --config, or pass --set for keys that are safe to change "
            f"({', '.join(sorted(SAFE_ON_RESUME))})"
        )
    return new
