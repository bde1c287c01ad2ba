"""List the registered variants and tasks with their options and defaults.

examples:
  python -m harness list
  python -m harness list --json
  python -m harness list --plugin my_cells     # with the cells and tasks a module registers
"""
from __future__ import annotations

import argparse
import json
import shutil
import textwrap

import tasks
import variants
from harness.commands.common import option_rows, summary_of
from harness.registry import import_plugins

INDENT = 17  # two spaces, the name in 14 columns, a space


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module that registers extra variants or tasks")


def optional(read, default):
    """What a plug-in may leave out (a baseline, a success criterion, ...) is listed as
    `default`, or as why it could not be read: listing never fails on other people's code."""
    try:
        return read()
    except NotImplementedError:
        return default
    except Exception as err:  # noqa: BLE001 (a plug-in's own bug: show it, list the rest)
        return f"unavailable ({type(err).__name__}: {err})"


def catalogue() -> dict:
    """{'variants': {name: {...}}, 'tasks': {name: {...}}} from the registries; every entry
    beyond the name is optional metadata and has a fallback."""
    out = {"variants": {}, "tasks": {}}
    for name in variants.available():
        cls = variants.get(name)
        out["variants"][name] = {
            "summary": summary_of(cls), "paths": list(getattr(cls, "paths", ("explicit",))),
            "uses_times": bool(getattr(cls, "uses_times", False)),
            "state": list(getattr(cls, "state_names", ("h",))), "options": option_rows(cls)}
    for name in tasks.available():
        cls = tasks.get(name)
        task = optional(cls, None)
        made = task is not None and not isinstance(task, str)
        if made and getattr(cls, "baseline_from_data", False):  # listing never loads a dataset
            made = False
            task_note = "computed from the data"
        else:
            task_note = "not declared"
        out["tasks"][name] = {
            "summary": summary_of(cls), "primary_metric": getattr(cls, "primary_metric", ""),
            "baseline": optional(task.baseline, {}) if made else ({} if task_note == "not declared" else task_note),
            "success": str(optional(task.success, "not declared")) if made else task_note,
            "reference": getattr(cls, "reference", ""), "options": option_rows(cls)}
    return out


def wrapped(first: str, text: str, width: int) -> str:
    """`first` in the name column, then `text` wrapped under it: whole, never cut."""
    lines = textwrap.wrap(text, max(40, width - INDENT), break_on_hyphens=False, break_long_words=False) or [""]
    return "\n".join(f"  {(first if i == 0 else ''):<14} {line}" for i, line in enumerate(lines))


def defaults(options: list[dict]) -> str:
    return ", ".join(f"{o['name']}={o['default']!r}" for o in options) or "none"


def main(args) -> int:
    import_plugins(args.plugin)
    data = catalogue()
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    width = shutil.get_terminal_size((120, 24)).columns
    print("variants (--variant NAME; options as --set cell.OPTION=VALUE):")
    for name, v in data["variants"].items():
        print(wrapped(name, v["summary"] or "(no description)", width))
        print(wrapped("", f"paths: {', '.join(v['paths'])}; options: {defaults(v['options'])}", width))
    print("\ntasks (--task NAME; options as --set task.OPTION=VALUE):")
    for name, t in data["tasks"].items():
        print(wrapped(name, t["summary"] or "(no description)", width))
        print(wrapped("", f"options: {defaults(t['options'])}", width))
        baseline = t["baseline"]
        if isinstance(baseline, dict):
            baseline = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in baseline.items()) or "not declared"
        print(wrapped("", f"baseline at defaults: {baseline}; solved: {t['success']}", width))
    return 0
