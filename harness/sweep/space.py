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

Conditional entries (Optuna's define-by-run, kept as data): `"when": "model.num_layers > 1"`
samples the entry only when the condition holds for the values the trial runs with; when
it does not, the field keeps its configured value and the trial has no such parameter.
A condition is `FIELD OP VALUE`, several joined with ` and `: FIELD is another search entry
or any config field, OP one of == != < <= > >= in, VALUE a TOML value (number, "string",
true/false, or a [list] for `in`). It is parsed, never evaluated as code. Entries are sampled
in dependency order (an entry after the entries its condition reads); a cycle is an error.
Grids follow the same rule: a conditional entry multiplies only the grid points where its
condition holds (layers {1, 2} x dropout {0, 0.25, 0.5} when layers > 1 is 1 + 3 = 4 points).
"""
from __future__ import annotations

import math
import operator
import re
import tomllib
from typing import Any, Callable

from harness.config import ConfigError, check_known

GENERIC: dict[str, dict[str, Any]] = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "model.hidden_size": {"type": "categorical", "choices": [32, 64, 128]},
    "model.num_layers": {"type": "int", "low": 1, "high": 2},
    # dropout acts between stacked layers only: with one layer it would be a dead parameter
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": "model.num_layers > 1"},
    "train.clip": {"type": "float", "low": 0.25, "high": 10.0, "log": True},
}
KINDS = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}
KEYS = {"type", "low", "high", "log", "step", "choices", "grid", "when"}
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "in": lambda value, allowed: value in allowed}
COMPARISON = re.compile(r"^([A-Za-z_]\w*\.[A-Za-z_]\w*)(?:\s*(==|!=|<=|>=|<|>)|\s+(in)(?=[\s\[]))\s*(.+)$")
EXAMPLE = 'e.g. "model.num_layers > 1"'


def space_for(cell_class, overrides: dict[str, Any] | None = None,
              fixed: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The generic space, the variant family's additions, then the config file's [search].
    `fixed` is the flat base config ({"model.num_layers": 1, ...}) that conditions may read;
    when given, every condition is checked against it. Raises ConfigError (one line)."""
    space = {**GENERIC, **cell_class.search_space}
    for key, entry in (overrides or {}).items():
        if entry == "off" or entry is False:
            space.pop(key, None)
        elif not isinstance(entry, dict):
            raise ConfigError(f"search.{key}: expected {{type = ...}} or \"off\", got {entry!r}")
        else:
            space[key] = dict(entry)
    for key, entry in space.items():
        check(key, entry)
    order(space)  # a cycle among conditions is an error up front, not at the first trial
    if fixed is not None:
        # a [search] key: found now, not as a failed first trial in a study that keeps it
        check_known([key for key in space if key in (overrides or {})], fixed,
                    "search.{name}: not a config field of this run (as for --set; "
                    "`python -m harness run --help` lists them)")
        check_conditions(space, fixed)
    return space


def check(key: str, entry: dict[str, Any]) -> None:
    if "." not in key:
        raise ConfigError(f"search space key {key!r} must be section.field (as for --set)")
    check_known(sorted(entry), sorted(KEYS), "search.{key}: unknown key {name!r}; valid keys: {valid}", key=key)
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
    if "when" in entry:
        conditions(key, entry)


def conditions(key: str, entry: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The entry's condition as (field, op, value) comparisons, all of which must hold."""
    text = entry.get("when")
    if text is None:
        return []
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"search.{key}: when must be a condition string, {EXAMPLE}")
    out = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = COMPARISON.match(part.strip())
        if not match:
            raise ConfigError(f"search.{key}: cannot read condition {part!r}: expected FIELD OP VALUE "
                              f"with OP one of {' '.join(OPS)}, {EXAMPLE}")
        field, symbol, word, raw = match.groups()
        op = symbol or word
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"search.{key}: in condition {part!r}, {raw!r} is not a TOML value "
                              "(a number, \"string\", true/false or [list])") from None
        if op == "in" and not isinstance(value, list):
            raise ConfigError(f"search.{key}: 'in' needs a [list], got {raw!r}")
        if field == key:
            raise ConfigError(f"search.{key}: a condition cannot read its own entry")
        out.append((field, op, value))
    return out


def holds(key: str, entry: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether the entry is active given the values the trial runs with (flat fields)."""
    return all(OPS[op](values[field], value) for field, op, value in conditions(key, entry))


def order(space: dict[str, dict[str, Any]]) -> list[str]:
    """The keys with every entry after the entries its condition reads (else the space's order)."""
    done: list[str] = []
    path: list[str] = []

    def visit(key: str) -> None:
        if key in done:
            return
        if key in path:
            cycle = " -> ".join(path[path.index(key):] + [key])
            raise ConfigError(f"search: conditions form a cycle: {cycle}")
        path.append(key)
        for field, _, _ in conditions(key, space[key]):
            if field in space:
                visit(field)
        path.pop()
        done.append(key)

    for key in space:
        visit(key)
    return done


def check_conditions(space: dict[str, dict[str, Any]], fixed: dict[str, Any]) -> None:
    """Every condition reads a known field and can compare each value that field may take."""
    for key, entry in space.items():
        for field, op, value in conditions(key, entry):
            if field not in space and field not in fixed:
                raise ConfigError(f"search.{key}: condition reads {field}, which is neither a search "
                                  "entry nor a config field")
            candidates = [fixed[field]] if field in fixed else []
            if field in space:
                candidates += grid_points(space[field])
            for candidate in candidates:
                try:
                    OPS[op](candidate, value)
                except TypeError:
                    raise ConfigError(f"search.{key}: condition '{field} {op} {value!r}' cannot compare "
                                      f"{field}'s value {candidate!r}") from None


def sample(space: dict[str, dict[str, Any]], fixed: dict[str, Any],
           draw: Callable[[str, dict[str, Any]], Any]) -> dict[str, Any]:
    """Draw the active entries in dependency order and return {field: value}.
    `draw(key, entry)` returns one value (an Optuna suggest call); `fixed` is the flat base
    config, so a condition on an entry that was skipped reads the value the trial keeps."""
    values, context = {}, dict(fixed)
    for key in order(space):
        if holds(key, space[key], context):
            values[key] = context[key] = draw(key, space[key])
    return values


def grid(space: dict[str, dict[str, Any]], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """Every grid point, the first entry varying slowest; a conditional entry is varied only
    in the points where its condition holds and is absent from the others."""
    points: list[dict[str, Any]] = [{}]
    for key in order(space):
        entry, grown = space[key], []
        for point in points:
            if holds(key, entry, {**fixed, **point}):
                grown += [{**point, key: value} for value in grid_points(entry)]
            else:
                grown.append(point)
        points = grown
    return points


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
