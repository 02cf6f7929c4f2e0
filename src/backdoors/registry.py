"""Name -> object registries (TrojanZoo-style), instead of if/elif dispatch over names."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
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

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._package = package
        self._loaded = package is None

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _load(self) -> None:
        """Import every module of the package so that their decorators run."""
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self._package)  # type: ignore[arg-type]
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise InvalidInputError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        yield from sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items
