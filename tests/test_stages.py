"""A claim's tuning stage (harness/reproduce/stages.py) through the sweep package: one real
Optuna study on a journal file, its trials real runs in a real MLflow SQLite store."""
from __future__ import annotations

import json

import pytest

from harness import claims
from harness.claims.plans import tuning_lag
from harness.reproduce import stages
from harness.sweep.summary import lowest
from harness.tracking import Outcome, open_runs


def test_a_tuning_study_records_its_lowest_trial_as_the_cells_choice(tmp_path):
    claim = claims.get("horizon")
    tuning = claim.tunings("smoke")[0]
    cell, uri, lag = tuning.cells[0], f"sqlite:///{tmp_path / 'mlflow.db'}", 6  # lag: as a pilot would give it
    assert stages.chosen_values(uri, claim, "smoke", tuning, cell, lag) is None  # not tuned yet
    done = stages.run_tuning(claim.name, claim.cells, "smoke", tuning.label, cell, lag, "cpu", uri, "test", 1)
    name = f"{claim.experiment}-smoke-{tuning.label}-{cell}-L{lag}"  # another tuning lag is another study
    trials = [r for r in open_runs(uri).records(claim.experiment, {"optuna.study": name}) if "optuna.trial" in r.tags]
    assert len(trials) == tuning.trials and all(r.outcome == Outcome.FINISHED for r in trials)
    assert all(r.tags["trial_state"] == "COMPLETE" for r in trials)  # Outcome.FINISHED -> TrialState.COMPLETE
    best = min(trials, key=lambda r: (r.metrics[tuning.metric], int(r.tags["optuna.trial"])))
    assert done.outcome == Outcome.FINISHED and done.metrics["tuning_trials"] == tuning.trials
    assert done.metrics["tuning_best"] == best.metrics[tuning.metric]
    choice = lowest(str(stages.journal_path(uri)), name)
    assert choice is not None and choice.trial == int(best.tags["optuna.trial"])
    chosen = stages.chosen_values(uri, claim, "smoke", tuning, cell, lag)
    assert chosen == choice.params and set(chosen) == set(tuning.space)
    assert all(r.params["task.length"] == str(lag) for r in trials), "every trial at the cell's tuning lag"
    assert stages.chosen_values(uri, claim, "smoke", tuning, cell, 4) is None, "another lag is another study"
    assert {k: json.loads(best.params[k]) for k in chosen} == chosen  # the trial ran with the values chosen


def test_a_cell_is_tuned_at_the_largest_lag_its_pilot_solved_never_at_one_it_did_not():
    lags = (5, 7, 10, 14, 20, 28)
    assert tuning_lag({5: True, 7: True, 10: True, 14: False, 20: False}, lags) == 10
    assert tuning_lag({5: True, 7: False, 10: True, 14: False, 20: False}, lags) == 10  # a seed's lucky lag counts
    assert tuning_lag({5: False, 7: False}, lags) == 5  # none solved: the shortest (shown beside the choice)
    claim = claims.get("horizon")
    pilots = {"pilot-default": {("simple_rnn", 0): {4: True, 6: True, 8: False}, ("lstm", 0): {4: True, 6: False}}}
    tuning = next(t for t in claim.tunings("smoke") if t.label == "tune-default")
    assert stages.tuning_lags(claim, "smoke", tuning, pilots) == {"simple_rnn": 6, "lstm": 4}  # gru: pilot not run
    with pytest.raises(ValueError, match="the lag comes from pilot pilot-default"):
        tuning.values("lstm")
    for lag_solved in ({4: True}, {4: True, 6: True}):
        lag = tuning_lag(lag_solved, (4, 6, 8))
        assert lag_solved[lag], "the chosen lag is one the pilot solved"
