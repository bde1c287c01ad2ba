"""Output directories made up front: an unusable destination is one error before any output."""
from __future__ import annotations

import os
from pathlib import Path

from harness.config import ConfigError


def make_dirs(*destinations: tuple[Path, str]) -> list[Path]:
    """Create every (directory, the option that named it) now, parents included, before any
    of them is written into. Raises ConfigError naming the option, the path and the cause (a
    file in the way, no permission, a read-only or virtual file system); the directories
    this call created are removed again, so a failure leaves nothing behind. Returns the
    directories it created (for `remove_empty` if the command then fails)."""
    created: list[Path] = []
    try:
        for path, option in destinations:
            path = Path(path).expanduser()
            missing = [p for p in (path, *path.parents) if not p.exists()]
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise ConfigError(f"{option} {path}: a file is in the way, not a directory") from None
            except OSError as err:
                raise ConfigError(f"{option} {path}: cannot create it ({err.strerror or err})") from None
            created.extend(reversed(missing))
            if not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError(f"{option} {path}: no permission to write there")
    except ConfigError:
        remove_empty(created)
        raise
    return created


def remove_empty(created: list[Path]) -> None:
    """Remove the directories `make_dirs` created, deepest first, where still empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass
