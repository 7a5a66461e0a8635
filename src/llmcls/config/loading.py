"""From files and command lines to a validated `Config`: dotted overrides, loading, what may change when a run is
resumed (`config_drift`; the run's own config is read by llmcls.run.config_file), and saving one."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from llmcls.config.schema import Config, _known_keys, _problems, validate_config
from llmcls.config.training import ChunkingConfig
from llmcls.config.yaml_loader import _read_yaml, parse_yaml
from llmcls.errors import ConfigError, RunError, clip, echo
from llmcls.fileio import atomic_write_text


def parse_override(item: str) -> tuple[str, Any]:
    """Split `section.key=value`; the value is parsed as YAML (`3e-4`, `true`, `null`).

    YAML 1.1 reads `3e-4` as a string; pydantic turns numeric strings into numbers for numeric keys.
    """
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {echo(item)}: expected KEY=VALUE, e.g. train.lr=3e-4")
    try:
        parsed = parse_yaml(value) if value.strip() else ""
    except yaml.YAMLError:  # refused YAML included: the value stays text
        parsed = value
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply `--set a.b=value` items to a raw config mapping; only keys that exist in the schema are allowed."""
    known = set(_known_keys(Config))
    for item in overrides:
        key, value = parse_override(item)
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"--set {clip(key)}: no such config key{suggestion}")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: '{part}' must be a mapping to set '{key}'")
            node = child
        node[leaf] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply dotted overrides and validate.

    Args:
        path: the YAML file.
        overrides: items such as `train.lr=3e-4`; each key must exist in the schema.

    Returns:
        The validated config.

    Raises:
        ConfigError: the file is missing or invalid; the message names the file and the key.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{path}: the config must be a YAML mapping of sections, but the file is {kind}")
    raw = apply_overrides(raw, overrides or [], str(path))
    return validate_config(raw, str(path))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (mappings of free keys, such as class weights, stay whole)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and prefix + key not in {"train.class_weights"}:
            out.update(flatten(item, f"{prefix}{key}."))
        else:
            out[prefix + key] = item
    return out


def config_drift(saved: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    a, b = flatten(saved), flatten(new)
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def merge_chunking(base: ChunkingConfig, changes: dict[str, Any]) -> ChunkingConfig:
    """`base` with the keys of `changes` replaced (e.g. from the command line). A new `max_tokens` without a
    `stride` drops the old stride (the default, max_tokens // 2, follows the new window); `max_tokens` None
    turns chunking off.

    Raises:
        ConfigError: an unknown key or an invalid combination, naming the `chunking.` key.
    """
    unknown = sorted(set(changes) - set(ChunkingConfig.model_fields))
    if unknown:
        raise ConfigError(f"chunking.{clip(unknown[0])}: no such key (keys: {', '.join(ChunkingConfig.model_fields)})")
    values = base.model_dump()
    if "max_tokens" in changes and "stride" not in changes:
        values["stride"] = None
    values.update(changes)
    try:
        return ChunkingConfig.model_validate(values)
    except ValidationError as exc:
        problems = _problems(exc)
        raise ConfigError(problems if problems.startswith("chunking.") else f"chunking.{problems}") from None


def save_config(config: Config, path: Path) -> None:
    """Write the resolved config (every default filled in) as YAML."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False), RunError)  # a run's config.yaml
