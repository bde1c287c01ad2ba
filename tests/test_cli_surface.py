"""The CLI's surface: a light --help, plug-ins that carry no metadata, whole descriptions,
and output that goes only where the user says."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, run_cli

from harness.commands.common import first_sentence

HEAVY = ("torch", "pandas", "matplotlib", "mlflow", "optuna")

# A plug-in as other people write it: no module docstring, no class docstrings, no Options,
# no search space, no paths beyond the required one; a task without baseline or criterion.
BARE_PLUGIN = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn

    import tasks
    import variants


    @variants.register
    class Bare(variants.Cell):
        name = "bare_leaky"

        def __init__(self, input_size, hidden_size, options=None):
            super().__init__(input_size, hidden_size, options)
            self.weight = nn.Parameter(torch.randn(hidden_size, input_size) * 0.1)

        def project(self, x):
            return torch.tanh(F.linear(x, self.weight))

        def step(self, xp, state, t):
            return (0.5 * state[0] + xp,), {}


    @tasks.register
    class BareTask(tasks.Task):
        name = "bare_task"
        input_size = 1
''')


def imported_by(*argv: str) -> set[str]:
    """Top-level packages imported by `harness.cli.main(argv)`, in a fresh interpreter."""
    code = ("import sys, json, harness.cli\n"
            "try:\n    harness.cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_top_level_help_imports_no_heavy_library():
    loaded = imported_by("--help")
    assert "harness" in loaded
    assert not loaded & set(HEAVY), f"--help imported {sorted(loaded & set(HEAVY))}"


def test_a_command_help_loads_that_command_only():
    loaded = imported_by("data", "--help")  # the data command's options need nothing heavy either
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "torch" in imported_by("run", "--help"), "the check must see imports (run --help needs the registries)"


def test_top_level_help_lists_every_command():
    from harness.cli import COMMANDS

    result = run_cli("--help", cwd=ROOT)
    assert result.returncode == 0
    for name, (_, summary) in COMMANDS.items():
        assert name in result.stdout and summary.split()[0] in result.stdout


@pytest.mark.parametrize("text,sentence", [
    (None, ""),
    ("", ""),
    ("h_t = 0.5 h_{t-1} + tanh(W x_t)", "h_t = 0.5 h_{t-1} + tanh(W x_t)"),
    ('GRU: Cho et al. 2014, "Learning Phrase\nRepresentations", in the "reset after" form:\n\n  h = ...',
     'GRU: Cho et al. 2014, "Learning Phrase Representations", in the "reset after" form.'),
    ("Temporal order (H&S 1997, exp. 6): classify the order. Then more.", "Temporal order (H&S 1997, exp. 6): "
     "classify the order."),
    ("Uses e.g. Adam. Second sentence.", "Uses e.g. Adam."),
    ("After J. Schmidhuber and co. Second one.", "After J. Schmidhuber and co."),
    ("First line\ncontinues here. Second.\n\nAnother paragraph.", "First line continues here."),
])
def test_first_sentence_is_whole(text, sentence):
    assert first_sentence(text) == sentence


@pytest.fixture
def bare_plugin(tmp_path):
    (tmp_path / "bare_cells.py").write_text(BARE_PLUGIN)
    return tmp_path


def test_list_with_a_plugin_that_has_no_metadata(bare_plugin):
    text = run_cli("list", "--plugin", "bare_cells", cwd=bare_plugin)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["bare_leaky"])
    assert lines[at].split(None, 1)[1] == "(no description)"
    assert lines[at + 1].split() == ["paths:", "explicit;", "options:", "weight_init='uniform'"]
    task = next(i for i, line in enumerate(lines) if line.split()[:1] == ["bare_task"])
    assert "baseline at defaults: not declared; solved: not declared" in lines[task + 2]

    data = json.loads(run_cli("list", "--json", "--plugin", "bare_cells", cwd=bare_plugin).stdout)
    assert data["variants"]["bare_leaky"]["summary"] == "" and data["variants"]["bare_leaky"]["paths"] == ["explicit"]
    assert data["tasks"]["bare_task"]["baseline"] == {} and data["tasks"]["bare_task"]["success"] == "not declared"


def test_run_help_and_config_with_a_plugin_that_has_no_metadata(bare_plugin):
    helped = run_cli("run", "--plugin", "bare_cells", "--help", cwd=bare_plugin)
    assert helped.returncode == 0, helped.stderr
    assert "cell options of bare_leaky" in helped.stdout and "task options of bare_task" in helped.stdout
    config = run_cli("config", "--plugin", "bare_cells", "--variant", "bare_leaky", "--task", "bare_task",
                     cwd=bare_plugin)
    assert config.returncode == 0, config.stderr
    assert 'variant = "bare_leaky"' in config.stdout and 'name = "bare_task"' in config.stdout


def test_a_missing_plugin_in_help_is_one_line(tmp_path):
    result = run_cli("run", "--plugin", "no_such_module", "--help", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: cannot import plugin module 'no_such_module': No module named "
                                     "'no_such_module' (a plug-in must be importable: run from its folder or add "
                                     "that folder to PYTHONPATH)")
    no_value = run_cli("run", "--plugin", cwd=tmp_path)
    assert no_value.returncode == 2 and len(no_value.stderr.strip().splitlines()) == 1, no_value.stderr
    assert "argument --plugin: expected one argument" in no_value.stderr
    (tmp_path / "loud.py").write_text("raise SystemExit('imported')\n")  # data takes no --plugin: not imported
    other = run_cli("data", "imdb", "--plugin", "loud", cwd=tmp_path)
    assert other.returncode == 2 and "unrecognized arguments: --plugin loud" in other.stderr


def test_list_prints_whole_first_sentences():
    import tasks
    import variants

    registry = {"variants": variants, "tasks": tasks}
    data = json.loads(run_cli("list", "--json", cwd=ROOT).stdout)
    text = run_cli("list", cwd=ROOT, env={"COLUMNS": "80"}).stdout
    flat = " ".join(text.split())
    for kind in ("variants", "tasks"):
        for name, entry in data[kind].items():
            summary = entry["summary"]
            doc = (registry[kind].get(name).__dict__.get("__doc__") or "").strip()
            paragraph = " ".join(doc.split("\n\n")[0].split())
            # a whole sentence, or (a docstring without one, as the README's example cell) all of it
            assert summary.rstrip('")').endswith((".", "?", "!")) or summary == paragraph, (name, summary)
            assert f"{name} {summary}" in flat, (name, summary)  # printed whole (wrapped, not cut)
    assert max(len(line) for line in text.splitlines()) <= 80


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


@pytest.fixture(scope="module")
def params_runs(tmp_path_factory):
    """A working directory whose MLflow store holds the params claim's smoke runs."""
    work = tmp_path_factory.mktemp("report")
    result = run_cli("reproduce", "params", "--budget", "smoke", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return work


def test_report_with_out_writes_nothing_outside_it(params_runs):
    work = params_runs
    checkout = {name: tree(ROOT / name) for name in ("results", "dashboards")}
    other = work / "elsewhere" / "other"  # a claim reported into this folder earlier, page not here
    other.mkdir(parents=True)
    (other / "summary.json").write_text(json.dumps({
        "claim": "other", "title": "Another claim", "statement": "Something else holds.", "verdict": "reproduced",
        "detail": "", "budget": "smoke", "runs": 3, "devices": ["cpu"]}))
    before = tree(work)
    result = run_cli("report", "--claim", "params", "--out", "elsewhere", cwd=work)
    assert result.returncode == 0, result.stderr
    changed = {path for path, stat in tree(work).items() if before.get(path) != stat}
    store = {path for path in changed if path == "mlflow.db" or path.startswith("mlartifacts/")}  # the report run
    assert any(path.endswith("/artifacts/README.md") for path in store), sorted(changed)
    changed -= store
    assert changed and all(path.startswith("elsewhere/") for path in changed), sorted(changed)
    assert {"elsewhere/params/summary.json", "elsewhere/dashboards/index.html",
            "elsewhere/dashboards/params.html"} <= changed
    assert not (work / "results").exists() and not (work / "dashboards").exists()
    index = (work / "elsewhere" / "dashboards" / "index.html").read_text()
    assert '<a href="params.html">' in index
    assert "Another claim" in index and "other.html" not in index, "a claim with results keeps its card"
    assert "python -m harness report --claim other" in index
    assert {name: tree(ROOT / name) for name in ("results", "dashboards")} == checkout


def test_report_without_out_writes_the_default_folders(params_runs):
    work = params_runs
    result = run_cli("report", "--claim", "params", cwd=work)
    assert result.returncode == 0, result.stderr
    assert (work / "results" / "params" / "summary.json").exists()
    assert (work / "dashboards" / "index.html").exists() and (work / "dashboards" / "params.html").exists()
    assert "wrote results/params and dashboards/index.html" in result.stdout


def test_output_cut_short_by_the_reader_ends_quietly(tmp_path):
    """`harness list | head -1`: the reader leaves early; no traceback, exit status 141. The
    reader here has left before the first write, so the outcome does not depend on timing."""
    import os

    read, write = os.pipe()
    os.close(read)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "list"], cwd=tmp_path, stdout=write,
                            stderr=subprocess.PIPE, text=True)
    os.close(write)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 141 and err == "", err[-2000:]
