"""The README and docs/*.md name only what exists: the files and headings they link, the config keys, the commands
and their options, and the shipped configs; and docs/configuration.md documents every config key.

The checks read the Markdown as text (fenced code blocks, inline code spans, links) and ask the library itself what
exists: `llmcls.config.Config` for the keys, the Typer app for the commands. A failure names the file, the line and
the missing thing.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
import yaml
from pydantic import BaseModel

from llmcls.config import Config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages that other changes write; the README lists them ahead of time, so a link to them may wait for the file.
NOT_YET_WRITTEN = {"docs/serving.md"}
# Keys that the docs show on purpose as wrong (the error messages in docs/troubleshooting.md).
SHOWN_AS_WRONG = {"model.hiden_size", "train.learning_rate"}
# `model.safetensors`, `train.csv`: file names that begin like a config key.
FILE_SUFFIXES = {
    "csv",
    "tsv",
    "jsonl",
    "json",
    "yaml",
    "yml",
    "txt",
    "py",
    "pt",
    "onnx",
    "safetensors",
    "gz",
    "png",
    "md",
    "zip",
    "vec",
}


# --- reading Markdown -------------------------------------------------------------------------------------------


@dataclass
class Block:
    """A fenced code block: its language (may be empty) and its lines with their 1-based line numbers."""

    lang: str
    lines: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Page:
    path: Path
    prose: list[tuple[int, str]]  # lines outside code blocks
    blocks: list[Block]

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    def spans(self) -> list[tuple[int, str]]:
        """Inline code spans of the prose, `\\|` (a pipe escaped in a table) read as `|`."""
        return [(n, m.group(1).replace("\\|", "|")) for n, line in self.prose for m in re.finditer(r"`([^`]+)`", line)]

    def shell_lines(self) -> list[tuple[int, str]]:
        """Lines of the code blocks that hold commands (not Python, not YAML)."""
        return [item for b in self.blocks if b.lang not in ("python", "yaml") for item in b.lines]


def read_page(path: Path) -> Page:
    prose, blocks, block = [], [], None
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        fence = re.match(r"\s*```(\w*)", line)
        if fence and block is None:
            block = Block(fence.group(1))
        elif fence:
            blocks.append(block)
            block = None
        elif block is not None:
            block.lines.append((n, line))
        else:
            prose.append((n, line))
    assert block is None, f"{path.relative_to(ROOT)}: a code block is never closed"
    return Page(path, prose, blocks)


PAGES = [read_page(p) for p in DOCS]
page_ids = [p.name for p in PAGES]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Page) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in page.prose:
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            s = slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


# --- what exists ------------------------------------------------------------------------------------------------


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, bool]:
    """Every key of the config, dotted, mapped to whether it is a section (a nested model)."""
    keys = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        section = isinstance(ann, type) and issubclass(ann, BaseModel)
        keys[prefix + name] = section
        if section:
            keys.update(config_keys(ann, f"{prefix}{name}."))
    return keys


KEYS = config_keys()
SECTIONS = sorted(k for k, section in KEYS.items() if section)
KEY_IN_CODE = re.compile(rf"(?<![\w./-])((?:{'|'.join(SECTIONS)})\.([A-Za-z_]\w*))\b(?!\.\w)")


def cli_commands() -> tuple[set[str], dict[str, set[str]]]:
    """The app's own options and each command's options (long and short), from the Typer app wherever it lives."""
    try:
        from llmcls.cli import app
    except ImportError:
        from llmcls.cli.app import app
    if isinstance(app, types.ModuleType):  # llmcls.cli is a package and `app` its submodule
        app = app.app
    group = typer.main.get_command(app)

    def options(command) -> set[str]:
        return {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}

    return options(group), {name: options(cmd) for name, cmd in group.commands.items()}


GLOBAL_OPTIONS, COMMANDS = cli_commands()


# --- the checks -------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@pytest.mark.parametrize("page", PAGES, ids=page_ids)
def test_links_and_images_point_to_what_exists(page):
    problems = []
    for n, line in page.prose:
        for m in LINK.finditer(re.sub(r"`[^`]*`", "``", line)):
            target = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            path = (page.path.parent / path_part).resolve() if path_part else page.path
            where = f"{page.name}:{n}: link {target}"
            if not path.exists():
                rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
                if rel not in NOT_YET_WRITTEN:
                    problems.append(f"{where}: no file {rel}")
                continue
            if anchor and path.suffix == ".md" and anchor not in anchors(read_page(path)):
                problems.append(f"{where}: no heading #{anchor} in {path.relative_to(ROOT).as_posix()}")
    assert not problems, "\n".join(problems)


def yaml_keys(page: Page) -> list[tuple[int, str]]:
    """(line, dotted key) of every key in the page's YAML blocks, read as config fragments."""
    found = []

    def walk(node, prefix: str, first_line: int) -> None:
        for key_node, value in node.value:
            key = prefix + str(key_node.value)
            found.append((first_line + key_node.start_mark.line, key))
            if KEYS.get(key) and isinstance(value, yaml.MappingNode):
                walk(value, key + ".", first_line)

    for block in page.blocks:
        if block.lang == "yaml" and block.lines:
            root = yaml.compose("\n".join(line for _, line in block.lines))
            assert isinstance(root, yaml.MappingNode), f"{page.name}:{block.lines[0][0]}: YAML block is no mapping"
            walk(root, "", block.lines[0][0])
    return found


@pytest.mark.parametrize("page", PAGES, ids=page_ids)
def test_config_keys_exist(page):
    problems = [
        f"{page.name}:{n}: YAML key {key} is not in llmcls.config.Config"
        for n, key in yaml_keys(page)
        if key not in KEYS
    ]
    for n, text in page.spans() + page.shell_lines():
        for m in KEY_IN_CODE.finditer(text):
            key, last = m.groups()
            if last not in FILE_SUFFIXES and key not in KEYS and key not in SHOWN_AS_WRONG:
                problems.append(f"{page.name}:{n}: `{key}` is not in llmcls.config.Config")
    assert not problems, "\n".join(problems)


def test_every_config_key_is_in_the_configuration_reference():
    page = next(p for p in PAGES if p.name == "docs/configuration.md")
    documented = {key for _, key in yaml_keys(page)}
    missing = sorted(set(KEYS) - documented)
    assert not missing, f"docs/configuration.md: the annotated YAML lacks {', '.join(missing)}"


def test_keys_shown_as_wrong_do_not_exist():
    assert not SHOWN_AS_WRONG & set(KEYS), "a key the docs show as wrong now exists: take it out of SHOWN_AS_WRONG"


def invocations(text: str, shell: bool = True) -> list[list[str]]:
    """The words after each `llmcls` that starts a command in `text`, up to a comment, `&&`, `;` or a pipe into
    another program. A command starts at the start of `text` or after `-m` (torchrun), and in a shell line also
    after `&&`, `;` or a pipe; an `llmcls` inside a sentence (an error message's "another llmcls process is writing
    this run") starts nothing."""
    start = r"(?:^\s*|-m\s+|&&\s*|;\s*|\|\s*)" if shell else r"(?:^\s*|-m\s+)"
    out = []
    for m in re.finditer(start + r"\bllmcls(?=\s)", text):
        rest = re.split(r"\s#|&&|;|\|\s+(?=[A-Za-z])", text[m.end() :])[0]
        out.append(rest.split())
    return out


def command_problems(words: list[str]) -> list[str]:
    while words and words[0] in GLOBAL_OPTIONS:
        words = words[1:]
    if not words or not re.fullmatch(r"[a-z][\w-]*", words[0]):  # `llmcls --help`, `llmcls COMMAND --help`, ...
        bad = [w for w in words[:1] if w.startswith("-")]
        return [f"llmcls has no option {w}" for w in bad]
    command, *args = words
    if command not in COMMANDS:
        return [f"llmcls has no command {command!r} (it has {', '.join(sorted(COMMANDS))})"]
    problems = []
    for word in args:
        m = re.match(r"\[?(--?[A-Za-z][\w-]*)", word)
        if m and m.group(1) not in COMMANDS[command]:
            problems.append(f"llmcls {command} has no option {m.group(1)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=page_ids)
def test_commands_and_options_exist(page):
    problems = []
    found = [(n, text, False) for n, text in page.spans()] + [(n, text, True) for n, text in page.shell_lines()]
    for n, text, shell in found:
        for words in invocations(text, shell):
            problems += [f"{page.name}:{n}: {p}" for p in command_problems(words)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=page_ids)
def test_shipped_configs_named_exist(page):
    problems = []
    for n, line in page.prose + [item for b in page.blocks for item in b.lines]:
        for name in re.findall(r"(?<![\w./-])configs/[\w.-]+\.ya?ml", line):
            if not (ROOT / name).is_file():
                problems.append(f"{page.name}:{n}: {name} does not exist")
    assert not problems, "\n".join(problems)


def test_the_checks_see_what_they_check():
    """Guards against a parser that silently finds nothing: the README and the reference are really read."""
    readme = PAGES[0]
    shown = {words[0] for _, line in readme.shell_lines() for words in invocations(line) if words}
    assert not set(COMMANDS) - shown, f"README.md: no example of llmcls {', '.join(sorted(set(COMMANDS) - shown))}"
    assert len(yaml_keys(next(p for p in PAGES if p.name == "docs/configuration.md"))) >= len(KEYS)
    assert "python-api" in anchors(readme) and len(SECTIONS) >= 5
    assert command_problems(["trian"]) and command_problems(["predict", "--colour"]) == [
        "llmcls predict has no option --colour"
    ]
    assert [m.group(1) for m in KEY_IN_CODE.finditer("--set train.lr=3e-4 model.safetensors data/train.csv")] == [
        "train.lr",
        "model.safetensors",
    ]  # the suffix check drops the second


CODE_PATH = re.compile(r"^(?:src/llmcls|tests|scripts|configs)/[\w/.-]+$")
DOTTED = re.compile(r"^llmcls(?:\.\w+)+$")


def code_reference_problem(ref: str) -> str | None:
    """Why `ref` (a path in the repository, or a dotted `llmcls.module.name`) names nothing, or None."""
    if CODE_PATH.match(ref):
        return None if (ROOT / ref.rstrip("/")).exists() else f"no file {ref}"
    import importlib

    parts = ref.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return f"{'.'.join(parts[:cut])} has no {'.'.join(parts[cut:])}"
            obj = getattr(obj, attr)
        return None
    return f"no module {ref}"


@pytest.mark.parametrize("page", PAGES, ids=page_ids)
def test_code_they_name_exists(page):
    """Module paths and dotted names in code spans (`src/llmcls/training/loop.py`, `llmcls.run.layout.RUN_LAYOUT`)
    still name something after code moves."""
    problems = []
    for n, span in page.spans():
        if (CODE_PATH.match(span) or DOTTED.match(span)) and (problem := code_reference_problem(span)):
            problems.append(f"{page.name}:{n}: `{span}`: {problem}")
    assert not problems, "\n".join(problems)
