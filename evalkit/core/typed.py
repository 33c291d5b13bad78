"""Dicts (from YAML or ``--set``) into frozen, typed dataclasses, with errors that name the field.

``from_dict(cls, data, where)`` checks every key against the dataclass fields (unknown keys are errors with
a did-you-mean), converts nested dataclasses, tuples, lists, ``Literal`` choices and ``X | None``.
``apply_overrides(data, ["a.b=3"])`` edits a nested dict in place from ``--set key=value`` strings (values are
parsed as YAML scalars/flow collections), refusing keys that are not already present. Numbers must be finite
(``.nan`` / ``.inf`` are refused, naming the field), and :func:`plain_name` checks a user-given name that becomes a
file or folder name.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args, get_origin, get_type_hints

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.core.safe_yaml import SET_LIMITS, loads, short_repr

_MISSING = dataclasses.MISSING


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except (FieldError, ChoiceError) as exc:  # try the next member of the union
                errors.append(str(exc))
        raise FieldError(where, f"{short_repr(value)} matches none of {tp}: " + "; ".join(errors))
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ChoiceError(where, value, choices)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise FieldError(where, f"expected a mapping, got {type(value).__name__} {short_repr(value)}")
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise FieldError(where, f"expected a list, got {short_repr(value)}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise FieldError(where, f"expected {len(args)} items, got {len(value)}: {short_repr(value)}")
            items = [_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise FieldError(where, f"expected a mapping, got {short_repr(value)}")
        args = get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):   # YAML 1.1 reads 1e9 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise FieldError(where, f"expected a number, got {short_repr(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(where, f"expected a number, got {short_repr(value)}")
        if not math.isfinite(value):   # YAML's .nan / .inf parse as floats; no setting means them
            raise FieldError(where, f"expected a finite number, got {short_repr(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise FieldError(where, f"expected an integer, got {short_repr(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise FieldError(where, f"expected true/false, got {short_repr(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise FieldError(where, f"expected a string, got {short_repr(value)}")
        return value
    return value


def from_dict(cls: type, data: Mapping[str, Any], where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown or missing keys raise errors naming ``where.key``."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ChoiceError(f"{where}.{unknown[0]}", unknown[0], fields, what="key")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise FieldError(f"{where}.{name}", "is required but missing")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A dataclass (possibly nested) as plain JSON-able data; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def defaults_dict(cls: type) -> dict[str, Any]:
    """Every field of dataclass ``cls`` that has a default, at its default, as plain data (nested dataclasses
    expanded); required fields are left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not _MISSING:
            out[f.name] = to_dict(f.default)
        elif f.default_factory is not _MISSING:
            out[f.name] = to_dict(f.default_factory())
    return out


def non_defaults(obj: Any) -> Any:
    """A dataclass as plain data with every field at its default left out, recursively (a nested dataclass field
    appears with only its non-default fields, and not at all when they all are defaults). Other values: as
    :func:`to_dict`."""
    if not dataclasses.is_dataclass(obj):
        return to_dict(obj)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            out[f.name] = non_defaults(value)
            continue
        if dataclasses.is_dataclass(value) and type(value) is type(default):
            sub = non_defaults(value)
            if sub:
                out[f.name] = sub
        elif to_dict(value) != to_dict(default):
            out[f.name] = to_dict(value)
    return out


def apply_overrides(data: dict[str, Any], sets: Sequence[str], where: str = "--set",
                    allow_new: bool = False) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to nested ``data`` in place and return it.

    A key that does not exist is an error listing the keys valid at that level, unless ``allow_new``.
    """
    for item in sets:
        if "=" not in item:
            raise FieldError(where, f"expected key=value, got {short_repr(item)}")
        key, raw = item.split("=", 1)
        value = loads(raw, f"{where} {key.strip()[:80]}", SET_LIMITS) if raw.strip() else ""
        node = data
        parts = key.strip().split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if not isinstance(node, dict):
                raise FieldError(f"{where} {key}", f"{'.'.join(parts[:depth])} is not a mapping")
            if part not in node and not allow_new:
                raise ChoiceError(f"{where} {key}", part, node.keys(), what="key")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return data


NAME_MAX = 128                                         # well under the file systems' 255-byte name limit
STRICT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def plain_name(field: str, value: object, *, strict: bool = False) -> str:
    """``value`` if it is a plain file name (it becomes a folder or file: runs/<name>/, <out>/<name>.json ...):
    non-empty, at most :data:`NAME_MAX` characters, no path separator, not ``.``/``..``, no leading dot or dash, no
    surrounding spaces, no control characters. ``strict`` (names that also appear in web pages and URLs: a human
    study, its arms and questions): letters, digits, ``_``, ``.``, ``-`` only, at most 64, starting with a letter
    or digit. The project's one rule for names that become paths."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, f"expected a non-empty name, got {short_repr(value)}")
    if strict:
        if not STRICT_NAME.fullmatch(value):
            raise FieldError(field, f"{short_repr(value)}: use letters, digits, '_', '.', '-' (at most 64, "
                                    "starting with a letter or digit)")
        return value
    bad = [c for c in ("/", "\\", "\x00") if c in value]
    if bad or value in (".", "..") or value.startswith((".", "-")) or any(ord(c) < 32 for c in value) \
            or value != value.strip():
        raise FieldError(field, f"{short_repr(value)} is not a plain file name (it names a folder inside the output "
                                "folder): no '/', '\\', leading '.' or '-', surrounding spaces, control characters, "
                                "'.' or '..'")
    if len(value) > NAME_MAX:
        raise FieldError(field, f"a name of {len(value)} characters is too long for a file name (at most {NAME_MAX})")
    return value


def finite(field: str, value: float, *, positive: bool = False, minimum: float | None = None) -> float:
    """``value`` if finite (and > 0 with ``positive``, >= ``minimum`` when given), else a FieldError naming it."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise FieldError(field, f"expected a finite number, got {short_repr(value)}")
    if positive and not value > 0:
        raise FieldError(field, f"must be > 0, got {short_repr(value)}")
    if minimum is not None and value < minimum:
        raise FieldError(field, f"must be >= {minimum:g}, got {short_repr(value)}")
    return value


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any], *, replace: Sequence[str] = ()) -> dict[str, Any]:
    """A new dict: ``over`` merged into ``base`` key by key, nested mappings merged recursively, everything else
    (and a mapping under a key named in ``replace``, at any depth) replaced whole. Neither input is changed."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key not in replace:
            out[key] = deep_merge(out[key], value, replace=replace)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested override mappings as dotted keys ({"mate": {"window": w}} -> {"mate.window": w})."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
