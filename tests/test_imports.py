"""Import rules, checked on the source (no module is imported here):

1. variants/ and tasks/ import from harness/ only leaf foundation modules, i.e. modules that
   themselves import nothing from the project (today harness.config and harness.registry).
2. No import cycles anywhere in harness/, variants/ and tasks/.

Every import statement counts wherever it is (module level, inside a function, under
TYPE_CHECKING): a lazy import is still a dependency. Relative imports are resolved, `from
package import name` is an edge to the submodule when `name` is one, and a string literal that
is the dotted name of a project module (importlib.import_module by name, as the CLI's command
table) is an edge too.
"""
from __future__ import annotations

import ast
import textwrap
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "variants", "tasks")
FOUNDATION_USERS = ("variants", "tasks")


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    files = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def _known(name: str, files: dict[str, Path]) -> str | None:
    """The project module `name` names, or its closest enclosing project package."""
    while name and name not in files:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, files: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported project module, line) for every import in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
            names = [node.value] if node.value in files else []
        for name in names:
            target = _known(name, files)
            if target is not None and target != module:
                found.append((target, node.lineno))
    return found


def graph(root: Path = ROOT, packages=PACKAGES) -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    """{module: {imported module: first line}} over the project's packages."""
    files = module_files(root, packages)
    edges = {}
    for module, path in files.items():
        edges[module] = {}
        for target, line in sorted(imports_of(module, path, files), key=lambda e: e[1]):
            edges[module].setdefault(target, line)
    return edges, files


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle (a, b, ..., a) through each module that lies on a cycle, deduplicated."""
    found, seen = [], set()
    for start in sorted(edges):
        parent = {start: None}
        queue = deque([start])
        cycle = None
        while queue and cycle is None:
            node = queue.popleft()
            for nxt in sorted(edges[node]):
                if nxt == start:
                    chain = [node]
                    while parent[chain[-1]] is not None:
                        chain.append(parent[chain[-1]])
                    cycle = [start, *reversed(chain[:-1]), start]
                    break
                if nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        if cycle and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            found.append(cycle)
    return found


def describe(chain: list[str], edges, files, root: Path = ROOT) -> str:
    """'a -> b (a's file:line); b -> c (...)' for a chain of imports."""
    return "; ".join(f"{a} -> {b} ({files[a].relative_to(root).as_posix()}:{edges[a][b]})"
                     for a, b in zip(chain, chain[1:]))


def foundation_violations(edges) -> list[list[str]]:
    """Chains user -> harness module (-> what that module imports) that break rule 1."""
    out = []
    for module in sorted(edges):
        if module.split(".")[0] not in FOUNDATION_USERS:
            continue
        for target in sorted(edges[module]):
            if target.split(".")[0] != "harness":
                continue
            parents = [".".join(target.split(".")[:i]) for i in range(1, target.count(".") + 1)]
            for used in [target, *parents]:  # importing harness.x runs harness/__init__ as well
                for further in sorted(edges[used]):
                    out.append([module, used, further] if used == target else [module, target, used, further])
    return out


def test_the_graph_sees_every_kind_of_import():
    """The checker must see what it is asked to check, or the two rules below pass vacuously."""
    edges, _ = graph()
    assert "harness.config" in edges["variants.base"]  # module level
    assert "harness.training.train" in edges["harness.commands.run"]  # inside a function
    assert "harness.commands.run" in edges["harness.cli"]  # by name, through importlib
    assert "variants.fast" in edges["variants.lstm"]  # `from package import submodule`


def test_the_checker_finds_a_lazy_relative_cycle_and_a_bad_foundation(tmp_path):
    files = {
        "harness/__init__.py": "",
        "harness/config.py": "import os\n",
        "harness/a.py": "from .b import thing\n",
        "harness/b.py": "def thing():\n    from harness import a\n    return a\n",
        "harness/c.py": "CALLS = 'harness.d'\n",
        "harness/d.py": "from harness.c import CALLS\n",
        "harness/heavy.py": "from harness import config\n",
        "variants/__init__.py": "from variants import cell\n",
        "variants/cell.py": "from harness.config import *\nfrom harness.heavy import x\n",
        "tasks/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    edges, _ = graph(tmp_path)
    assert sorted(map(tuple, cycles(edges))) == [("harness.a", "harness.b", "harness.a"),
                                                 ("harness.c", "harness.d", "harness.c")]
    assert foundation_violations(edges) == [["variants.cell", "harness.heavy", "harness.config"]]


def test_variants_and_tasks_use_only_leaf_foundation_modules_of_the_harness():
    edges, files = graph()
    used = {t for m in edges if m.split(".")[0] in FOUNDATION_USERS for t in edges[m] if t.startswith("harness")}
    assert "harness.config" in used  # the rule is exercised, not vacuous
    bad = foundation_violations(edges)
    assert not bad, ("variants/ and tasks/ may import only harness modules that import nothing from the "
                     "project:\n  " + "\n  ".join(describe(chain, edges, files) for chain in bad))


def test_there_are_no_import_cycles():
    edges, files = graph()
    found = cycles(edges)
    assert not found, f"{len(found)} import cycle(s):\n  " + "\n  ".join(
        describe(chain, edges, files) for chain in found)


@pytest.mark.parametrize("leaf", ["harness.config", "harness.registry", "harness.errors", "harness.device"])
def test_foundation_modules_are_leaves(leaf):
    edges, _ = graph()
    assert edges[leaf] == {}, f"{leaf} imports {sorted(edges[leaf])}"
