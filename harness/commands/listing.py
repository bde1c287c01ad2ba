"""List the registered variants and tasks with their options and defaults.

examples:
  python -m harness list
  python -m harness list --json
"""
from __future__ import annotations

import argparse
import json

import tasks
import variants
from harness.registry import import_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module that registers extra variants or tasks")


def catalogue() -> dict:
    out = {"variants": {}, "tasks": {}}
    for name in variants.available():
        cls = variants.get(name)
        out["variants"][name] = {
            "summary": (cls.__module__ and __import__(cls.__module__, fromlist=["_"]).__doc__ or "").strip().splitlines()[0],
            "paths": list(cls.paths), "uses_times": cls.uses_times, "state": list(cls.state_names),
            "options": cls.Options.describe()}
    for name in tasks.available():
        cls = tasks.get(name)
        task = cls()
        out["tasks"][name] = {
            "summary": task.describe(), "primary_metric": cls.primary_metric,
            "baseline": task.baseline(), "success": str(task.success()), "reference": cls.reference,
            "options": cls.Options.describe()}
    return out


def main(args) -> int:
    import_plugins(args.plugin)
    data = catalogue()
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    print("variants (--variant NAME; options as --set cell.OPTION=VALUE):")
    for name, v in data["variants"].items():
        print(f"  {name:<14} {v['summary']}")
        print(f"  {'':<14} paths: {', '.join(v['paths'])}; options: "
              + ", ".join(f"{o['name']}={o['default']!r}" for o in v["options"]))
    print("\ntasks (--task NAME; options as --set task.OPTION=VALUE):")
    for name, t in data["tasks"].items():
        print(f"  {name:<14} {t['summary']}")
        print(f"  {'':<14} options: " + ", ".join(f"{o['name']}={o['default']!r}" for o in t["options"]))
        baseline = ", ".join(f"{k} {v:.4g}" for k, v in t["baseline"].items())
        print(f"  {'':<14} baseline at defaults: {baseline}; solved: {t['success']}")
    return 0
