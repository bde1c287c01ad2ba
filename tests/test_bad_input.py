"""Bad input found by trying the README as a new user: each case is one stderr line and exit 2,
before anything is written (nothing new in the working directory). The commands run in this
process (harness.cli.main, what `python -m harness` calls); the one that would train runs as a
real subprocess, so this process's torch settings stay as they are."""
from __future__ import annotations

import sys

import pytest
from helpers import run_cli

import variants
from harness.cli import main
from tasks import imdb_data


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working directory with a few awkward things in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file where a directory is expected\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "utf16.toml").write_bytes(b"\xff\xfe[train]\n")
    (tmp_path / "search.toml").write_text('[search]\n"train.nope" = {type = "float", low = 1e-3, high = 1e-2}\n')
    (tmp_path / "plugins.toml").write_text('plugins = "my_cells"\n')
    (tmp_path / "broken_plugin.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(imdb_data, "_hints", imdb_data._hints)  # `reproduce` picks its data hints globally
    yield tmp_path
    sys.modules.pop("broken_plugin", None)


SWEEP = ["sweep", "--variant", "lstm", "--trials", "1", "--set", "train.steps=2"]
CASES = {
    "config file is a directory": (["config", "--config", "adir"], "config file adir: Is a directory"),
    "config file not UTF-8": (["config", "--config", "utf16.toml"], "utf16.toml: not valid TOML"),
    "learning rate nan": (["run", "--set", "train.lr=nan"], "train.lr: must be a finite number, got nan"),
    "learning rate inf": (["config", "--set", "train.lr=inf"], "train.lr: must be a finite number, got inf"),
    "config checks the device": (["config", "--device", "tpu"], "train.device: not a device: 'tpu'"),
    "config checks the path": (["config", "--set", "model.path=warp"], "has no 'warp' path"),
    "plugins not a list": (["config", "--config", "plugins.toml"], "plugins: expected a list of module names"),
    "plugins not a list, and --plugin": (["config", "--config", "plugins.toml", "--plugin", "json"],
                                         "plugins: expected a list of module names"),
    "plug-in does not compile": (["list", "--plugin", "broken_plugin"],
                                 "cannot import plugin module 'broken_plugin': SyntaxError"),
    "report into a file": (["report", "--out", "afile"], "--out afile: a file is in the way"),
    "report HTML under a file": (["report", "--out", "r", "--dashboards", "afile/html"],
                                 "--dashboards afile/html: cannot create it"),
    "report of a claim never run": (["report", "--out", "r", "--claim", "horizon"],
                                    "no finished runs of horizon in the MLflow store sqlite:///"),
    "report from a store file that does not exist": (["report", "--out", "r", "--claim", "horizon",
                                                      "--tracking-uri", "typo.db"],
                                                     "/typo.db (no such file); run python -m harness reproduce"),
    "report of a budget never run names it": (["report", "--out", "r", "--claim", "horizon", "--budget", "smoke"],
                                              "run python -m harness reproduce horizon --budget smoke first"),
    "context probe on a task without context": (["run", "--set", "track.context_probe=true"],
                                                "task recall has no context problems to probe"),
    "evaluations per doubling beyond reason": (["run", "--set", "train.eval_every=5",
                                                "--set", "train.evals_per_doubling=1000000000"],
                                               "train.evals_per_doubling: must be <= 64"),
    "context probes beyond reason": (["run", "--task", "imdb_lm", "--set", "track.context_probe=true",
                                      "--set", "track.context_points=100000000"], "track.context_points: must be <= 32"),
    "unknown search key": ([*SWEEP, "--config", "search.toml"], "search.train.nope: not a config field"),
    "no workers": ([*SWEEP, "--workers", "0"], "--workers K needs K >= 1"),
    "negative timeout": ([*SWEEP, "--timeout", "-5"], "--timeout S needs S > 0"),
    "no jobs": (["reproduce", "params", "--jobs", "0"], "--jobs K needs K >= 1"),
    "resume without an id": (["run", "--resume", ""], "--resume needs the id of the run"),
    "resume with another variant": (["run", "--resume", "abc", "--variant", "gru"],
                                    "--resume continues run abc as it was configured; drop --variant"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, work, capsys):
    argv, message = CASES[case]
    before = _files(work)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert _files(work) == before, "nothing written"


def test_an_unusable_checkpoint_directory_stops_the_run_before_it_exists(tmp_path):
    """Found only when the first checkpoint was saved, after training: a traceback and a
    crashed run. Now checked before the run is created: one line, exit 2, no store."""
    (tmp_path / "afile").write_text("x\n")
    result = run_cli("run", "--set", "train.steps=2", "--set", "track.checkpoint_dir=afile/ckpt",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: track.checkpoint_dir afile/ckpt: cannot create it (Not a directory)"]
    assert _files(tmp_path) == ["afile"]


def test_a_config_file_names_the_plugins_its_cell_needs(work, capsys):
    """`config --plugin M` writes plugins = ["M"]; a later --config of that file imports M."""
    (work / "my_cells_cfg.py").write_text(
        "import torch\nfrom variants.base import Cell\nfrom variants.registry import register\n\n"
        "@register\nclass CfgCell(Cell):\n    name = 'cfg_cell'\n\n"
        "    def __init__(self, input_size, hidden_size, options=None):\n"
        "        super().__init__(input_size, hidden_size, options)\n"
        "        self.weight = torch.nn.Parameter(torch.zeros(hidden_size, input_size))\n\n"
        "    def project(self, x):\n        return x @ self.weight.T\n\n"
        "    def step(self, xp, state, t):\n        return (state[0] + xp,), {}\n")
    try:
        assert main(["config", "--plugin", "my_cells_cfg", "--variant", "cfg_cell"]) == 0
        (work / "cfg.toml").write_text(capsys.readouterr().out)
        assert 'plugins = [\n    "my_cells_cfg",\n]' in (work / "cfg.toml").read_text()
        variants.REGISTRY.unregister("cfg_cell")
        sys.modules.pop("my_cells_cfg", None)  # as in a new process
        assert main(["config", "--config", "cfg.toml"]) == 0
        assert 'variant = "cfg_cell"' in capsys.readouterr().out
    finally:
        if "cfg_cell" in variants.available():
            variants.REGISTRY.unregister("cfg_cell")
        sys.modules.pop("my_cells_cfg", None)
