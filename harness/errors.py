"""Errors a user can act on that are not about configuration or registry names.

A leaf module: the commands raise `UsageError` and the CLI entry point (which loads the
commands) catches it, so neither has to import the other for it.
"""
from __future__ import annotations


class UsageError(Exception):
    """A problem with the command line itself (a missing or contradictory option, an unknown
    run id, ...): the CLI prints its message on one line and exits with code 2."""
