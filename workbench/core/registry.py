"""Name -> class registries filled by decorators.

A codec, quantizer or model becomes available to the CLI and the GUI by decorating its class; nothing
else has to be edited. Lookups of unknown names raise `OptionError` listing the valid names.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from workbench.core.errors import OptionError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str):
        self._what = what
        self._items: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls!r} needs a non-empty class attribute 'name' to be registered")
        if name in self._items and self._items[name] is not cls:
            raise TypeError(f"{self._what} {name!r} registered twice")
        self._items[name] = cls
        return cls

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "none"
            raise OptionError(f"unknown {self._what} {name!r} (known: {valid})") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[type[T]]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def decorator(self) -> Callable[[type[T]], type[T]]:
        return self.register
