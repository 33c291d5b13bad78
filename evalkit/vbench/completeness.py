"""Which videos a VBench run expects, which are present, and whether they decode (VBench README, "Evaluation on
the standard prompt suite": ``{prompt}-{index}.mp4``, 5 samples a prompt).

VBench looks for ``{prompt}-{i}.mp4`` (i = 0..4) and only prints a warning for a missing one, and silently skips a
video it cannot read. Here both are checked before any scoring: the expected set comes from the prompt suite
(standard: the package's ``VBench_full_info.json``; custom: the user's prompt file), missing files are listed per
dimension, and every present file is decoded with PyAV; an unreadable or truncated one is an error with its path.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.vbench.long import VideoError, VideoInfo, probe

MIN_FRAMES = 2          # a video of one frame has no consecutive pair to compare
SAMPLES_PER_PROMPT = 5  # VBench: index 0..4 hard-coded in build_full_info_json (vbench/__init__.py)
# Dimensions VBench refuses in custom_input mode (they need the suite's auxiliary_info labels):
# vbench/__init__.py:check_dimension_requires_extra_info (0.1.5).
CUSTOM_UNSUPPORTED: tuple[str, ...] = ("object_class", "multiple_objects", "scene", "appearance_style", "color",
                                       "spatial_relationship")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Expected:
    filename: str                    # "{prompt}-{index}.mp4"
    prompt: str
    index: int
    dimensions: tuple[str, ...]      # dimensions whose suite holds this prompt
    entry: int = -1                  # index of the full-info entry (standard suite)


def video_name(prompt: str, index: int, ext: str = ".mp4") -> str:
    """VBench's naming contract: the exact prompt, a dash, the sample index."""
    if "/" in prompt or "\0" in prompt:
        raise FieldError("prompt", f"cannot be a file name (contains '/' or NUL): {prompt!r}")
    return f"{prompt}-{index}{ext}"


def load_full_info(path: Path) -> list[dict]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all("prompt_en" in e and "dimension" in e for e in data):
        raise FieldError("full_info", f"{path} is not a VBench full-info list of {{prompt_en, dimension}} entries")
    return data


def expected_standard(full_info: Sequence[dict], dimensions: Iterable[str],
                      samples: int = SAMPLES_PER_PROMPT) -> list[Expected]:
    """Videos the standard suite needs for ``dimensions`` (one file serves every entry with the same prompt)."""
    dims = set(dimensions)
    by_name: dict[str, Expected] = {}
    for k, entry in enumerate(full_info):
        hit = tuple(d for d in entry["dimension"] if d in dims)
        if not hit:
            continue
        for i in range(samples):
            name = video_name(entry["prompt_en"], i)
            old = by_name.get(name)
            merged = tuple(dict.fromkeys((old.dimensions if old else ()) + hit))
            by_name[name] = Expected(filename=name, prompt=entry["prompt_en"], index=i, dimensions=merged,
                                     entry=old.entry if old else k)
    return list(by_name.values())


def load_prompt_file(path: Path) -> list[str] | dict[str, str]:
    """``.txt``: one prompt per line. ``.json``: a list of prompts, or ``{video file name: prompt}``. Checked as
    prompts.py says (UTF-8, byte-order mark, duplicates, names VBench cannot use or that collide)."""
    from evalkit.vbench.prompts import load

    return load(path)


def expected_custom(prompts: list[str] | dict[str, str] | None, dimensions: Sequence[str], videos_dir: Path,
                    samples: int = SAMPLES_PER_PROMPT) -> list[Expected]:
    """Videos a custom run expects: ``{prompt}-{i}.mp4`` per prompt, the files of a {file: prompt} map, or (no
    prompt file) every mp4 in the folder with the prompt read from its name as VBench does."""
    dims = tuple(dimensions)
    if prompts is None:
        out = []
        for p in sorted(Path(videos_dir).glob("*.mp4")):
            stem, _, idx = p.stem.rpartition("-")
            prompt, index = (stem, int(idx)) if stem and idx.isdigit() else (p.stem, 0)
            out.append(Expected(filename=p.name, prompt=prompt, index=index, dimensions=dims))
        return out
    if isinstance(prompts, dict):
        return [Expected(filename=f, prompt=p, index=i, dimensions=dims) for i, (f, p) in enumerate(prompts.items())]
    seen: dict[str, Expected] = {}
    for prompt in prompts:
        for i in range(samples):
            name = video_name(prompt, i)
            seen.setdefault(name, Expected(filename=name, prompt=prompt, index=i, dimensions=dims))
    return list(seen.values())


def check_custom_dimensions(dimensions: Iterable[str]) -> None:
    bad = [d for d in dimensions if d in CUSTOM_UNSUPPORTED]
    if bad:
        raise FieldError("dimensions", f"not supported by VBench in custom mode: {', '.join(bad)} (they need the "
                                       "standard suite's auxiliary labels; use --mode standard). Custom mode "
                                       f"cannot score: {', '.join(CUSTOM_UNSUPPORTED)}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Completeness:
    expected: tuple[Expected, ...]
    present: tuple[Expected, ...]
    missing: tuple[Expected, ...]
    infos: dict[str, VideoInfo]      # file name -> decoded info (present files only)

    def counts(self, dimension: str) -> tuple[int, int]:
        """(n_expected, n_present) for one dimension."""
        exp = sum(1 for e in self.expected if dimension in e.dimensions)
        pres = sum(1 for e in self.present if dimension in e.dimensions)
        return exp, pres

    def missing_report(self, dimensions: Iterable[str], limit: int = 20) -> str:
        lines = []
        for dim in dimensions:
            gone = [e.filename for e in self.missing if dim in e.dimensions]
            exp, pres = self.counts(dim)
            lines.append(f"  {dim}: {pres}/{exp} present" + (f", missing {len(gone)}:" if gone else ""))
            lines += [f"    {n}" for n in gone[:limit]]
            if len(gone) > limit:
                lines.append(f"    ... and {len(gone) - limit} more")
        return "\n".join(lines)


class IncompleteError(EvalkitError):
    pass


def check(videos_dir: Path, expected: Sequence[Expected], dimensions: Sequence[str], allow_missing: bool = False,
          decode: bool = True) -> Completeness:
    """:func:`presence`, then :func:`decode_all`."""
    return decode_all(videos_dir, presence(videos_dir, expected, dimensions, allow_missing), decode)


def presence(videos_dir: Path, expected: Sequence[Expected], dimensions: Sequence[str],
             allow_missing: bool = False) -> Completeness:
    """Expected vs present, without opening a video. Raises, unless ``allow_missing``, on missing videos (listed
    per dimension)."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise FieldError("videos", f"no such folder: {videos_dir}")
    listed = set(os.listdir(videos_dir))        # one listing, then a stat only for names that are there
    files = {e.filename for e in expected if os.path.normpath(e.filename) in listed
             and (videos_dir / e.filename).is_file()}
    present = [e for e in expected if e.filename in files]
    missing = [e for e in expected if e.filename not in files]
    comp = Completeness(expected=tuple(expected), present=tuple(present), missing=tuple(missing), infos={})
    if not expected:
        raise IncompleteError(f"no video expected in {videos_dir} for dimensions {list(dimensions)}")
    if missing and not allow_missing:
        raise IncompleteError(f"{len(missing)} of {len(expected)} expected videos are missing in {videos_dir} "
                              f"(names are '{{prompt}}-{{index}}.mp4'):\n{comp.missing_report(dimensions)}\n"
                              "Generate them, or pass --allow-missing to score what is there (records are then "
                              "flagged partial).")
    return comp


def decode_all(videos_dir: Path, comp: Completeness, decode: bool = True) -> Completeness:
    """Every present video decoded with PyAV. Raises on unreadable videos (all listed, with paths) and on videos
    of fewer than ``MIN_FRAMES`` frames."""
    videos_dir = Path(videos_dir)
    infos: dict[str, VideoInfo] = {}
    bad: list[str] = []
    for e in comp.present:
        try:
            infos[e.filename] = probe(videos_dir / e.filename, decode=decode)
        except VideoError as exc:
            bad.append(str(exc))
    if bad:
        raise VideoError(f"{len(bad)} unreadable video(s); fix or regenerate them (VBench would skip them "
                         "silently):\n  " + "\n  ".join(bad))
    short = [f"{videos_dir / n}: {i.frames} frame" for n, i in infos.items() if decode and i.frames < MIN_FRAMES]
    if short:
        raise FieldError("videos", f"{len(short)} video(s) with fewer than {MIN_FRAMES} frames; VBench's temporal "
                                   "dimensions compare consecutive frames (one frame gives 0/0 or an empty mean), so "
                                   "they are not scored: regenerate them:\n  " + "\n  ".join(short))
    return dataclasses.replace(comp, infos=infos)
