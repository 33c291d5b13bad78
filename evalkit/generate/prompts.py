"""Prompt suites for ``generate``: a text file (one prompt per line) or VBench's standard list.

VBench matches videos to prompts by file name ``{prompt}-{index}.mp4`` with the exact ``prompt_en`` (VBench
README, "prompt-index.mp4"), so prompts are never rewritten or sanitized; a prompt that cannot be a file name (contains ``/`` or
a NUL, or is longer than 240 bytes) is an error. ``vbench`` reads ``VBench_full_info.json`` (the file the vbench
wheel ships) from ``--vbench-info PATH``, else ``$VBENCH_FULL_INFO``, else the project's VBench venv
(``$EVALKIT_VBENCH_ENV`` or ``.cache/vbench-env``); its 946 entries hold 944 distinct prompts, and the repeats
are the same videos, so they are kept once, in first-seen order.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.core.runs import REPO_ROOT

MAX_NAME_BYTES = 240   # 255-byte file-name limit minus "-{index}.mp4" headroom; VBench's longest prompt is 210 B
MAX_PROMPTS = 100_000  # lines of one prompt file (VBench's suite: 946); reading is linear in the lines
MAX_PROMPT_FILE_BYTES = MAX_PROMPTS * (MAX_NAME_BYTES + 1)


def check_prompt(prompt: str, where: str) -> None:
    if "/" in prompt or "\x00" in prompt:
        raise FieldError(where, f"prompt {prompt!r} contains '/' or NUL and cannot be a VBench file name")
    hidden = [name for ch, name in (("\ufeff", "U+FEFF (a byte-order mark)"), ("\r", "a carriage return"))
              if ch in prompt]
    if hidden:
        raise FieldError(where, f"prompt {prompt!r} contains {hidden[0]}, an invisible character that would end up "
                                "in its VBench file name; remove it")
    if len(prompt.encode()) > MAX_NAME_BYTES:
        raise FieldError(where, f"prompt is {len(prompt.encode())} bytes; file names allow {MAX_NAME_BYTES}")


def decode_lines(path: Path) -> list[str]:
    """The file's lines as UTF-8 text. A leading byte-order mark (U+FEFF, as some editors write) is dropped, so it
    never reaches a file name; bytes that are not UTF-8 are an error naming the line and the byte offset; a file
    over :data:`MAX_PROMPT_FILE_BYTES` or with more than :data:`MAX_PROMPTS` lines is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_PROMPT_FILE_BYTES:
        raise FieldError("--prompts", f"{path}: {size} bytes, over the {MAX_PROMPT_FILE_BYTES} bytes a prompt file "
                                      f"may have ({MAX_PROMPTS} prompts of at most {MAX_NAME_BYTES} bytes fit)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1)
        raise FieldError("--prompts", f"{path}: line {line} is not UTF-8 (byte {exc.start} of the file, byte {col} "
                                      f"of the line: {raw[exc.start:exc.start + 4]!r}, {exc.reason}); save the file "
                                      "as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if len(lines) - (lines[-1] == "") > MAX_PROMPTS:
        raise FieldError("--prompts", f"{path}: {len(lines) - (lines[-1] == '')} lines, over the {MAX_PROMPTS} "
                                      "prompts one file may hold; split it into several --out folders")
    return lines


def read_prompt_file(path: str | Path) -> list[str]:
    """One prompt per line (UTF-8, a leading BOM dropped); empty lines, duplicates, non-UTF-8 bytes and invisible
    characters are errors that name the lines."""
    path = Path(path)
    if not path.is_file():
        raise FieldError("--prompts", f"{str(path)!r} is neither 'vbench' nor an existing prompt file")
    lines = decode_lines(path)
    if lines and lines[-1] == "":
        lines = lines[:-1]                       # the file's final newline
    empty = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if empty:
        raise FieldError("--prompts", f"{path}: empty line(s) {empty[:10]}; remove them (one prompt per line)")
    seen: dict[str, int] = {}
    for i, line in enumerate(lines, 1):
        p = line.strip()
        if p in seen:
            raise FieldError("--prompts", f"{path}: line {i} repeats line {seen[p]} ({p!r}); prompts must be "
                                          "unique because the video file names are {prompt}-{index}.mp4")
        seen[p] = i
        check_prompt(p, f"--prompts line {i}")
    if not seen:
        raise FieldError("--prompts", f"{path}: no prompts")
    return list(seen)


def find_vbench_info(explicit: str | None = None) -> Path:
    candidates = [explicit] if explicit else []
    if os.environ.get("VBENCH_FULL_INFO"):
        candidates.append(os.environ["VBENCH_FULL_INFO"])
    env_dir = Path(os.environ.get("EVALKIT_VBENCH_ENV") or REPO_ROOT / ".cache" / "vbench-env")
    candidates += [str(p) for p in sorted(env_dir.glob("lib/python*/site-packages/vbench/VBench_full_info.json"))]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise EvalkitError("--prompts vbench: VBench_full_info.json not found. Pass --vbench-info PATH (the file the "
                       "vbench wheel ships), set VBENCH_FULL_INFO, or build the VBench env (.cache/vbench-env)"
                       + (f"; tried {candidates}" if candidates else ""))


def read_vbench_prompts(info: str | Path) -> list[str]:
    entries = json.loads(Path(info).read_text(encoding="utf-8"))
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "prompt_en" in e for e in entries):
        raise FieldError("--vbench-info", f"{info}: expected VBench's list of {{prompt_en, dimension}} entries")
    out = list(dict.fromkeys(e["prompt_en"] for e in entries))
    for p in out:
        check_prompt(p, f"{info}")
    return out


def load_prompts(spec: str, vbench_info: str | None = None) -> list[str]:
    if spec == "vbench":
        return read_vbench_prompts(find_vbench_info(vbench_info))
    return read_prompt_file(spec)
