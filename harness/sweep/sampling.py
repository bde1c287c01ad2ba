"""How a sweep's trials are drawn and taken: per-trial seeds and the queue-only study.

Distinct trials: each trial draws from a sampler seeded by (study seed, trial number). The
storage gives every trial its own number once, so no two trials of a study share a random
stream, whichever processes, machines or sessions run them; only a declared retry of a
failed trial repeats parameters, on purpose. The study seed is `--seed` when given, else
a random one, recorded in the study when it is created (`sampler_seed`) and used by every
later process. Reproducibility: with `--seed` and one worker process, trial k sees the same
history (trials 0..k-1, finished in order) and the same stream, so the same command on a
fresh storage draws the same parameter sequence, provided training is deterministic (TPE
conditions on the objective values). With several processes the random sampler (and TPE
while fewer than 5 trials have finished) still gives trial k the same draw, but what TPE
proposes later depends on which trials have finished by then, which timing decides. A space of only
categorical and int entries is finite: random and TPE draws may then coincide by chance;
`--sampler grid` tries each point once.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from typing import Callable

import numpy as np
import optuna

MASK32 = 2**32 - 1


class QueueEmpty(Exception):
    """No queued trial is left for this worker."""


QUEUE_HOOK = "_pop_waiting_trial_id"  # the one private Optuna method this project overrides


def check_queue_hook() -> None:
    """Raise if optuna.Study no longer has QUEUE_HOOK(self), the private method QueueStudy
    overrides: a renamed hook would silently let workers create trials beyond --trials."""
    hook = getattr(optuna.Study, QUEUE_HOOK, None)
    params = list(inspect.signature(hook).parameters) if callable(hook) else None
    if params != ["self"]:
        raise RuntimeError(f"optuna {optuna.__version__}: optuna.Study.{QUEUE_HOOK}(self) is missing or changed "
                           f"(parameters {params}); harness.sweep.sampling.take_queued_trial must be adapted")


def take_queued_trial(study: optuna.Study) -> int:
    """The id of a queued (WAITING) trial, now RUNNING for this caller; QueueEmpty if none.

    Why a private method: `Study.ask()` pops a queued trial if there is one and otherwise
    creates a new trial, and no public API offers "pop or nothing". Workers must never create
    trials (the study holds exactly --trials), so QueueStudy overrides the step between the two.
    We rely on Optuna's version popping atomically (WAITING -> RUNNING, one caller wins) and
    returning None on an empty queue; tests/test_sampling.py checks both against the installed
    Optuna and names its version when they break.
    """
    trial_id = getattr(optuna.Study, QUEUE_HOOK)(study)
    if trial_id is None:
        raise QueueEmpty()
    return trial_id


class QueueStudy(optuna.Study):
    """A study whose `ask()` only takes queued trials and never creates extra ones."""

    def _pop_waiting_trial_id(self):  # QUEUE_HOOK; everything about it is in take_queued_trial
        return take_queued_trial(self)


@functools.cache
def study_offset(study_seed: int) -> int:
    """Where the study's trial seeds start (any int seed, negative or wide, is accepted)."""
    return int(np.random.SeedSequence(study_seed % 2**64).generate_state(1)[0])


def trial_seed(study_seed: int, number: int) -> int:
    """The 32-bit seed of trial `number`: an offset drawn from the study seed (numpy's
    SeedSequence) plus the number, through a bijective 32-bit mixer (MurmurHash3's finaliser).
    Being a bijection, it gives every trial of a study its own seed, with no chance collision
    as hashing each (seed, number) pair down to 32 bits would have."""
    h = (study_offset(study_seed) + number) & MASK32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


class PerTrialSeedSampler(optuna.samplers.BaseSampler):
    """Delegates to a sampler built afresh for each trial with trial_seed(seed, trial.number).
    Optuna calls before_trial first for every trial, with the number the storage assigned."""

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int):
        self._build, self._seed = build, seed
        self._inner = build(trial_seed(seed, 0))

    def before_trial(self, study, trial):
        self._inner = self._build(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self._inner.after_trial(study, trial, state, values)


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (grouped: conditional entries form their own groups) or random, seeded per trial.
    Grid studies queue every trial with its point, so their sampler never draws."""
    def build(seed32: int) -> optuna.samplers.BaseSampler:
        if kind != "tpe":
            return optuna.samplers.RandomSampler(seed=seed32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed32, multivariate=True, group=True, n_startup_trials=5,
                                              constant_liar=True)
    return PerTrialSeedSampler(build, seed)
