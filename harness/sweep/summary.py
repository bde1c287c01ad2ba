"""What a finished or running study found, as plain data: its counts, best trials, trials
table and figures (`report`, logged to its MLflow parent run), and the choice of a claim's
tuning study (`lowest`). Callers outside harness/sweep read these, never Optuna objects."""
from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from harness.config import ConfigError
from harness.connections import shown
from harness.sweep.storage import open_storage
from harness.sweep.study import counts
from harness.tracking import Outcome, open_tracker


def load(storage: str, name: str) -> optuna.Study:
    """An existing study; ConfigError (one line) if there is none or the storage is unusable."""
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage, create=False))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {shown(storage)}") from None


def trials_frame(study: optuna.Study):
    return study.trials_dataframe(attrs=("number", "value", "values", "state", "params", "user_attrs",
                                         "duration", "datetime_start"))


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front; with one objective, the single best trial (the earliest of any ties)."""
    try:
        return study.best_trials if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        return []


def ties(study: optuna.Study, best: optuna.trial.FrozenTrial) -> int:
    """How many other complete trials reach the best trial's value (a saturated metric ties often)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sum(t.number != best.number and t.values == best.values for t in done)


def figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's matplotlib figures; a figure that cannot be drawn yet is skipped with a note."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    out, multi = {}, len(study.directions) > 1
    plots = {"optimization_history": ovm.plot_optimization_history,
             "parallel_coordinate": ovm.plot_parallel_coordinate,
             "param_importances": ovm.plot_param_importances}
    if multi:
        plots = {"pareto_front": ovm.plot_pareto_front, **{k: v for k, v in plots.items() if k != "optimization_history"}}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                kwargs = {"target": lambda t: t.values[0], "target_name": "metric"} if multi and name != "pareto_front" else {}
                axes = plot(study, **kwargs)
                out[name] = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            except Exception as err:  # too few finished trials, a single distinct value, ...
                out[name] = f"not drawn: {err}"
    return out


def report(storage: str, name: str, log: bool = True) -> dict:
    """Best trial, trials table and figures of a study; logged to its MLflow parent run, which
    ends FINISHED once no trial is running or queued. Plain data: counts by trial state name,
    `best` ({number, values, params, mlflow_run_id, test, ties} each), `table` (a DataFrame)."""
    study = load(storage, name)
    frame = trials_frame(study)
    by_state = counts(study)
    best = best_trials(study)
    attrs = study.user_attrs
    summary = {
        "study": name, "storage": shown(storage), "variant": attrs.get("variant"),
        "task": attrs.get("task"), "directions": [d.name.lower() for d in study.directions],
        "counts": {k: v for k, v in by_state.items() if v}, "parent_run_id": attrs.get("mlflow_parent_run_id"),
        "best": [{"number": t.number, "values": t.values, "params": t.params,
                  "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
                  "test": {k: v for k, v in t.user_attrs.items() if k.startswith("test_")},
                  "ties": ties(study, t) if len(study.directions) == 1 else 0} for t in best],
    }
    uri = attrs.get("tracking_uri")
    if log and uri and summary["parent_run_id"]:
        tracker = open_tracker(uri, attrs.get("experiment", name))
        tracker.start(run_name=name, tags={}, resume_run_id=summary["parent_run_id"])
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "trials.csv"
            frame.to_csv(csv, index=False)
            tracker.log_artifact(csv)
        for fig_name, figure in figures(study).items():
            if isinstance(figure, str):
                tracker.set_tags({f"figure.{fig_name}": figure})
            else:
                tracker.log_figure(figure, f"{fig_name}.png")
        if best:
            tracker.log_metrics({f"best_value_{i}": v for i, v in enumerate(best[0].values)}, 0)
            tracker.set_tags({"best_trial": str(best[0].number), "best_params": json.dumps(best[0].params)})
        tracker.set_tags({"trials_complete": str(by_state["COMPLETE"]), "trials_pruned": str(by_state["PRUNED"]),
                          "trials_failed": str(by_state["FAIL"])})
        if by_state["RUNNING"] == 0 and by_state["WAITING"] == 0:
            tracker.end(Outcome.FINISHED)
        else:
            tracker.flush()
    summary["table"] = frame
    return summary


@dataclasses.dataclass(frozen=True)
class Choice:
    """The lowest finite value a single-objective study reached, and the trial that reached it."""

    trial: int  # its number (the earliest of any ties)
    value: float
    params: dict[str, Any]
    numbers: dict[str, float]  # the trial's numeric user attributes (wall time, test metrics, ...)
    finished: int  # trials with a finite value


def lowest(storage: str, name: str) -> Choice | None:
    """The study's lowest finite trial value (a claim's tuning minimises); None if no trial has one."""
    done = [t for t in load(storage, name).trials if t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    best = min(done, key=lambda t: (t.value, t.number))
    return Choice(best.number, best.value, dict(best.params),
                  {k: v for k, v in best.user_attrs.items() if isinstance(v, (int, float))}, len(done))
