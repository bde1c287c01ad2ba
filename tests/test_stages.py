"""A claim's tuning stage (harness/reproduce/stages.py) through the sweep package: one real
Optuna study on a journal file, its trials real runs in a real MLflow SQLite store."""
from __future__ import annotations

import json

from harness import claims
from harness.reproduce import stages
from harness.sweep.summary import lowest
from harness.tracking import Outcome, open_runs


def test_a_tuning_study_records_its_lowest_trial_as_the_cells_choice(tmp_path):
    claim = claims.get("horizon")
    tuning = claim.tunings("smoke")[0]
    cell, uri = tuning.cells[0], f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert stages.chosen_values(uri, claim, "smoke", tuning, cell) is None  # not tuned yet
    done = stages.run_tuning(claim.name, claim.cells, "smoke", tuning.label, cell, "cpu", uri, "test", 1)
    name = f"{claim.experiment}-smoke-{tuning.label}-{cell}"
    trials = [r for r in open_runs(uri).records(claim.experiment, {"optuna.study": name}) if "optuna.trial" in r.tags]
    assert len(trials) == tuning.trials and all(r.outcome == Outcome.FINISHED for r in trials)
    assert all(r.tags["trial_state"] == "COMPLETE" for r in trials)  # Outcome.FINISHED -> TrialState.COMPLETE
    best = min(trials, key=lambda r: (r.metrics[tuning.metric], int(r.tags["optuna.trial"])))
    assert done.outcome == Outcome.FINISHED and done.metrics["tuning_trials"] == tuning.trials
    assert done.metrics["tuning_best"] == best.metrics[tuning.metric]
    choice = lowest(str(stages.journal_path(uri)), name)
    assert choice is not None and choice.trial == int(best.tags["optuna.trial"])
    chosen = stages.chosen_values(uri, claim, "smoke", tuning, cell)
    assert chosen == choice.params and set(chosen) == set(tuning.space)
    assert {k: json.loads(best.params[k]) for k in chosen} == chosen  # the trial ran with the values chosen
