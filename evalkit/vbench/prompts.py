"""Prompt files of ``vbench run`` (custom and long mode) and the file names VBench derives from prompts.

VBench matches a video to its prompt by file name (VBench README, "prompt-index.mp4"; ``vbench/__init__.py``
``build_full_info_json``): ``{prompt}-{index}.mp4`` with the exact prompt text, or, with a ``{file name: prompt}``
map, ``os.path.abspath(os.path.join(videos_path, key))``; VBench-Long (``vbench2_beta_long/utils.py``,
``split_video_into_clips``) cuts ``{video stem}_{NNN}.mp4`` clips into ``split_clip/{video stem}/``. A prompt file
is checked here, in one pass (linear in its size), before any video is opened:

- UTF-8 only: invalid bytes are an error naming the line and byte offset; a leading byte-order mark is dropped
  (it would otherwise become part of the first prompt and of its file names);
- one prompt per line (``.txt``) or a JSON list / ``{file name: prompt}`` map; empty prompts, control characters,
  ``/``, NUL, a byte-order mark inside a prompt, and names longer than the 255-byte file-name limit (the clip names
  of long mode included) are errors naming the line (entry);
- duplicate prompts are an error naming both lines, as ``generate`` refuses them: two lines would ask for the same
  ``{prompt}-{index}.mp4`` files; a JSON map with a repeated key (JSON keeps the last one silently) too;
- names that collide under those rules are an error listing them: map keys naming the same file
  (``a.mp4``, ``./a.mp4``), prompts that are the same text in another Unicode normal form (one file on macOS
  file systems, two different-looking identical prompts elsewhere), and, in long mode, a video whose stem is
  another's clip name (``x-0_001.mp4`` next to ``x-0.mp4``: VBench-Long's clip ``x-0_001.mp4`` and the video would
  share one name in a shard's folder), or one whose name holds ``.mp4`` before its end (VBench-Long cuts the name
  there: ``x.mp4 a-0.mp4`` and ``x.mp4 b-0.mp4`` would share the clip folder ``x``).
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from evalkit.core.errors import FieldError

NAME_MAX = 255          # bytes in one file name (Linux, macOS, Windows)
CLIP_SUFFIX = "_000"    # VBench-Long's clip names: {video stem}_{NNN}.mp4
FIELD = "prompt_file"
MAX_PROMPT_BYTES = NAME_MAX - len("-0" + CLIP_SUFFIX + ".mp4")   # 245
_CLIP = re.compile(r"^(.*)_\d{3}$")


def _text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1)
        raise FieldError(FIELD, f"{path} is not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start} (line "
                                f"{line}, byte {col + 1} of the line): {exc.reason}; save it as UTF-8") from None


def _check_text(prompt: str, where: str, path: Path) -> None:
    if not prompt.strip():
        raise FieldError(FIELD, f"{path}: {where} is empty; remove it (one prompt per line)")
    bad = sorted({f"U+{ord(c):04X}" for c in prompt if unicodedata.category(c) == "Cc" or c == "\ufeff"})
    if bad or "/" in prompt:
        what = ", ".join(bad + (["'/'"] if "/" in prompt else []))
        raise FieldError(FIELD, f"{path}: {where} holds {what}, which cannot be part of a VBench file name "
                                f"'{{prompt}}-{{index}}.mp4': {prompt[:80]!r}")


def _pairs(path: Path):
    def hook(pairs):
        seen: dict[str, int] = {}
        for k, (key, _) in enumerate(pairs):
            if key in seen:
                raise FieldError(FIELD, f"{path}: key {key!r} appears twice (entries {seen[key] + 1} and {k + 1}); "
                                        "JSON keeps only the last one")
            seen[key] = k
        return dict(pairs)
    return hook


def load(path: Path | str) -> list[str] | dict[str, str]:
    """``.txt``: one prompt per line (surrounding spaces dropped). ``.json``: a list of prompts, or
    ``{video file name: prompt}``. Every check of the module docstring except the long-mode clip names."""
    path = Path(path)
    if not path.is_file():
        raise FieldError(FIELD, f"no such file: {path}")
    text = _text(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_pairs(path))
        except json.JSONDecodeError as exc:
            raise FieldError(FIELD, f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                    f"{exc.msg})") from None
        if isinstance(data, list) and all(isinstance(p, str) for p in data):
            prompts = [p.strip() for p in data]
            _unique(prompts, path, "entry")
            return prompts
        if isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            _check_map(data, path)
            return data
        raise FieldError(FIELD, f"{path}: expected a JSON list of prompts or {{file name: prompt}}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()                                     # the file's final newline
    if not lines:
        raise FieldError(FIELD, f"{path} holds no prompt")
    prompts = [line.strip() for line in lines]
    _unique(prompts, path, "line")
    return prompts


def _unique(prompts: list[str], path: Path, unit: str) -> None:
    first: dict[str, int] = {}
    norm: dict[str, int] = {}
    dups: list[str] = []
    for i, p in enumerate(prompts, 1):
        _check_text(p, f"{unit} {i}", path)
        if len(p.encode()) > MAX_PROMPT_BYTES:
            raise FieldError(FIELD, f"{path}: {unit} {i} is {len(p.encode())} bytes; its file names "
                                    f"'{{prompt}}-{{index}}.mp4' and long mode's clips '{{prompt}}-{{index}}"
                                    f"{CLIP_SUFFIX}.mp4' must fit the {NAME_MAX}-byte file-name limit (prompts of at "
                                    f"most {MAX_PROMPT_BYTES} bytes): {p[:60]!r}...")
        if p in first:
            dups.append(f"{unit} {i} repeats {unit} {first[p]} ({p[:80]!r})")
            continue
        first[p] = i
        n = unicodedata.normalize("NFC", p)
        if n in norm and prompts[norm[n] - 1] != p:
            dups.append(f"{unit} {i} is {unit} {norm[n]} in another Unicode normal form ({p[:80]!r})")
        norm.setdefault(n, i)
    if dups:
        more = f"; and {len(dups) - 10} more" if len(dups) > 10 else ""
        raise FieldError(FIELD, f"{path}: {len(dups)} duplicate prompt(s): {'; '.join(dups[:10])}{more}. Prompts "
                                "must be unique: the video file names are {prompt}-{index}.mp4 (generate refuses "
                                "the same file)")


def _check_map(data: dict[str, str], path: Path) -> None:
    same: dict[str, list[str]] = {}
    for k, (name, prompt) in enumerate(data.items(), 1):
        _check_text(prompt, f"entry {k} ({name!r})", path)
        real = os.path.normpath(name) if name else ""
        if not real or "/" in real or real in (".", "..") or "\0" in name:
            raise FieldError(FIELD, f"{path}: entry {k}: {name!r} is not a file name in --videos (no folders; "
                                    "VBench joins each key with the videos folder)")
        same.setdefault(real, []).append(name)
        if len(name.encode()) > NAME_MAX:
            raise FieldError(FIELD, f"{path}: entry {k}: {name[:60]!r}... is longer than {NAME_MAX} bytes")
    clash = {k: v for k, v in same.items() if len(v) > 1}
    if clash:
        raise FieldError(FIELD, f"{path}: keys naming the same video file (VBench compares "
                                f"os.path.abspath(videos/key)): {'; '.join(' = '.join(v) for v in clash.values())}")


def check_clip_names(filenames: Iterable[str]) -> None:
    """Long mode: every clip name ``{stem}_{NNN}.mp4`` fits a file name and is not another video's name."""
    names = list(filenames)
    stems = {Path(n).stem for n in names}
    long_names = [n for n in names if len(Path(n).stem.encode()) + len(CLIP_SUFFIX) + 4 > NAME_MAX]
    if long_names:
        raise FieldError("videos", f"long mode cuts clips named '{{video stem}}{CLIP_SUFFIX}.mp4' (VBench-Long's "
                                   f"split_video_into_clips); these video names leave no room under the {NAME_MAX}-"
                                   f"byte file-name limit: {', '.join(repr(n[:60]) for n in long_names[:5])}")
    cut = [n for n in names if ".mp4" in n[:-len(".mp4")]]
    if cut:
        raise FieldError("videos", "VBench-Long names a video's clip folder after its name up to the first '.mp4' "
                                   "(split_video_into_clips: basename.split('.mp4')[0]), so these would be cut short "
                                   f"and may share one folder: {', '.join(repr(n[:80]) for n in cut[:10])}; remove "
                                   "'.mp4' from their prompts")
    clash = []
    for n in names:
        m = _CLIP.match(Path(n).stem)
        if m and m.group(1) in stems:
            clash.append(f"{n!r} is clip {m.group(0)[-3:]} of {m.group(1) + '.mp4'!r}")
    if clash:
        raise FieldError("videos", "names that collide with VBench-Long's clip names '{video stem}_{NNN}.mp4' (a "
                                   f"video and a clip would share one file name): {'; '.join(clash[:10])}; rename "
                                   "the video (and its prompt-file entry)")
