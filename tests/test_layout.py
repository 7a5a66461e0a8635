"""The package's shape (docs/architecture.md): layers whose imports point down only, no import cycle, few modules
at the top, and functions short enough to hold in the head. Imports are read with `ast`, function-level ones
included, so a lazy import cannot hide an upward dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "llmcls"

# Lowest first. A module may import from its own layer and the layers below it, never from one above. The data
# flows config -> data -> model -> training -> run directory -> inference -> export/serve -> cli; the imports
# differ only where training uses what is below it in the flow: it writes the run directory (run/), draws its
# plots, scores the model on the validation split (inference/) and ends by writing the ONNX export (export/).
# profiling and tuning/ are tools over a training run.
LAYERS = [
    {"errors", "events", "fileio", "records"},
    {"config"},
    {"device", "precision", "embeddings"},
    {"data"},
    {"adapt"},
    {"model", "encoder"},
    {"run"},
    {"plots"},
    {"inference"},
    {"export"},
    {"training"},
    {"profiling", "tuning"},
    {"serve"},
    {"cli"},
    {"__main__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(path: Path, known: set[str]) -> set[str]:
    """The llmcls modules `path` imports, at any depth of the code (the package itself excluded: its only name
    used inside, `__version__`, is defined before anything else is imported)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name.startswith("llmcls.") and name in known)
    return found


def layer(module: str) -> str:
    return module.split(".")[1]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, set(known)) for name, path in known.items()}


def test_every_module_has_a_layer():
    unplaced = sorted({layer(m) for m in modules() if m != "llmcls" and layer(m) not in RANK})
    assert not unplaced, f"add these to LAYERS (and docs/architecture.md): {unplaced}"


def test_imports_point_down_only():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module != "llmcls"  # the public facade: llmcls.load
        for target in targets
        if RANK[layer(target)] > RANK[layer(module)]
    ]
    assert not upward


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(target) :] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_at_most_a_dozen_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
    assert all((p / "__init__.py").is_file() for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")


def test_no_function_over_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long


TESTS = Path(__file__).resolve().parent


def test_tests_import_helpers_from_support_not_conftest_nor_sys_path():
    """conftest.py holds fixtures only; what tests import lives in tests/support (importable because pytest puts
    tests/ on sys.path for the rootdir conftest), so no test imports conftest or edits sys.path."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        where = path.relative_to(TESTS)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "conftest" for a in node.names):
                found.append(f"{where}:{node.lineno} imports conftest")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "conftest":
                found.append(f"{where}:{node.lineno} imports from conftest")
            elif isinstance(node, ast.Attribute) and node.attr == "syspath_prepend":
                found.append(f"{where}:{node.lineno} prepends to sys.path")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
                and not isinstance(node.ctx, ast.Load)
            ):
                found.append(f"{where}:{node.lineno} assigns sys.path")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "path"
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "sys"
            ):
                found.append(f"{where}:{node.lineno} calls sys.path.{node.func.attr}")
    assert not found


def test_public_signatures_take_their_options_by_keyword():
    """STYLE.md, "Seams": a public function or constructor of more than three parameters takes those past its
    first two by keyword (Typer commands excepted: Typer calls them)."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name.startswith("_") and node.name != "__init__":
                continue
            if any(
                isinstance(d, ast.Call) and getattr(d.func, "attr", "") in ("command", "callback")
                for d in node.decorator_list
            ):
                continue
            positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
            if len(positional) + len(node.args.kwonlyargs) > 3 and len(positional) > 2:
                found.add(f"{path.relative_to(SRC)}:{node.name}")
    assert not found, f"take these by keyword past the first two: {sorted(found)}"


# What a module outside llmcls/run/ may take from llmcls.run.layout: versions and family names, never a file name.
LAYOUT_NAMES_OUTSIDE_RUN = {"FORMAT_VERSION", "MANIFEST_VERSION", "LSTM_FAMILY", "ENCODER_FAMILY"}


def run_file_names() -> set[str]:
    """The names of files llmcls writes in a run directory (llmcls.run.layout.RUN_LAYOUT, at any depth)."""
    from llmcls.run.layout import RUN_LAYOUT

    names, folders = set(), [RUN_LAYOUT]
    while folders:
        for name, inside in folders.pop().items():
            names.add(name)
            if inside:
                folders.append(inside)
    return {name for name in names if "." in name}


def test_only_run_reaches_the_files_of_a_run_directory():
    """issue 22: llmcls/run/ is the only reader and writer of a run's files. Elsewhere, no module imports a run
    file's or folder's name from llmcls.run.layout, and no path is built from a run directory and a run file's name
    (`run_dir / "config.yaml"`); they call run/'s functions (run.files, run.results, run.artifacts, run.exports,
    run.config_file, run.checkpoint, run.paths)."""
    file_names = run_file_names()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(SRC)
        if where.parts[1] == "run":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "llmcls.run.layout":
                found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names]
                found = [f for f in found if f.rsplit(" ", 1)[-1] not in LAYOUT_NAMES_OUTSIDE_RUN]
            elif isinstance(node, ast.Import) and any(a.name == "llmcls.run.layout" for a in node.names):
                found.append(f"{where}:{node.lineno} imports llmcls.run.layout")
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Div)
                and isinstance(node.right, ast.Constant)
                and node.right.value in file_names
                and "run" in ast.unparse(node.left)
            ):
                found.append(f"{where}:{node.lineno} builds {ast.unparse(node)}")
    assert not found, found


def test_no_module_over_400_lines():
    """issue 22: a module holds one job; past 400 lines it holds more than one."""
    long = [
        f"{p.relative_to(SRC)} ({n} lines)"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, long
