"""A small registry: names and aliases -> lazy ``"module:attr"`` targets, with did-you-mean errors.

Targets are imported only on ``get``, so listing names never imports torch.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evalkit.core.errors import ChoiceError


@dataclass(frozen=True, kw_only=True)
class Entry:
    name: str
    target: str  # "package.module:attr"
    summary: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind, self.base = kind, base
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, target: str, *, summary: str = "", aliases: tuple[str, ...] = (),
            **meta: Any) -> Entry:
        if name in self._entries or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        entry = Entry(name=name, target=target, summary=summary, meta=dict(meta))
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def entry(self, name: str, field_name: str | None = None) -> Entry:
        key = self._aliases.get(name, name)
        if key not in self._entries:
            raise ChoiceError(field_name or self.kind, name, list(self._entries) + list(self._aliases),
                              what=self.kind)
        return self._entries[key]

    def get(self, name: str, field_name: str | None = None) -> Any:
        """Import and return the target object of ``name`` (checked against ``base`` when set)."""
        entry = self.entry(name, field_name)
        module, _, attr = entry.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)) \
                and not isinstance(obj, self.base):
            raise TypeError(f"{self.kind} {name!r} -> {entry.target} is not a {self.base.__name__}")
        return obj
