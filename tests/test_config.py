"""harness.config's shared policies: the one configuration fingerprint and the one check that
names are known."""
from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import pytest
from helpers import tiny_spec

from harness.config import ConfigError, check_known, fingerprint
from harness.sweep.space import space_for
from harness.training.spec import apply_sets, build_spec
from variants.lstm import LSTM

ORDINARY = {"model.variant": "lstm", "task.length": [5, 10], "train.lr": 0.001, "b": {"z": 1, "a": None}}


def test_an_ordinary_dict_keeps_the_fingerprint_it_had():
    # the formula every committed result was stored under: sha256 of the sorted JSON, 16 hex
    before = hashlib.sha256(json.dumps(ORDINARY, sort_keys=True).encode()).hexdigest()[:16]
    assert fingerprint(ORDINARY) == before == "afc4b5f08b9f4158"
    # pinned at the commit that added train.precision and train.deterministic: a spec hashes every field
    assert tiny_spec().fingerprint() == "948828fc67bf1c3f"
    assert tiny_spec("gru", "adding", steps=3).fingerprint() == "129ea53f2a6eec5f"


def test_a_dict_with_values_json_cannot_write_hashes_as_their_text():
    odd = {"path": Path("/data/x"), "shape": (1, 2), "when": datetime.date(2024, 1, 2)}
    assert fingerprint(odd) == fingerprint({"path": "/data/x", "shape": [1, 2], "when": "2024-01-02"})
    assert fingerprint(odd) != fingerprint({**odd, "path": Path("/data/y")})


def test_a_spec_fingerprint_is_the_config_fingerprint_of_what_determines_its_result():
    spec = tiny_spec()
    data = spec.to_dict()
    data.pop("track"), data.pop("plugins")
    from harness.training.spec import NEUTRAL, UNTRACKED

    for key in UNTRACKED["train"]:  # where a run goes and how fast, not what it computes
        data["train"].pop(key)
    for key, value in NEUTRAL["train"].items():  # options added later, at the value that trains as before
        assert data["train"].pop(key) == value
    assert spec.fingerprint() == fingerprint(data)


def test_track_options_that_change_what_a_run_measures_change_its_fingerprint():
    """The context probe and its schedule are [track] options, but a run probed differently is
    another result (a run without probes during training cannot stand for one with them)."""
    plain = tiny_spec("lstm", "imdb_lm")
    assert plain.fingerprint() == tiny_spec("lstm", "imdb_lm", track={"experiment": "x", "probe_points": 5}).fingerprint()
    probed = tiny_spec("lstm", "imdb_lm", track={"context_probe": True})
    assert probed.fingerprint() != plain.fingerprint()
    scheduled = tiny_spec("lstm", "imdb_lm", track={"context_probe": True, "context_points": 5})
    assert scheduled.fingerprint() != probed.fingerprint()
    assert tiny_spec("lstm", "imdb_lm", track={"context_points": 1}).fingerprint() == plain.fingerprint()


def test_check_known_names_the_first_unknown_and_the_valid_ones():
    check_known(["a", "b"], ["a", "b", "c"], "unused {name}")
    with pytest.raises(ConfigError, match=r"^unknown thing 'x' in t; valid: a, b$"):
        check_known(["a", "x", "y"], ["a", "b"], "unknown thing {name!r} in {where}; valid: {valid}", where="t")
    with pytest.raises(ConfigError, match=r"^none here: \(none\)$"):
        check_known(["x"], [], "none here: {valid}")


@pytest.mark.parametrize("build,message", [
    (lambda: build_spec({"model": {"hiden_size": 3}}),
     "unknown key model.hiden_size; valid keys in [model]: bidirectional, dropout, embedding_dim, hidden_size, "),
    (lambda: build_spec({"modle": {}}), "unknown section [modle]; sections: model, cell, task, train, track"),
    (lambda: apply_sets({}, ["trian.lr=1"]), "unknown section 'trian' in --set trian.lr=1; sections: model, cell"),
    (lambda: space_for(LSTM, {"train.lr": {"type": "float", "low": 1, "high": 2, "lg": True}}),
     "search.train.lr: unknown key 'lg'; valid keys: choices, grid, high, log, low, step, type, when"),
    (lambda: space_for(LSTM, {"train.lrr": {"type": "float", "low": 1, "high": 2}}, {"train.lr": 1}),
     "search.train.lrr: not a config field of this run"),
])
def test_every_unknown_name_check_lists_what_is_valid(build, message):
    with pytest.raises(ConfigError) as err:
        build()
    assert str(err.value).startswith(message), str(err.value)
