"""A name -> class registry, shared by `variants` and `tasks`.

It stores classes (never dotted-path strings), refuses duplicate names, and an unknown
name raises an error that lists the valid ones. Classes defined outside this repository
join through a Python entry point group or by importing a plugin module.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import traceback
from typing import Generic, TypeVar

C = TypeVar("C", bound=type)


class RegistryError(ValueError):
    """A registry lookup or registration a user can fix (bad name, duplicate, bad plugin)."""


class Registry(Generic[C]):
    def __init__(self, kind: str, entry_point_group: str):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._classes: dict[str, C] = {}
        self._entry_points_loaded = False

    def register(self, cls: C) -> C:
        """Class decorator: registers `cls` under its `name` class attribute."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{cls.__qualname__} needs a non-empty string class attribute 'name'")
        if name in self._classes:
            other = self._classes[name]
            raise RegistryError(
                f"{self.kind} name {name!r} is already registered by "
                f"{other.__module__}.{other.__qualname__}"
            )
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove a name (for tests that register throwaway classes)."""
        self._classes.pop(name, None)

    def load_entry_points(self) -> None:
        """Import every plugin advertised under the entry point group (once)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            obj = ep.load()  # importing the module runs its @register decorators
            if isinstance(obj, type) and getattr(obj, "name", None) not in self._classes:
                self.register(obj)

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(self._classes)

    def get(self, name: str) -> C:
        self.load_entry_points()
        try:
            return self._classes[name]
        except KeyError:
            valid = ", ".join(sorted(self._classes)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def items(self) -> list[tuple[str, C]]:
        return [(name, self._classes[name]) for name in self.names()]


def import_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import `--plugin module.path` modules so their @register decorators run."""
    for module in modules:
        try:
            importlib.import_module(module)
        except RegistryError:
            raise  # a duplicate name: already one line naming both classes
        except ModuleNotFoundError as err:
            hint = " (a plug-in must be importable: run from its folder or add that folder to PYTHONPATH)" \
                if err.name == module.split(".")[0] else ""
            raise RegistryError(f"cannot import plugin module {module!r}: {err}{hint}") from None
        except Exception as err:  # other people's code: where it broke, in one line
            text = err.msg if isinstance(err, SyntaxError) else err
            raise RegistryError(f"cannot import plugin module {module!r}: {type(err).__name__}: {text} "
                                f"({_where(err)}; `python -c 'import {module}'` shows the traceback)") from None


def _where(err: BaseException) -> str:
    """file:line of a SyntaxError, else of the innermost frame of the traceback."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "no traceback"

