"""The layout's contracts, read from the source: every import counts, function-level ones too
(they still make one module depend on another; they only delay loading a heavy library).

- no import cycles between the package's modules;
- nothing imports a stage module (stages/) but the runner and the command line;
- model/ knows no pipeline: it imports only model/ and the shared leaves (errors, units);
- the core never imports Textual;
- no module over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retclip_pipeline", "retclip_tui")
MAX_LINES = 400
# What the model may use beside itself: the shared leaves, and where the hub client points.
LEAVES = {
    "retclip_pipeline.errors",
    "retclip_pipeline.units",
    "retclip_pipeline.atomic",
    "retclip_pipeline.hub.env",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules this one imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - node.level + 1]
                prefix = ".".join(stem + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        else:
            continue
        for target in targets:
            # the longest known module the name starts with ("pkg.mod.func" -> "pkg.mod")
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not (is_package and target.startswith(name)):
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # importing a package's module runs the package's __init__: not an edge we design with
    for edges in graph.values():
        edges.difference_update(PACKAGES)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_counting_function_level_imports():
    assert _cycles(_graph()) == []


def test_only_the_runner_and_the_command_line_import_stage_modules():
    allowed = ("retclip_pipeline.runner", "retclip_pipeline.stages", "retclip_pipeline.cli")
    offenders = {
        name: sorted(t for t in targets if t.startswith("retclip_pipeline.stages."))
        for name, targets in _graph().items()
        if not name.startswith(allowed) and name != "retclip_pipeline.__main__"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_model_knows_no_pipeline():
    offenders = {
        name: sorted(
            t for t in targets if not t.startswith("retclip_pipeline.model") and t not in LEAVES
        )
        for name, targets in _graph().items()
        if name.startswith("retclip_pipeline.model")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_core_never_names_textual():
    for name, path in _modules().items():
        if name.startswith("retclip_pipeline"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(n.split(".")[0] in ("textual", "retclip_tui") for n in names), name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_a_module_fits_a_sitting(name):
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


def test_the_graph_sees_function_level_imports():
    """The checks above mean something only if the reader finds imports inside functions."""
    graph = _graph()
    assert "retclip_pipeline.training.trainer" in graph["retclip_pipeline.stages.train"]
