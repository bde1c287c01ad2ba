"""Print the fully resolved configuration of a run as TOML (a starting point for --config).

examples:
  python -m harness config --variant gru --task copy > gru-copy.toml
  python -m harness run --config gru-copy.toml
"""
from __future__ import annotations

import argparse

from harness.commands.common import add_config_arguments, resolve_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def main(args) -> int:
    spec = resolve_spec(args).validate(here=False)  # what `run` would refuse, except "no CUDA here"
    print(spec.to_toml(), end="")
    return 0
