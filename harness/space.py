"""Hyperparameter search spaces as plain data (no Optuna here).

A space maps a config field ("section.field", as for --set) to a distribution:
    {"type": "float", "low": 1e-4, "high": 1e-2, "log": true}
    {"type": "int", "low": 1, "high": 3}
    {"type": "categorical", "choices": [32, 64, 128]}
Optional "grid": [values] gives the points the grid sampler tries (else: choices, every int,
or three points spanning a float range). The generic space below applies to every variant;
each cell class adds its family's entries (`Cell.search_space`: forget-gate bias for gated
cells, period range and r_on for Phased LSTM, budget weight λ for Skip RNNs). A config
file's [search] table adds or replaces entries, and `"field" = "off"` removes one.
"""
from __future__ import annotations

import math
from typing import Any

from harness.config import ConfigError

GENERIC: dict[str, dict[str, Any]] = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "model.hidden_size": {"type": "categorical", "choices": [32, 64, 128]},
    "model.num_layers": {"type": "int", "low": 1, "high": 2},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "train.clip": {"type": "float", "low": 0.25, "high": 10.0, "log": True},
}
KINDS = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}


def space_for(cell_class, overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The generic space, the variant family's additions, then the config file's [search]."""
    space = {**GENERIC, **cell_class.search_space}
    for key, entry in (overrides or {}).items():
        if entry == "off" or entry is False:
            space.pop(key, None)
        else:
            space[key] = dict(entry)
    for key, entry in space.items():
        check(key, entry)
    return space


def check(key: str, entry: dict[str, Any]) -> None:
    if "." not in key:
        raise ConfigError(f"search space key {key!r} must be section.field (as for --set)")
    kind = entry.get("type")
    if kind not in KINDS:
        raise ConfigError(f"search.{key}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    missing = [f for f in KINDS[kind] if f not in entry]
    if missing:
        raise ConfigError(f"search.{key}: a {kind} distribution needs {', '.join(missing)}")
    if kind != "categorical" and not entry["low"] <= entry["high"]:
        raise ConfigError(f"search.{key}: low must be <= high")
    if entry.get("log") and kind != "categorical" and entry["low"] <= 0:
        raise ConfigError(f"search.{key}: a log-scale range needs low > 0")


def grid_points(entry: dict[str, Any]) -> list[Any]:
    """The values the grid sampler tries for one entry."""
    if "grid" in entry:
        return list(entry["grid"])
    if entry["type"] == "categorical":
        return list(entry["choices"])
    low, high = entry["low"], entry["high"]
    if entry["type"] == "int":
        return list(range(int(low), int(high) + 1, int(entry.get("step", 1))))
    if entry.get("log"):
        return [float(math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / 2)) for i in range(3)]
    return [low, (low + high) / 2, high]


def grid_size(space: dict[str, dict[str, Any]]) -> int:
    return math.prod(len(grid_points(entry)) for entry in space.values())
