"""One small registry for every named kind of thing in the lab: behaviours, cue families, task
families, organisms, detectors.

A `Registry` is a dict (so lookups, listings and `in` read as usual) that refuses a name twice and,
on a miss, names what it knows in one line.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, item: T) -> T:
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator: `@REGISTRY.register("name")` adds what it decorates under `name`."""
        return lambda item: self.add(name, item)

    def lookup(self, name: str):
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}") from None
