"""The one YAML reader of every file a user hands the harness (experiment files, human-study files, ``--set``
values), with limits that keep a hostile or broken file from taking the machine.

Not a paper figure: what ``validate`` / ``sweep`` / ``train`` / ``humaneval`` read before any work. PyYAML's
``safe_load`` already refuses ``!!python/...`` objects, but not a file of 10 GB, a list of five million items,
100,000 nested brackets (a RecursionError deep in the composer) or an alias bomb (a few lines whose aliases
expand to billions of nodes the moment anything walks, copies or prints the value). :func:`load` composes the
document's node graph first and checks it before constructing any value:

* the file's size (:data:`LIMITS` ``max_bytes``, read no further than that), UTF-8 text;
* nesting depth (checked while composing, so a deep file never recurses far);
* the number of aliases and the number of nodes the document holds once every alias is expanded;
* items in one list / mapping and characters in one scalar;
* tags: only the YAML 1.1 core types (str, int, float, bool, null, seq, map, timestamp, merge keys); any explicit
  other tag (``!!python/object``, ``!!binary``, ``!!set``, a local ``!tag``) is refused by name.

Every refusal is a ``FieldError`` naming the file and the limit. :func:`short_repr` is the bounded ``repr`` error
messages use (a value's repr is never longer than a line). Never imports torch.
"""
from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evalkit.core.errors import FieldError

CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp",
                                           "merge"))


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_bytes: int = 1 << 20            # 1 MiB: the largest experiment file of the project is ~12 kB
    max_depth: int = 32                 # nesting of lists / mappings
    max_aliases: int = 256
    max_nodes: int = 200_000            # nodes once every alias is expanded
    max_items: int = 10_000             # items of one list / mapping
    max_scalar: int = 65_536            # characters of one scalar


LIMITS = Limits()
SET_LIMITS = Limits(max_bytes=64 << 10, max_aliases=0, max_nodes=10_000, max_depth=16)   # one --set value

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 8, 8, 8, 8
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40


def short_repr(value: Any, limit: int = 160) -> str:
    """``repr(value)`` bounded in depth, items and characters (a shared or huge value never expands)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Refused(Exception):
    def __init__(self, message: str, mark: Any = None) -> None:
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(message + where)


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts aliases and depth while composing (the checks that must not wait for the graph)."""

    limits: Limits = LIMITS

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.limits.max_aliases:
                raise _Refused(f"more than {self.limits.max_aliases} aliases (*name)", self.peek_event().start_mark)
        self._depth += 1
        if self._depth > self.limits.max_depth:
            raise _Refused(f"nested deeper than {self.limits.max_depth} levels", self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_graph(root: yaml.Node, limits: Limits) -> None:
    """Tags, lengths and the expanded node count of a composed document (memoised: aliases are shared nodes)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes and not done:
            continue
        if not done:
            if node.tag not in ALLOWED_TAGS:
                raise _Refused(f"tag {node.tag.replace(CORE, '!!')!r} is not allowed (only plain YAML values: "
                               "strings, numbers, booleans, null, lists, mappings)", node.start_mark)
            if isinstance(node, yaml.ScalarNode):
                if len(node.value) > limits.max_scalar:
                    raise _Refused(f"a value of {len(node.value)} characters (at most {limits.max_scalar})",
                                   node.start_mark)
                sizes[id(node)] = 1
                continue
            children = ([c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode)
                        else list(node.value))
            if len(node.value) > limits.max_items:
                raise _Refused(f"a {'mapping' if isinstance(node, yaml.MappingNode) else 'list'} of "
                               f"{len(node.value)} items (at most {limits.max_items})", node.start_mark)
            sizes[id(node)] = -1                          # in progress (a recursive alias is refused below)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            if any(sizes.get(id(c)) == -1 for c in children):
                raise _Refused("a recursive alias (a value containing itself)", node.start_mark)
        else:
            children = ([c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode)
                        else list(node.value))
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > limits.max_nodes:
                raise _Refused(f"the document expands to more than {limits.max_nodes} values (aliases expanded)",
                               node.start_mark)
            sizes[id(node)] = total


def loads(text: str, where: str, limits: Limits = LIMITS) -> Any:
    """The value of one YAML document in ``text`` (see the module docstring); ``where`` names it in errors."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        raise FieldError(where, f"larger than {limits.max_bytes} bytes (a YAML file of this tool is a few kB)")
    loader_cls = type("_Limited", (_Loader,), {"limits": limits})
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, limits)
        return loader.construct_document(node)
    except _Refused as exc:
        raise FieldError(where, f"refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise FieldError(where, f"not valid YAML: {short_repr(str(exc), 400)}") from None
    except RecursionError:
        raise FieldError(where, f"refused: nested too deeply (at most {limits.max_depth} levels)") from None
    finally:
        loader.dispose()


def load(path: Path | str, limits: Limits = LIMITS) -> Any:
    """The value of the YAML file at ``path``; read no further than ``limits.max_bytes`` (a FIFO or a huge file
    is refused, never read whole)."""
    path = Path(path)
    import stat
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FieldError(str(path), "file not found") from None
    except OSError as exc:
        raise FieldError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise FieldError(str(path), "is a folder, not a YAML file")
    if not stat.S_ISREG(mode):
        raise FieldError(str(path), "is not a regular file (a FIFO, device or socket is never read)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except IsADirectoryError:
        raise FieldError(str(path), "is a folder, not a YAML file") from None
    except OSError as exc:
        raise FieldError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limits.max_bytes:
        raise FieldError(str(path), f"larger than {limits.max_bytes} bytes (a YAML file of this tool is a few kB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError(str(path), f"not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 4]!r})") from None
    return loads(text.removeprefix("\ufeff"), str(path), limits)
