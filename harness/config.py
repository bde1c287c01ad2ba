"""Frozen option dataclasses: declaration, validation, coercion from CLI strings and TOML.

Every configurable component (a cell, a task, the model, training, tracking) owns one
frozen dataclass deriving from `Options`. Its fields carry their help text and bounds,
so the CLI (`--set section.field=value`), the TOML config files and the help screens are
all generated from the same declaration and cannot drift apart.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from typing import Any, Iterable, Literal


class ConfigError(ValueError):
    """Bad configuration a user can fix: unknown key, wrong type, out-of-range value."""


def fingerprint(data: dict[str, Any]) -> str:
    """The one fingerprint of a configuration: 16 hex digits of the SHA-256 of its JSON, keys
    sorted. A value JSON cannot write (a Path, a date) counts as its str(), a tuple as a list,
    so every dict hashes, the same wherever it is hashed. Stores match runs on it: changing
    this formula orphans every recorded result."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_known(given: Iterable[str], valid: Iterable[str], message: str, **context: Any) -> None:
    """The one check that names are known (config keys, sections, search-space entries):
    raise ConfigError for the first of `given` that is not in `valid`. `message` is formatted
    with `name` (the unknown name), `valid` (the valid names, comma-separated in the order
    given, "(none)" if there are none) and `context`, e.g.
    "unknown key {section}.{name}; valid keys in [{section}]: {valid}"."""
    valid = list(valid)
    for name in given:
        if name not in valid:
            raise ConfigError(message.format(name=name, valid=", ".join(map(str, valid)) or "(none)", **context))


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None):
    """A dataclass field with help text and optional inclusive numeric bounds."""
    return dataclasses.field(default=default, metadata={"help": help, "min": min, "max": max})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def fields(cls_or_obj) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls_or_obj) if f.init]


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "list of " + type_name(typing.get_args(tp)[0])
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert `value` (a CLI string or a TOML value) to the declared type `tp`, or raise."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in typing.get_args(tp):
                return None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        if isinstance(value, str):  # "1,2", "1 2", or a logged "(1, 2)" / "[1, 2]"
            value = [v for v in value.strip().strip("()[]").replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(coerce(item, v, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise TypeError(f"{where}: unsupported option type {tp!r}")


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every option dataclass: values are coerced and range-checked on creation."""

    section: typing.ClassVar[str] = "options"

    def __post_init__(self):
        hints = _hints(type(self))
        for f in fields(self):
            where = f"{self.section}.{f.name}"
            value = coerce(hints[f.name], getattr(self, f.name), where)
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value):  # nan passes every bound check; no option means inf
                    raise ConfigError(f"{where}: must be a finite number, got {value}")
                if lo is not None and value < lo:
                    raise ConfigError(f"{where}: must be >= {lo}, got {value}")
                if hi is not None and value > hi:
                    raise ConfigError(f"{where}: must be <= {hi}, got {value}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any], section: str | None = None):
        """Build from a dict of (possibly string) values; unknown keys are errors."""
        section = section or cls.section
        hints = _hints(cls)
        check_known(mapping, sorted(f.name for f in fields(cls)),
                    "unknown key {section}.{name}; valid keys in [{section}]: {valid}", section=section)
        return cls(**{key: coerce(hints[key], value, f"{section}.{key}") for key, value in mapping.items()})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One row per field: name, type, default, help (for help screens and `list`)."""
        hints = _hints(cls)
        return [
            {"name": f.name, "type": type_name(hints[f.name]), "default": f.default,
             "help": f.metadata.get("help", "")}
            for f in fields(cls)
        ]


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1} for logging nested config as flat params."""
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else key, sub))
        return out
    return {prefix: value}
