"""Arguments shared by the commands that train (run, sweep): config file, --set, shortcuts."""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import textwrap

import tasks
import variants
from harness.config import Options
from harness.errors import UsageError
from harness.training.model import ModelConfig
from harness.registry import import_plugins
from harness.training.spec import DEFAULT_TASK, RunSpec, apply_sets, build_spec, load_toml
from harness.tracking import TrackConfig
from harness.training.train_config import TrainConfig

# Shortcut flags: each is the same as --set on one field.
SHORTCUTS = {"variant": "model.variant", "task": "task.name", "seed": "train.seed",
             "device": "train.device", "tracking_uri": "track.tracking_uri",
             "experiment": "track.experiment"}


def add_config_arguments(parser: argparse.ArgumentParser, *, variant_required: bool = False) -> None:
    parser.add_argument("--variant", required=variant_required, metavar="NAME",
                        help="recurrent cell (= --set model.variant=NAME); default lstm")
    parser.add_argument("--task", metavar="NAME", help=f"task (= --set task.name=NAME); default {DEFAULT_TASK}")
    parser.add_argument("--seed", metavar="N", help="= --set train.seed=N")
    parser.add_argument("--device", metavar="auto|cpu|cuda", help="= --set train.device=...")
    parser.add_argument("--config", metavar="FILE", help="TOML file with [model] [cell] [task] [train] [track] tables")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one field (repeatable); fields are listed below")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow store (= --set track.tracking_uri=URI)")
    parser.add_argument("--experiment", metavar="NAME", help="MLflow experiment (= --set track.experiment=NAME)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module that registers extra variants or tasks (repeatable)")
    parser.epilog = config_epilog()


def resolve_spec(args: argparse.Namespace, values: dict | None = None) -> RunSpec:
    """The run the arguments describe: `values` (default: the --config file's tables), then
    --set, then the shortcut flags; ConfigError (one line) on any problem."""
    import_plugins(args.plugin)
    if values is None:
        values = load_toml(args.config) if args.config else {}
    values = apply_sets(values, args.sets)
    shortcuts = [f"{field}={getattr(args, flag)}" for flag, field in SHORTCUTS.items()
                 if getattr(args, flag, None) is not None]
    refuse_disagreements(args.sets, shortcuts)
    values = apply_sets(values, shortcuts)
    given = values.get("plugins", [])
    if args.plugin and isinstance(given, list):  # with the config file's own (build_spec imports them,
        values["plugins"] = [*given, *args.plugin]  # and says what is wrong with a malformed entry)
    return build_spec(values)


def refuse_disagreements(sets: list[str], shortcuts: list[str]) -> None:
    """A flag (--variant gru) and a --set of the same field (model.variant=lstm) with different
    values: UsageError naming both, since either one would be silently ignored. The same value
    twice is fine."""
    given = {}
    for item in sets:
        key, _, value = item.partition("=")
        given[key.strip()] = value.strip()
    for item in shortcuts:
        field, _, value = item.partition("=")
        if field in given and given[field] != value.strip():
            flag = next(f for f, name in SHORTCUTS.items() if name == field).replace("_", "-")
            raise UsageError(f"--{flag} {value.strip()} and --set {field}={given[field]} disagree; give one of them")


# Abbreviations whose period does not end a sentence ("Cho et al. 2014", "exp. 6", "e.g. x").
ABBREVIATIONS = {"al", "e.g", "i.e", "cf", "vs", "etc", "exp", "eq", "fig", "approx", "no", "resp"}


def worker_gpus(workers: int, devices: str | None, device: str) -> tuple[str, ...]:
    """Each worker's CUDA_VISIBLE_DEVICES for `--devices` (harness.device.visible_per_worker), shared by
    `reproduce --jobs K` and `sweep --workers K`; a bad list is one line (UsageError)."""
    from harness.device import visible_per_worker

    try:
        return visible_per_worker(workers, devices, device)
    except ValueError as err:
        raise UsageError(str(err)) from None


def first_sentence(text: str | None) -> str:
    """The first sentence of a docstring's first paragraph, whole (never cut), on one line;
    '' when there is no docstring. A paragraph that ends in ':' (it introduces a formula or
    a list) ends there, with a period."""
    paragraph = " ".join((text or "").strip().split("\n\n")[0].split())
    for match in re.finditer(r"[.!?](?=\s+[A-Z\"'(])", paragraph):
        word = re.split(r"[\s(]", paragraph[:match.start()])[-1]
        if word.lower() not in ABBREVIATIONS and not (len(word) == 1 and word.isupper()):  # not "J. Smith"
            return paragraph[:match.end()]
    return paragraph[:-1] + "." if paragraph.endswith(":") else paragraph


def summary_of(cls: type) -> str:
    """A registered class's one-line description: the first sentence of its own docstring,
    else of its module's, else '' (plug-ins owe us neither; base-class docstrings describe
    the protocol, not the plug-in, so they are never used)."""
    own = cls.__dict__.get("__doc__")
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    return first_sentence(own) or first_sentence(getattr(module, "__doc__", None))


def option_rows(cls: type) -> list[dict]:
    """name, type, default, help of each option of a registered class's `Options` (an
    `Options` subclass, a plain dataclass, or none at all: [])."""
    options = getattr(cls, "Options", None)
    if isinstance(options, type) and issubclass(options, Options):
        return options.describe()
    if options is not None and dataclasses.is_dataclass(options):
        return [{"name": f.name, "type": getattr(f.type, "__name__", str(f.type)),
                 "default": None if f.default is dataclasses.MISSING else f.default,
                 "help": f.metadata.get("help", "")} for f in dataclasses.fields(options)]
    return []


def describe_fields(rows: list[dict], section: str) -> list[str]:
    lines = []
    for row in rows:
        head = f"  {section}.{row['name']} ({row['type']}, default {row['default']!r})"
        lines.append(f"{head}: {row['help']}" if row.get("help") else head)
    return lines


def config_epilog() -> str:
    lines = ["configuration fields (--set SECTION.FIELD=VALUE, or the same keys in a TOML file):"]
    for section, options in (("model", ModelConfig), ("train", TrainConfig), ("track", TrackConfig)):
        lines += describe_fields(options.describe(), section)
    groups: dict[object, tuple[list[str], list[dict]]] = {}  # cells sharing an Options class: listed once
    for name in variants.available():
        cls = variants.get(name)
        groups.setdefault(getattr(cls, "Options", None), ([], option_rows(cls)))[0].append(name)
    for names, rows in groups.values():
        lines.append(f"cell options of {', '.join(names)}:" + ("" if rows else " none"))
        lines += describe_fields(rows, "cell")
    for name in tasks.available():
        rows = option_rows(tasks.get(name))
        lines.append(f"task options of {name} (task.name={name}):" + ("" if rows else " none"))
        lines += describe_fields(rows, "task")
    # wrapped, never shortened: a help text cut mid-sentence loses what it was there to say
    return "\n".join(textwrap.fill(line, 120, subsequent_indent="      ", break_on_hyphens=False,
                                    break_long_words=False) for line in lines)
