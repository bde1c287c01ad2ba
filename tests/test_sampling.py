"""How trials are drawn and taken, on real Optuna journal storages: the private queue hook we
override (checked against the installed Optuna), and per-trial seeds (distinct draws for every
trial of a study, the same sequence for the same seed)."""
from __future__ import annotations

import inspect

import optuna
import pytest
from optuna.trial import TrialState

from harness.sweep import sampling
from harness.sweep.sampling import QueueEmpty, QueueStudy, make_sampler, take_queued_trial, trial_seed

VERSION = f"optuna {optuna.__version__}"


def journal(path):
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def objective(trial):
    return trial.suggest_float("x", 0, 1) + trial.suggest_float("y", 0, 1) ** 2


def test_optuna_still_has_the_private_queue_hook_we_override():
    hook = getattr(optuna.Study, sampling.QUEUE_HOOK, None)
    assert callable(hook), f"{VERSION}: optuna.Study.{sampling.QUEUE_HOOK} is gone; adapt harness.sweep.sampling"
    assert list(inspect.signature(hook).parameters) == ["self"], \
        f"{VERSION}: optuna.Study.{sampling.QUEUE_HOOK} changed its signature; adapt harness.sweep.sampling"
    assert "QueueStudy" not in optuna.Study.__dict__ and sampling.QUEUE_HOOK in QueueStudy.__dict__
    sampling.check_queue_hook()  # what open_study runs before every sweep


def test_the_queue_hook_check_names_the_optuna_version(monkeypatch):
    monkeypatch.setattr(sampling, "QUEUE_HOOK", "_renamed_in_a_future_optuna")
    with pytest.raises(RuntimeError, match=rf"^{VERSION}: optuna\.Study\._renamed_in_a_future_optuna\(self\)"):
        sampling.check_queue_hook()


def test_a_queue_study_takes_only_queued_trials_and_never_creates_one(tmp_path):
    storage = journal(tmp_path / "j")
    optuna.create_study(storage=storage, study_name="q")
    study = QueueStudy(study_name="q", storage=storage)
    with pytest.raises(QueueEmpty):
        take_queued_trial(study)  # Optuna's hook answers None on an empty queue: we rely on it
    with pytest.raises(QueueEmpty):
        study.ask()
    assert study.trials == [], f"{VERSION}: ask() created a trial although nothing was queued"
    study.enqueue_trial({"x": 0.5})
    trial = study.ask()
    assert trial.number == 0 and study.trials[0].state == TrialState.RUNNING
    other = QueueStudy(study_name="q", storage=journal(tmp_path / "j"))  # a second process's view
    with pytest.raises(QueueEmpty):
        other.ask()  # the popped trial is nobody else's
    assert len(study.trials) == 1


def test_every_trial_of_a_study_gets_its_own_seed():
    for study_seed in (0, 1, 2**40, -1):
        seeds = [trial_seed(study_seed, n) for n in range(200_000)]
        assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**32 for s in seeds)
    assert trial_seed(7, 3) == trial_seed(7, 3) != trial_seed(8, 3)


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_interleaved_processes_on_one_study_never_share_a_draw(tmp_path, kind):
    """Two samplers with the same seed on one study (two processes, as the scale-out recipe
    starts them): each trial number is taken once, so no two trials share a random stream."""
    storage = journal(tmp_path / "j")
    optuna.create_study(storage=storage, study_name="s")
    workers = [QueueStudy(study_name="s", storage=journal(tmp_path / "j"), sampler=make_sampler(kind, 3))
               for _ in range(2)]
    for _ in range(14):
        workers[0].enqueue_trial({})
    for i in range(14):
        workers[i % 2].optimize(objective, n_trials=1)
    params = [(t.params["x"], t.params["y"]) for t in workers[0].trials]
    assert len(params) == 14 and len(set(params)) == 14


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_the_same_seed_draws_the_same_sequence_in_one_process(tmp_path, kind):
    runs = []
    for name in ("a", "b", "c"):
        storage = journal(tmp_path / name)
        optuna.create_study(storage=storage, study_name=name)
        study = QueueStudy(study_name=name, storage=storage, sampler=make_sampler(kind, 5 if name != "c" else 6))
        for _ in range(9):  # 5 random start-up trials, then TPE proper
            study.enqueue_trial({})
        study.optimize(objective, n_trials=9)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1], "same seed, same history: same parameters"
    assert all(p != q for p, q in zip(runs[0], runs[2])), "another seed: other draws for every trial"


def test_random_draws_depend_on_the_trial_number_not_on_the_process(tmp_path):
    """With the random sampler, trial k gets the same parameters however trials are spread."""
    def draws(path, split):
        storage = journal(path)
        optuna.create_study(storage=storage, study_name="s")
        workers = [QueueStudy(study_name="s", storage=storage, sampler=make_sampler("random", 9))
                   for _ in range(split)]
        for _ in range(6):
            workers[0].enqueue_trial({})
        for i in range(6):
            workers[i % split].optimize(objective, n_trials=1)
        return {t.number: t.params for t in workers[0].trials}
    assert draws(tmp_path / "one", 1) == draws(tmp_path / "three", 3)
