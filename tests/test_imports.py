"""Import rules, checked on the source (no module is imported here):

1. variants/ and tasks/ import from harness/ only leaf foundation modules, i.e. modules that
   themselves import nothing from the project (today harness.config and harness.registry).
2. No import cycles anywhere in harness/, variants/ and tasks/.
3. Each part of the project (a package of harness/, a top-level module of harness/, variants,
   tasks) imports only the parts its row of ARROWS names, and MLflow and Optuna are imported
   only by the part THIRD_PARTY names.

Every import statement counts wherever it is (module level, inside a function, under
TYPE_CHECKING): a lazy import is still a dependency; for MLflow and Optuna too, with
importlib.import_module("name") and __import__("name") calls. Relative imports are resolved, `from
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

# The leaves every part may use: configuration, registries, user errors, devices, the
# database lock, output folders, connection URLs shown without passwords and their time-out.
# Each imports nothing of the project but harness.config.
FOUNDATION = {"harness.config", "harness.registry", "harness.errors", "harness.device", "harness.dblock",
              "harness.outdirs", "harness.connections"}

# part -> the other parts it may import (a part: a package of harness/, a top-level module of
# harness/, variants, tasks). A part that has no row here fails the test: give it one.
ARROWS = {
    # the package itself holds the version only; `python -m harness` is the CLI
    "harness": set(),
    "harness.__main__": {"harness.cli"},
    # the entry point, and the only importer of the commands (by name, one command at a time)
    "harness.cli": {"harness.commands", "harness.config", "harness.errors", "harness.registry", "variants", "tasks"},
    # the command line's layer: parses arguments, calls the parts, prints; nothing below imports it
    "harness.commands": FOUNDATION | {"harness.training", "harness.sweep", "harness.reproduce", "harness.report",
                                      "harness.bench", "harness.claims", "harness.tracking", "harness.analysis",
                                      "variants", "tasks"},
    # one run: the spec, the loop, checkpoints, probes (its figure drawn by the one plotting stack);
    # it knows no sweep, claim or report
    "harness.training": FOUNDATION | {"harness.tracking", "harness.analysis", "variants", "tasks"},
    # Optuna studies whose trials are runs, each an MLflow child run
    "harness.sweep": FOUNDATION | {"harness.training", "harness.tracking"},
    # a claim's plan run to its end: grid runs, tuning studies (through the sweep), ladders
    "harness.reproduce": FOUNDATION | {"harness.claims", "harness.sweep", "harness.training", "harness.tracking"},
    # reads runs (through tracking), never studies; verdicts and figures come from the claims
    "harness.report": FOUNDATION | {"harness.claims", "harness.analysis", "harness.tracking"},
    # claims declare runs (training specs) and judge their tables (analysis); they run nothing
    "harness.claims": FOUNDATION | {"harness.analysis", "harness.training", "variants", "tasks"},
    # speed and overhead measurements of the cells and of tracking
    "harness.bench": FOUNDATION | {"harness.training", "harness.tracking", "variants", "tasks"},
    # statistics and plotting over plain tables, a leaf any part may use: nothing of the harness
    "harness.analysis": set(),
    # the run store: the only MLflow user
    "harness.tracking": FOUNDATION,
    # the foundation leaves
    "harness.config": set(), "harness.registry": set(), "harness.errors": set(), "harness.device": set(),
    "harness.dblock": set(), "harness.outdirs": {"harness.config"}, "harness.connections": {"harness.config"},
    # the zoo: leaf foundation modules only (rule 1 says which)
    "variants": {"harness.config", "harness.registry"},
    "tasks": {"harness.config", "harness.registry"},
}

# third-party package -> the one part that may import it
THIRD_PARTY = {
    "mlflow": "harness.tracking",  # the store is MLflow's; every other part goes through tracking
    "optuna": "harness.sweep",  # studies are Optuna's; others read what harness.sweep.summary returns
}


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


def part_of(module: str) -> str:
    """harness.sweep.study -> harness.sweep; harness.cli -> harness.cli; variants.lstm -> variants."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "harness" else parts[0]


def external_imports(path: Path) -> list[tuple[str, int]]:
    """(top-level package name, line) for every absolute import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.module.split(".")[0], node.lineno))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "__import__")):
            found.append((node.args[0].value.split(".")[0], node.lineno))
    return found


def arrow_violations(edges, files, root: Path = ROOT) -> list[str]:
    """One line for each import that rule 3 forbids, and for each part that has no row."""
    out = []
    for part in sorted({part_of(m) for m in files} - set(ARROWS)):
        out.append(f"{part}: no row in ARROWS (say which parts it may import, and why)")
    for module in sorted(files):
        part, where = part_of(module), files[module].relative_to(root).as_posix()
        for target, line in edges[module].items():
            if part_of(target) != part and part in ARROWS and part_of(target) not in ARROWS[part]:
                out.append(f"{module} -> {target} ({where}:{line}): {part} may not import {part_of(target)}")
        for name, line in sorted(external_imports(files[module]), key=lambda e: e[1]):
            if name in THIRD_PARTY and part != THIRD_PARTY[name]:
                out.append(f"{module} -> {name} ({where}:{line}): only {THIRD_PARTY[name]} imports {name}")
    return out


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


def plant(root: Path, files: dict[str, str]) -> None:
    """Write a planted source tree {relative path: text} under `root` for the checker to read."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


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
    plant(tmp_path, files)
    edges, _ = graph(tmp_path)
    assert sorted(map(tuple, cycles(edges))) == [("harness.a", "harness.b", "harness.a"),
                                                 ("harness.c", "harness.d", "harness.c")]
    assert foundation_violations(edges) == [["variants.cell", "harness.heavy", "harness.config"]]


def test_the_checker_finds_forbidden_arrows_and_third_party_imports_at_any_depth(tmp_path):
    files = {
        "harness/__init__.py": "",
        "harness/config.py": "",
        "harness/cli.py": "CALLS = 'harness.commands.run'\n",
        "harness/commands/__init__.py": "",
        "harness/commands/run.py": "from harness.training import train\n",
        "harness/training/__init__.py": "",
        "harness/training/train.py": "def f():\n    from harness.commands import run\n",
        "harness/sweep/__init__.py": "import optuna.trial\n",
        "harness/tracking/__init__.py": "from mlflow import MlflowClient\n",
        "harness/report/__init__.py": "",
        "harness/report/write.py": "from harness import tracking\n\ndef f():\n    import optuna\n",
        "harness/analysis/__init__.py": "def g():\n    return __import__('mlflow')\n",
        "harness/analysis/stats.py": "from .. import config\n",
        "harness/newpart.py": "",
    }
    plant(tmp_path, files)
    edges, found = graph(tmp_path)
    assert arrow_violations(edges, found, tmp_path) == [
        "harness.newpart: no row in ARROWS (say which parts it may import, and why)",
        "harness.analysis -> mlflow (harness/analysis/__init__.py:2): only harness.tracking imports mlflow",
        "harness.analysis.stats -> harness.config (harness/analysis/stats.py:1): "
        "harness.analysis may not import harness.config",
        "harness.report.write -> optuna (harness/report/write.py:4): only harness.sweep imports optuna",
        "harness.training.train -> harness.commands.run (harness/training/train.py:2): "
        "harness.training may not import harness.commands",
    ]


def test_the_arrow_table_keeps_the_designs_rules():
    """The table may grow, but not against the design: each rule here is one the design states."""
    assert [p for p, allowed in ARROWS.items() if "harness.commands" in allowed] == ["harness.cli"]
    assert THIRD_PARTY == {"mlflow": "harness.tracking", "optuna": "harness.sweep"}
    assert not ARROWS["harness.report"] & {"harness.sweep", "harness.reproduce"}, "report reads runs, never studies"
    assert ARROWS["harness.analysis"] == set()
    assert not ARROWS["harness.training"] & {"harness.sweep", "harness.reproduce", "harness.report", "harness.claims",
                                             "harness.commands", "harness.bench"}


def test_each_part_imports_only_what_its_row_allows():
    edges, files = graph()
    assert "harness.tracking" in {part_of(m) for m in files}  # the parts are seen, the rule is not vacuous
    assert any(name == "optuna" for name, _ in external_imports(files["harness.sweep.study"]))
    bad = arrow_violations(edges, files)
    assert not bad, f"{len(bad)} import(s) against the table ARROWS / THIRD_PARTY:\n  " + "\n  ".join(bad)


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
