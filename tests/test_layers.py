"""The layers of docs/architecture.md are real: no module imports one from a layer above its
own, and no two modules import each other, directly or round a loop. The layer table is read
from docs/architecture.md itself, so the page and this test cannot drift apart.

Every import counts, also one inside a function: a lazy import still ties the two modules."""
from __future__ import annotations

import ast
import re

from conftest import ROOT

SRC = ROOT / "src"
PAGE = ROOT / "docs" / "architecture.md"


def layers() -> list[list[str]]:
    """The packages of each layer, top layer first, from the page's table (its second column)."""
    text = PAGE.read_text()
    table = text.split("## Layers", 1)[1].split("\n\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`seglab" in line]
    return [re.findall(r"`(seglab[\w.]*)`", row.split("|")[2]) for row in rows]


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted((SRC / "seglab").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The seglab modules `name` imports (`from seglab.x import y` is seglab.x.y where y is a module)."""
    found = set()
    package = name if (SRC / name.replace(".", "/") / "__init__.py").exists() else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "seglab"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "seglab":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found - {name}


def layer_of(module: str, table: list[list[str]]) -> int:
    """The index of the layer holding `module` (0 = top): its longest matching package."""
    best = None
    for index, packages in enumerate(table):
        for package in packages:
            if module == package or module.startswith(package + "."):
                if best is None or len(package) > len(best[1]):
                    best = (index, package)
    assert best is not None, f"{module} is in no layer of {PAGE.name}'s table: add its package there."
    return best[0]


def test_the_page_has_a_layer_table():
    table = layers()
    assert len(table) >= 6 and all(table), table
    flat = [p for row in table for p in row]
    assert len(flat) == len(set(flat)), "a package is in two layers"


def test_no_module_imports_from_a_layer_above_its_own():
    table, found = layers(), modules()
    upward = []
    for name, tree in found.items():
        for target in imports(name, tree, set(found)):
            if layer_of(target, table) < layer_of(name, table):
                upward.append(f"{name} imports {target}")
    assert not upward, "imports that run up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    found = modules()
    graph = {name: imports(name, tree, set(found)) & set(found) for name, tree in found.items()}
    # A package's __init__ re-exporting its own modules is how a package shows its API, not a
    # cycle: edges from a package into its own submodules are left out.
    graph = {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()}
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
