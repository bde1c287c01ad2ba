"""A run's complete, resolved configuration, assembled from defaults, a TOML file, `--set`
overrides and command-line flags (in that order of precedence, last wins; a flag and a `--set`
of the same field must agree, harness/commands/common.py).

Sections: [model] (ModelConfig), [cell] (the variant's options), [task] (`name` plus the
task's options), [train] (TrainConfig), [track] (TrackConfig). Every field of every section
is reachable as `--set section.field=value` and as a TOML key; unknown keys and wrong types
are `ConfigError`s that name the key and the valid alternatives.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
import torch

import tasks
import variants
from harness.config import ConfigError, check_known
from harness.config import fingerprint as config_fingerprint
from harness.connections import shown
from harness.device import parse_device, resolve_device
from harness.training.model import ModelConfig
from harness.registry import RegistryError, import_plugins
from harness.tracking import TrackConfig
from harness.training.train_config import TrainConfig
from tasks.base import TaskOptions
from variants.base import CellOptions

SECTIONS = ("model", "cell", "task", "train", "track")
DEFAULT_TASK = "recall"
# Sections that describe where and how a run is recorded, not what is trained: they do not
# change the result, so they are left out of the fingerprint that identifies a result.
UNTRACKED = {"track": None, "train": ("device", "threads", "log_every", "checkpoint_every", "memory_check")}
# Options added after results were recorded, with the value that trains exactly as before they
# existed: at that value they are left out of the fingerprint, so those results stay reusable.
NEUTRAL = {"train": {"evals_per_doubling": 0}}
# [track] options that change what a run measures (its metrics, not where they go): in the
# fingerprint when set away from these defaults, so a run measured otherwise is not reused.
MEASURED = {"track": {"context_probe": False, "context_window": 512, "context_problems": 500, "context_points": 1}}
_warned: set[str] = set()  # warnings already printed by this process (RunSpec.validate)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    model: ModelConfig
    cell: CellOptions
    task_name: str
    task: TaskOptions
    train: TrainConfig
    track: TrackConfig
    plugins: tuple[str, ...] = ()

    @property
    def variant(self) -> str:
        return self.model.variant

    @property
    def cell_class(self) -> type[variants.Cell]:
        return variants.get(self.model.variant)

    def build_task(self) -> tasks.Task:
        return tasks.get(self.task_name)(self.task)

    def __post_init__(self):
        """Sections that contradict each other are a ConfigError, whoever builds the spec
        (build_spec, dataclasses.replace): every command and every sweep trial goes through here."""
        task_cls = tasks.get(self.task_name)
        if self.model.bidirectional and task_cls.causal:
            raise ConfigError(f"model.bidirectional=true: task {self.task_name} predicts what comes next in the "
                              "sequence, and a backward direction would read the very token it predicts; "
                              "use model.bidirectional=false")
        if self.track.context_probe and not hasattr(task_cls, "context_problems"):
            raise ConfigError(f"track.context_probe=true: task {self.task_name} has no context problems to probe "
                              "(imdb and imdb_lm have); drop it or pick such a task")
        if self.train.steps == 0 and not task_cls.dataset:
            raise ConfigError(f"train.steps: task {self.task_name} generates its data and trains for train.steps "
                              "steps; give train.steps >= 1 (0, no cap, is for dataset tasks)")

    def total_steps(self, per_epoch: int | None) -> int:
        """The run's optimizer steps: train.steps on a generated task (per_epoch None), else
        train.epochs x per_epoch, capped at train.steps when that is set (not 0)."""
        if per_epoch is None:
            return self.train.steps
        total = self.train.epochs * per_epoch
        return min(total, self.train.steps) if self.train.steps else total

    def warnings(self) -> list[str]:
        """Options that are valid but cannot act here, one line each."""
        out = []
        if self.model.dropout > 0 and self.model.num_layers == 1:
            out.append(f"warning: model.dropout={self.model.dropout:g} has no effect with model.num_layers=1 "
                       "(dropout acts between stacked layers); set model.num_layers >= 2 or model.dropout=0")
        if self.track.context_points > 1 and not self.track.context_probe:
            out.append(f"warning: track.context_points={self.track.context_points} has no effect without "
                       "track.context_probe=true (the probes it schedules are the context probe's)")
        return out

    def validate(self, here: bool = True, warn: bool = True) -> "RunSpec":
        """Checks that need the registries or the machine; run before anything is logged.
        here=False skips what depends on this machine (a CUDA device on a CPU-only host), for
        a configuration written here to run elsewhere. warn: print each of `warnings()` on
        stderr, once per process."""
        paths = self.cell_class.paths
        if self.train.evals_per_doubling and not self.train.eval_every:
            raise ConfigError("train.evals_per_doubling needs train.eval_every > 0 (the schedule's first step)")
        if self.model.path != "auto" and self.model.path not in paths:
            raise ConfigError(f"model.path: variant {self.variant!r} has no {self.model.path!r} path; "
                              f"available: auto, {', '.join(paths)}")
        try:
            (resolve_device if here else parse_device)(self.train.device)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        for line in self.warnings() if warn else ():
            if line not in _warned:
                _warned.add(line)
                print(line, file=sys.stderr)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "cell": self.cell.to_dict(),
                "task": {"name": self.task_name, **self.task.to_dict()},
                "train": self.train.to_dict(), "track": self.track.to_dict(),
                "plugins": list(self.plugins)}

    def to_toml(self) -> str:
        """The configuration as it is shown (`config`) and logged (config.toml): TOML that
        --config reads back, the tracking URI's password hidden (harness.connections.shown).
        to_dict keeps the URI as given, for the checkpoint that --resume reopens it from."""
        data = self.to_dict()
        data["track"]["tracking_uri"] = shown(data["track"]["tracking_uri"])
        data = {k: v for k, v in data.items() if v != []}
        return tomli_w.dumps(data)

    def fingerprint(self) -> str:
        """A hash of everything that determines the result (not where it is recorded)."""
        data = self.to_dict()
        measured = {f"{section}.{f}": data[section][f] for section, fields in MEASURED.items()
                    for f, default in fields.items() if data[section][f] != default}
        for section, fields in UNTRACKED.items():
            if fields is None:
                data.pop(section)
            else:
                for f in fields:
                    data[section].pop(f)
        for section, neutral in NEUTRAL.items():
            for f, value in neutral.items():
                if data[section].get(f) == value:
                    data[section].pop(f)
        data.pop("plugins")
        if measured:
            data["measured"] = measured
        return config_fingerprint(data)

    @property
    def run_name(self) -> str:
        return self.track.run_name or f"{self.variant}-{self.task_name}-L{self.task.length}-s{self.train.seed}"

    @property
    def experiment(self) -> str:
        return self.track.experiment or self.task_name

    def tags(self, device) -> dict[str, str]:
        return {"variant": self.variant, "task": self.task_name, "length": str(self.task.length),
                "seed": str(self.train.seed), "device": str(device), "host": platform.node(),
                # the physical GPU behind "cuda:0" when a pool gave this worker one (--devices)
                **({"cuda_visible_devices": os.environ["CUDA_VISIBLE_DEVICES"]}
                   if str(device).startswith("cuda") and "CUDA_VISIBLE_DEVICES" in os.environ else {}),
                "machine": machine_name(device),
                "fingerprint": self.fingerprint(), "harness_commit": git_commit(),
                "mlflow.source.name": "python -m harness"}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_name(device) -> str:
    """What a run's numbers depend on: the processor (or GPU), its cores, and torch."""
    device = torch.device(device)
    chip = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {os.cpu_count()} cores"
    return f"{chip}, torch {torch.__version__}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except OSError as err:  # a directory, no permission, ...
        raise ConfigError(f"config file {path}: {err.strerror or err}") from None


def apply_sets(values: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Merge `section.field=value` strings into a nested dict (values stay strings here;
    they are coerced to each field's declared type when the section is built)."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for item in sets:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set expects section.field=value, got {item!r}")
        check_known([section], SECTIONS, "unknown section {name!r} in --set {item}; sections: {valid}", item=item)
        merged.setdefault(section, {})[name] = value.strip()
    return merged


def build_spec(values: dict[str, Any]) -> RunSpec:
    """Validate a nested dict of sections into a RunSpec (ConfigError on any problem)."""
    values = dict(values)
    plugins = values.pop("plugins", ())
    if isinstance(plugins, str) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"plugins: expected a list of module names, got {plugins!r}")
    plugins = tuple(dict.fromkeys(plugins))
    import_plugins(plugins)  # a config file or a checkpoint names the plug-ins its cell or task needs
    check_known(values, SECTIONS, "unknown section [{name}]; sections: {valid}")
    for section, content in values.items():
        if not isinstance(content, dict):
            raise ConfigError(f"[{section}] must be a table of key = value pairs")
    model = ModelConfig.from_mapping(values.get("model", {}))
    task_values = dict(values.get("task", {}))
    task_name = str(task_values.pop("name", DEFAULT_TASK))
    try:
        cell_cls = variants.get(model.variant)
        task_cls = tasks.get(task_name)
    except RegistryError as err:
        raise ConfigError(str(err)) from None
    train_values = dict(values.get("train", {}))
    if task_cls.dataset:  # trained by epochs: train.steps caps the run only when given
        train_values.setdefault("steps", 0)
    return RunSpec(
        model=model,
        cell=cell_cls.Options.from_mapping(values.get("cell", {})),
        task_name=task_name,
        task=task_cls.Options.from_mapping(task_values),
        train=TrainConfig.from_mapping(train_values),
        track=TrackConfig.from_mapping(values.get("track", {})),
        plugins=plugins)
