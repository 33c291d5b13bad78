"""A small registry: names -> lazy ``"module:attr"`` targets with their metadata, and did-you-mean errors.

Targets are imported only on ``get``, so listing names never imports torch (the measurement registry,
``evalkit.measure``; the model registry is built from the mixers' presets, ``evalkit.models``).
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
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: str, *, summary: str = "", **meta: Any) -> Entry:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        entry = Entry(name=name, target=target, summary=summary, meta=dict(meta))
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def entry(self, name: str, field_name: str | None = None) -> Entry:
        if name not in self._entries:
            raise ChoiceError(field_name or self.kind, name, self._entries, what=self.kind)
        return self._entries[name]

    def get(self, name: str, field_name: str | None = None) -> Any:
        """Import and return the target object of ``name``."""
        module, _, attr = self.entry(name, field_name).target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj
