"""Reading YAML with bounds: one loader for config files, `--set` values and runs' config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmcls.errors import ConfigError, clip

# Anchors and aliases may repeat parts of a config (`<<: *defaults`), but a file whose aliases expand it by more
# than this many values beyond those it writes out is refused before anything walks the expansion: ten aliases to
# ten aliases to ... (an "alias bomb") makes 10**9 values of 851 bytes, and validating or quoting them would take
# minutes and gigabytes. A config is a few dozen values; this is far above any hand-written repetition.
MAX_ALIAS_VALUES = 10_000
MAX_YAML_DEPTH = 64  # nesting levels; a config has 3 or 4


class _YamlRefused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than MAX_YAML_DEPTH, aliases that refer to the node holding them, and
    aliases that expand the document by more than MAX_ALIAS_VALUES values."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth, self._repeated = 0, 0
        self._sizes: dict[int, int | None] = {}  # None: being walked

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH:
            raise _YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            self._expanded(node)
        return node

    def _expanded(self, node: yaml.Node) -> int:
        """How many values `node` holds once its aliases are expanded (each node is walked once)."""
        self._sizes[id(node)] = None  # in progress: met again below, it would hold itself
        children = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        size = 1
        for child in children:
            if id(child) not in self._sizes:
                size += self._expanded(child)
                continue
            known = self._sizes[id(child)]  # an alias
            if known is None:
                raise _YamlRefused("an alias refers to a node that holds it (a recursive structure)", node.start_mark)
            self._repeated += known
            if self._repeated > MAX_ALIAS_VALUES:
                raise _YamlRefused(
                    f"aliases expand the document by more than {MAX_ALIAS_VALUES} values (an alias "
                    "bomb?); anchors and aliases may repeat small parts of a config only",
                    node.start_mark,
                )
            size += known
        self._sizes[id(node)] = size
        return size


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely (no tags that make objects) and boundedly (see _BoundedLoader).

    Raises:
        yaml.YAMLError: invalid or refused YAML; `problem` and `problem_mark` say what and where.
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    return parse_config_text(text, str(path))


def parse_config_text(text: str, source: str) -> Any:
    """The text of a YAML config (a file, or a run's config.yaml), parsed by `parse_yaml`: safely and boundedly.

    Raises:
        ConfigError: invalid or refused YAML, naming `source`, the line and the column.
    """
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = clip(getattr(exc, "problem", None) or "invalid YAML")
        verdict = "YAML refused" if isinstance(exc, _YamlRefused) else "not valid YAML"
        raise ConfigError(f"{source}: {verdict}{where}: {problem}") from None
