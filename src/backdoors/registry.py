"""Name -> object registries (TrojanZoo-style), instead of if/elif dispatch over names.

A registry that is filled by the modules of a package names those modules explicitly
(``modules=``); they are imported on first use, so listing a registry costs nothing until it
is asked, and nothing is found by scanning folders or source text. ``tests/test_registries.py``
checks that every module that registers something is listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from backdoors.errors import InvalidInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of objects registered with a decorator.

    >>> R = Registry("thing")
    >>> @R.register("a")
    ... def make_a(): return 1
    >>> R.get("a")()
    1
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self.modules = tuple(modules)
        self._loaded = not self.modules

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    @contextmanager
    def override(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` under ``name`` for the duration of a ``with`` block, then restore
        what was there (tests use this instead of mutating a registry for good)."""
        missing = object()
        old = self._items.get(name, missing)
        self._items[name] = obj
        try:
            yield obj
        finally:
            if old is missing:
                self._items.pop(name, None)
            else:
                self._items[name] = old  # type: ignore[assignment]

    def load(self) -> None:
        """Import the listed modules so that their decorators run (once)."""
        if self._loaded:
            return
        self._loaded = True
        for name in self.modules:
            importlib.import_module(name)

    def get(self, name: str) -> T:
        self.load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise InvalidInputError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self.load()
        yield from sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items
