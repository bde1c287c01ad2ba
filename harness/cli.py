"""`python -m harness COMMAND`: the command-line entry point.

Every command is a module exposing `add_arguments(parser)` and `main(args) -> int`. Errors a
user can fix (bad config, unknown names, missing data) print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from harness.config import ConfigError
from harness.registry import RegistryError

COMMANDS = {
    "run": ("harness.commands.run", "train one variant on one task, tracked in MLflow"),
    "list": ("harness.commands.listing", "list variants and tasks with their options"),
    "config": ("harness.commands.config", "print the resolved configuration as TOML"),
    "data": ("harness.commands.data", "download, verify and encode datasets ahead of time"),
    "sweep": ("harness.commands.sweep", "tune a variant with Optuna (pruned, resumable, multi-process)"),
    "reproduce": ("harness.commands.reproduce", "run a claim's experiment grid (resumable)"),
    "report": ("harness.commands.report", "tables, figures, verdicts and the HTML dashboard from the runs"),
    "bench": ("harness.commands.bench", "time every variant and path against torch.nn.LSTM (CSV + Markdown)"),
}


class UsageError(Exception):
    """A problem with the command line itself."""


USER_ERRORS = (ConfigError, RegistryError, UsageError)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the whole usage)
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> Parser:
    parser = Parser(prog="python -m harness",
                    description="Benchmark harness for recurrent cells: train, track, sweep, reproduce.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, (module, summary) in COMMANDS.items():
        command = importlib.import_module(module)
        p = sub.add_parser(name, help=summary, description=command.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    errors = USER_ERRORS + (TimeoutError,)
    try:
        from tasks.imdb_data import DataError
        errors += (DataError,)
    except ImportError:
        pass
    return errors


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args._command.main(args)
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
