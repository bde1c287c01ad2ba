"""Arguments shared by the commands that train (run, sweep): config file, --set, shortcuts."""
from __future__ import annotations

import argparse
import textwrap

import tasks
import variants
from harness.config import Options
from harness.model import ModelConfig
from harness.registry import import_plugins
from harness.spec import DEFAULT_TASK, RunSpec, apply_sets, build_spec, load_toml
from harness.tracking import TrackConfig
from harness.train import TrainConfig

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


def resolve_spec(args: argparse.Namespace) -> RunSpec:
    import_plugins(args.plugin)
    values = load_toml(args.config) if args.config else {}
    values = apply_sets(values, args.sets)
    shortcuts = [f"{field}={getattr(args, flag)}" for flag, field in SHORTCUTS.items()
                 if getattr(args, flag, None) is not None]
    values = apply_sets(values, shortcuts)
    if args.plugin:
        values["plugins"] = list(args.plugin)
    return build_spec(values)


def describe_fields(options: type[Options], section: str) -> list[str]:
    rows = []
    for row in options.describe():
        default = row["default"]
        rows.append(f"  {section}.{row['name']} ({row['type']}, default {default!r}): {row['help']}")
    return rows


def config_epilog() -> str:
    lines = ["configuration fields (--set SECTION.FIELD=VALUE, or the same keys in a TOML file):"]
    for section, options in (("model", ModelConfig), ("train", TrainConfig), ("track", TrackConfig)):
        lines += describe_fields(options, section)
    seen = {}
    for name in variants.available():
        seen.setdefault(variants.get(name).Options, []).append(name)
    for options, names in seen.items():
        lines.append(f"cell options of {', '.join(names)}:")
        lines += describe_fields(options, "cell")
    for name in tasks.available():
        lines.append(f"task options of {name} (task.name={name}):")
        lines += describe_fields(tasks.get(name).Options, "task")
    return "\n".join(textwrap.shorten(line, 200, placeholder="...") if len(line) > 200 else line for line in lines)
