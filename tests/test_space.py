"""Search spaces as data: conditional entries (parsing, validation, dependency order, sampling
through a real Optuna study, grids) and the one-line errors a bad [search] table gets."""
from __future__ import annotations

import optuna
import pytest
from helpers import run_cli

import variants
from harness.sweep import space as spaces
from harness.config import ConfigError
from harness.sweep.study import suggest

LAYERS = {"type": "int", "low": 1, "high": 3}
DROPOUT = {"type": "float", "low": 0.0, "high": 0.5, "when": "model.num_layers > 1"}
FIXED = {"model.num_layers": 1, "model.dropout": 0.0, "model.hidden_size": 64, "train.lr": 1e-3,
         "model.variant": "lstm"}


class Cell:
    search_space: dict = {}


def test_the_generic_space_samples_dropout_only_with_stacked_layers():
    space = spaces.space_for(variants.get("lstm"), fixed=FIXED)
    assert space["model.dropout"]["when"] == "model.num_layers > 1"
    first = lambda key, entry: entry["choices"][0] if "choices" in entry else entry["low"]  # noqa: E731
    last = lambda key, entry: entry["choices"][-1] if "choices" in entry else entry["high"]  # noqa: E731
    assert "model.dropout" not in spaces.sample(space, FIXED, first)  # one layer: no dropout parameter
    drawn = spaces.sample(space, FIXED, last)
    assert drawn["model.num_layers"] == 2 and drawn["model.dropout"] == 0.5


def test_entries_are_drawn_after_the_entries_their_condition_reads():
    space = {"model.dropout": DROPOUT, "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2},
             "model.num_layers": LAYERS}
    assert spaces.order(space) == ["model.num_layers", "model.dropout", "train.lr"]
    seen = []
    spaces.sample(space, FIXED, lambda key, entry: seen.append(key) or entry["high"])
    assert seen == ["model.num_layers", "model.dropout", "train.lr"]


def test_a_condition_on_a_skipped_entry_reads_the_value_the_trial_keeps():
    space = {"model.num_layers": LAYERS, "model.dropout": DROPOUT,
             "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "when": "model.dropout >= 0.25"}}
    low = spaces.sample(space, FIXED, lambda key, entry: entry["low"])  # 1 layer: dropout keeps 0.0
    assert low == {"model.num_layers": 1}
    high = spaces.sample(space, FIXED, lambda key, entry: entry["high"])
    assert high == {"model.num_layers": 3, "model.dropout": 0.5, "train.lr": 1e-2}


@pytest.mark.parametrize("when, fixed_layers, active", [
    ("model.num_layers == 2", 2, True), ("model.num_layers != 2", 2, False),
    ("model.num_layers <= 1", 1, True), ("model.num_layers >= 3", 2, False),
    ("model.num_layers in [1, 3]", 3, True), ("model.num_layers in [1, 3]", 2, False),
    ('model.variant == "lstm" and model.num_layers > 1', 2, True),
    ('model.variant == "gru" and model.num_layers > 1', 2, False),
])
def test_condition_operators(when, fixed_layers, active):
    entry = {**DROPOUT, "when": when}
    assert spaces.holds("model.dropout", entry, {**FIXED, "model.num_layers": fixed_layers}) is active


def test_conditional_grids_vary_an_entry_only_where_its_condition_holds():
    space = {"model.num_layers": {"type": "int", "low": 1, "high": 2},
             "model.dropout": {**DROPOUT, "grid": [0.0, 0.25, 0.5]},
             "train.lr": {"type": "categorical", "choices": [1e-3, 1e-2]}}
    points = spaces.grid(space, FIXED)
    assert len(points) == (1 + 3) * 2
    assert {"model.num_layers": 1, "train.lr": 1e-3} in points
    assert {"model.num_layers": 2, "model.dropout": 0.25, "train.lr": 1e-2} in points
    assert all(("model.dropout" in p) == (p["model.num_layers"] > 1) for p in points)
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)


@pytest.mark.parametrize("entry, message", [
    ({**DROPOUT, "when": "num_layers > 1"}, "cannot read condition 'num_layers > 1'"),
    ({**DROPOUT, "when": "model.num_layers >> 1"}, "'> 1' is not a TOML value"),
    ({**DROPOUT, "when": "__import__('os').system('true')"}, "cannot read condition"),
    ({**DROPOUT, "when": "model.num_layers > one"}, "'one' is not a TOML value"),
    ({**DROPOUT, "when": "model.num_layers in 2"}, "'in' needs a [list]"),
    ({**DROPOUT, "when": ""}, "when must be a condition string"),
    ({**DROPOUT, "when": 3}, "when must be a condition string"),
    ({**DROPOUT, "when": "model.dropout > 0"}, "cannot read its own entry"),
    ({**DROPOUT, "wehn": "model.num_layers > 1"}, "unknown key 'wehn'"),
    ({**DROPOUT, "when": "model.num_layer > 1"}, "reads model.num_layer, which is neither"),
    ({**DROPOUT, "when": 'model.num_layers > "two"'}, "cannot compare model.num_layers's value"),
])
def test_bad_conditions_are_one_line_config_errors(entry, message):
    with pytest.raises(ConfigError) as err:
        spaces.space_for(Cell, {"model.num_layers": LAYERS, "model.dropout": entry}, fixed=FIXED)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("search.model.dropout: ")


def test_a_cycle_of_conditions_is_named():
    cyclic = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "when": "model.dropout > 0.1"},
              "model.dropout": {**DROPOUT, "when": "train.lr < 1e-3"}}
    with pytest.raises(ConfigError, match=r"cycle: train\.lr -> model\.dropout -> train\.lr"):
        spaces.space_for(Cell, cyclic, fixed=FIXED)


def test_optuna_trials_carry_exactly_the_active_parameters(tmp_path):
    space = spaces.space_for(variants.get("lstm"), fixed=FIXED)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda trial: len(suggest(trial, space, FIXED)), n_trials=30)
    layers = [t.params["model.num_layers"] for t in study.trials]
    assert set(layers) == {1, 2}, "both branches were drawn"
    for trial in study.trials:
        assert ("model.dropout" in trial.params) == (trial.params["model.num_layers"] > 1)
        assert trial.value == len(trial.params)


def test_the_cli_reports_a_bad_condition_in_one_line(tmp_path):
    (tmp_path / "s.toml").write_text('[search]\n"model.dropout" = {type = "float", low = 0, high = 0.5, '
                                     'when = "layers > 1"}\n')
    result = run_cli("sweep", "--trials", "1", "--config", "s.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        "error: search.model.dropout: cannot read condition 'layers > 1': expected FIELD OP VALUE "
        'with OP one of == != < <= > >= in, e.g. "model.num_layers > 1"']
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"], "nothing written"
