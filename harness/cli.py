"""`python -m harness COMMAND`: the command-line entry point.

Every command is a module exposing `add_arguments(parser)` and `main(args) -> int`. Errors a
user can fix (bad config, unknown names, missing data) print one line and exit with code 2.

Commands load lazily: only the module of the command being run is imported (its imports
bring torch, MLflow, pandas, ...), so `python -m harness --help` imports none of them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from harness.config import ConfigError
from harness.errors import UsageError
from harness.registry import RegistryError, import_plugins

__all__ = ["COMMANDS", "USER_ERRORS", "UsageError", "build_parser", "main"]  # UsageError: re-exported

COMMANDS = {
    "run": ("harness.commands.run", "train one variant on one task, tracked in MLflow"),
    "list": ("harness.commands.listing", "list variants and tasks with their options"),
    "config": ("harness.commands.config", "print the resolved configuration as TOML"),
    "data": ("harness.commands.data", "download, verify and encode datasets ahead of time"),
    "sweep": ("harness.commands.sweep", "tune a variant with Optuna (pruned, resumable, multi-process)"),
    "reproduce": ("harness.commands.reproduce", "run a claim's experiment grid (resumable)"),
    "report": ("harness.commands.report", "tables, figures, verdicts and the HTML dashboard from the runs"),
    "runs": ("harness.commands.runs", "list a store's runs as a table (filter, choose columns, JSON)"),
    "compare": ("harness.commands.compare", "config difference, metrics and one figure for two or more runs"),
    "doctor": ("harness.commands.doctor", "check a GPU machine: CUDA tests, GPU bench, a smoke claim on the device"),
    "bench": ("harness.commands.bench", "time every variant and path against torch.nn.LSTM (CSV + Markdown)"),
}

USER_ERRORS = (ConfigError, RegistryError, UsageError)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the whole usage)
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(command: str | None = None) -> Parser:
    """The parser with every command listed by its summary; only `command`'s module is
    imported and given its options (None: none, enough for the top-level --help)."""
    parser = Parser(prog="python -m harness",
                    description="Benchmark harness for recurrent cells: train, track, sweep, reproduce.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, (module, summary) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=summary)
            continue
        loaded = importlib.import_module(module)
        p = sub.add_parser(name, help=summary, description=loaded.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        loaded.add_arguments(p)
        p.set_defaults(_command=loaded)
        parser.command_name, parser.command_parser = name, p
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the line: the first word (the top level has no other options)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def with_plugins(parser: Parser, argv: list[str]) -> Parser:
    """For a command that takes `--plugin MODULE`: import the plug-ins named on the line and
    build its parser again, so that its help (the config fields of `run --help`, ...)
    includes what they register. Other commands' parsers are returned as they are."""
    command = getattr(parser, "command_parser", None)
    if command is None or not any("--plugin" in a.option_strings for a in command._actions):
        return parser
    early = Parser(prog=parser.prog, add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    plugins = early.parse_known_args(argv)[0].plugin
    if not plugins:
        return parser
    import_plugins(plugins)
    return build_parser(parser.command_name)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported as one line and exit code 2. A DataError can only have been
    raised if its module was loaded, so it is looked up, never imported: this runs for every
    exception that leaves a command, --help's SystemExit included."""
    errors = USER_ERRORS + (TimeoutError,)
    data = sys.modules.get("tasks.imdb_data")
    return errors + (data.DataError,) if data is not None else errors


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = with_plugins(build_parser(chosen_command(argv)), argv).parse_args(argv)
        return args._command.main(args)
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
