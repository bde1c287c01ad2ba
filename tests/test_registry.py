"""Registry behaviour and the two plugin mechanisms (entry points and --plugin imports)."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import variants
from harness.registry import Registry, RegistryError, import_plugins

PLUGIN_SOURCE = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn
    import variants

    @variants.register
    class {cls}(variants.Cell):
        """A leaky integrator, h_t = 0.5 h_{{t-1}} + tanh(W x_t), defined outside the repository."""
        name = "{name}"

        def __init__(self, input_size, hidden_size, options=None):
            super().__init__(input_size, hidden_size, options)
            self.weight = nn.Parameter(torch.randn(hidden_size, input_size) * 0.1)

        def project(self, x):
            return torch.tanh(F.linear(x, self.weight))

        def step(self, xp, state, t):
            return (0.5 * state[0] + xp,), {{}}
''')


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


def test_the_seven_variants_are_registered():
    """The seven of the mission; a cell added to the repository (or a plug-in) joins them."""
    assert {"simple_rnn", "lstm", "peephole_lstm", "gru", "phased_lstm", "skip_lstm", "skip_gru"} <= set(
        variants.available())
    assert variants.available() == sorted(variants.available())


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(RegistryError, match=f"unknown variant 'lsmt'; valid names: {', '.join(variants.available())}$"):
        variants.create("lsmt", 3, 4)


def test_duplicate_names_are_refused():
    with pytest.raises(RegistryError, match="already registered"):
        @variants.register
        class Again(variants.get("lstm")):
            name = "lstm"


def test_unknown_cell_option_is_refused():
    with pytest.raises(ValueError, match="has no option 'forget_bais'"):
        variants.create("lstm", 3, 4, forget_bais=2.0)


def test_plugin_module_registers_a_cell(plugin_dir):
    (plugin_dir / "my_cells.py").write_text(PLUGIN_SOURCE.format(cls="Leaky", name="leaky_test"))
    try:
        import_plugins(["my_cells"])
        assert "leaky_test" in variants.available()
        out, _ = variants.create("leaky_test", 3, 4, num_layers=2, bidirectional=True)(torch.randn(2, 5, 3))
        assert out.shape == (2, 5, 8)
    finally:
        variants.REGISTRY.unregister("leaky_test")
        sys.modules.pop("my_cells", None)


def test_missing_plugin_module_is_a_clear_error():
    with pytest.raises(RegistryError, match="cannot import plugin module 'no_such_plugin'"):
        import_plugins(["no_such_plugin"])


def test_entry_point_group_registers_a_cell(plugin_dir):
    """A real installed-distribution layout (dist-info with entry_points.txt) on sys.path."""
    (plugin_dir / "ep_cells.py").write_text(PLUGIN_SOURCE.format(cls="EpLeaky", name="ep_leaky"))
    dist = plugin_dir / "ep_cells-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-cells\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rnn_harness.test_variants]\nleaky = ep_cells:EpLeaky\n")
    registry = Registry("variant", entry_point_group="rnn_harness.test_variants")
    try:
        assert registry.names() == ["ep_leaky"]
        assert registry.get("ep_leaky").__name__ == "EpLeaky"
    finally:
        variants.REGISTRY.unregister("ep_leaky")
        sys.modules.pop("ep_cells", None)


def test_the_readme_example_cell_runs_as_a_plugin(tmp_path):
    """The README's `my_cells.py`, as printed there, trains through the CLI."""
    import json
    import os
    import re

    from helpers import ROOT, run_cli

    block = re.search(r"```python\n(# my_cells\.py\n.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README shows my_cells.py"
    source = block.group(1)
    assert 'name = "leaky"' in source  # renamed here: the example may also sit in variants/ as leaky.py
    (tmp_path / "my_cells.py").write_text(source.replace('name = "leaky"', 'name = "readme_leaky"'))
    result = run_cli("run", "--plugin", "my_cells", "--variant", "readme_leaky", "--set", "train.steps=4",
                     "--set", "task.val_size=64", "--set", "task.test_size=64", "--set", "track.enabled=false",
                     "--set", "track.probe=false", "--json", cwd=tmp_path,
                     env={"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "FINISHED" and summary["steps"] == 4
