"""The three ways evalkit runs VBench, one object each: which files VBench scores (units), how a worker is asked
to score a shard of them, how shard results merge into one score, and what a record says about the protocol.

- ``standard``: VBench's own ``vbench_standard`` mode on the standard prompt suite (``VBench_full_info.json``).
- ``custom``: VBench's ``custom_input`` mode on the user's prompts (or prompts read from the file names).
- ``long``: VBench-Long (``vbench2_beta_long``, VBench++): every video split into clips (long.py), each clip scored
  by the standard dimension; the score is the mean over clips (imaging_quality / 100), which is what
  ``reorganize_clips_results`` computes (it groups "per long video" by each clip's own path, so every clip is its
  own group; with the same number of clips per video this equals the mean of per-video means, which the record
  also gives as ``video_mean_score``). On the standard suite the worker gets VBench-Long's
  ``long_vbench_standard`` full-info list (the suite's entries, auxiliary labels included, with the clips of
  ``{prompt}-{i}`` as ``video_list``), so
  the dimensions that need labels (object_class, multiple_objects, scene, appearance_style, color,
  spatial_relationship) are scored as VBench-Long scores them; on a custom suite it gets ``long_custom_input``'s
  (one entry per long video; the text, for temporal_style and overall_consistency, is ``long_text``: the prompt, or
  VBench-Long's folder name ``{prompt}-{i}``).

Shards of a dimension can be merged exactly only where VBench's single-process aggregate is the plain mean of the
per-video results (``MEAN_OF_VIDEOS``, read from each ``vbench/<dim>.py``); the others are frame-weighted. In long
mode every dimension merges exactly (a mean of clip results).
"""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from evalkit.core.errors import EvalkitError
from evalkit.vbench import completeness as comp
from evalkit.vbench import long as longmod

MEAN_OF_VIDEOS = ("temporal_flickering", "aesthetic_quality", "imaging_quality", "motion_smoothness",
                  "dynamic_degree", "temporal_style", "overall_consistency", "human_action")
PERCENT_SCALE = ("imaging_quality",)  # per-video results in 0-100, aggregate / 100 (vbench/imaging_quality.py)
# vbench/color.py leaves out a video in which the object is never detected (by design, not a failure)
MAY_SKIP = {"color": "videos in which GRiT never detects the object are not scored (vbench/color.py)"}
LONG_TEXTS = ("prompt", "folder-name")
STATIC_FILTER_NOTE = ("VBench's standard protocol scores temporal_flickering only on videos its RAFT static filter "
                      "keeps (vbench static_filter; VBench-Long --static_filter_flag); not applied here: every "
                      "video is scored")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Unit:
    """One file VBench scores: a video, or a clip of one (long mode)."""
    path: Path          # file on disk
    name: str           # file name VBench sees (symlink name)
    prompt: str
    video: str          # the evaluated video's file name (what n_evaluated counts)
    entry: int = -1     # full-info entry (standard suite)
    content: str = ""   # sha256 of the file, or of the long video the clip is cut from


@dataclasses.dataclass(frozen=True, kw_only=True)
class Merged:
    score: float | None
    evaluated: frozenset[str]          # videos with a result
    raw: list                          # VBench-format [score, per-unit results(, per-video means)]
    n_units: int
    video_means: dict[str, float] = dataclasses.field(default_factory=dict)
    unit_scores: tuple[tuple[str, float], ...] = ()    # long mode: (long video, clip result) per clip


class Mode:
    """Base: the custom-suite behaviour shared by standard and custom (one unit per video)."""
    name = "custom"

    def __init__(self, cfg: Any, full_info: list[dict] | None, present: tuple[comp.Expected, ...],
                 shas: dict[str, str], full_info_sha256: str | None = None) -> None:
        self.cfg, self.full_info, self.present, self.shas = cfg, full_info, present, shas
        self.full_info_sha256 = full_info_sha256
        # (prompt, dimension) -> the full-info entry that lists the dimension (a prompt can be in several entries:
        # "The bund Shanghai, oil painting" is an appearance_style entry and an overall_consistency one)
        self._entry = {(x["prompt_en"], d): k for k, x in enumerate(full_info or []) for d in x["dimension"]}

    def entry_for(self, e: comp.Expected, dim: str) -> int:
        return self._entry.get((e.prompt, dim), e.entry)

    @property
    def suite(self) -> str:
        return "custom" if self.full_info is None else "standard"

    def shardable(self, dim: str) -> bool:
        return dim in MEAN_OF_VIDEOS

    def units(self, dim: str) -> list[Unit]:
        return [Unit(path=self.cfg.videos / e.filename, name=e.filename, prompt=e.prompt, video=e.filename,
                     entry=self.entry_for(e, dim), content=self.shas[e.filename])
                for e in self.present if dim in e.dimensions]

    def shards(self, units: list[Unit]) -> list[list[Unit]]:
        size = self.cfg.shard_size
        if not size:
            return [units] if units else []
        return [units[i:i + size] for i in range(0, len(units), size)]

    def worker_spec(self, dim: str, shard: list[Unit], work: Path) -> dict:
        return {"vbench_mode": "custom_input", "prompts": {u.name: u.prompt for u in shard}}

    def settings(self, dim: str) -> dict:
        """What changes a score besides the videos and weights (part of the resume key)."""
        return {"mode": self.name, "suite": self.suite, "samples_per_prompt": self.cfg.samples_per_prompt,
                "imaging_quality_preprocessing_mode": "longer"}

    def merge(self, dim: str, files: list[Path], units: dict[str, Unit]) -> Merged:
        results = _per_unit(dim, files, units)
        raws = [json.loads(f.read_text())[dim] for f in files]
        if len(files) == 1:  # VBench's own aggregate, verbatim
            return Merged(score=float(raws[0][0]), evaluated=frozenset(u.video for u, _ in results), raw=raws[0],
                          n_units=len(results))
        vals = [v for _, v in results]
        score = sum(vals) / len(vals) / (100.0 if dim in PERCENT_SCALE else 1.0) if vals else None
        return Merged(score=score, evaluated=frozenset(u.video for u, _ in results),
                      raw=[score, [item for r in raws for item in r[1]]], n_units=len(results))

    def protocol(self, dim: str) -> str:
        return "vbench single process per shard"

    def record_fields(self, dim: str, merged: Merged) -> dict:
        fields: dict[str, Any] = {"suite": self.suite, "protocol": self.protocol(dim)}
        if dim == "temporal_flickering":
            fields.update(static_filter=False, notes=[STATIC_FILTER_NOTE] if self.name != "custom" else [])
        return fields


class CustomMode(Mode):
    name = "custom"


class StandardMode(Mode):
    name = "standard"

    def shards(self, units: list[Unit]) -> list[list[Unit]]:
        size = self.cfg.shard_size
        if not size:
            return [units] if units else []
        groups: dict[int, list[Unit]] = defaultdict(list)  # keep a prompt's samples in one shard
        for u in units:
            groups[u.entry].append(u)
        shards, cur = [], []
        for g in groups.values():
            if cur and len(cur) + len(g) > size:
                shards.append(cur)
                cur = []
            cur += g
        return shards + ([cur] if cur else [])

    def worker_spec(self, dim: str, shard: list[Unit], work: Path) -> dict:
        entries = sorted({u.entry for u in shard})
        (work / "full_info.json").write_text(json.dumps([dict(self.full_info[i]) for i in entries], indent=1))
        return {"vbench_mode": "vbench_standard", "full_info": str(work / "full_info.json")}

    def settings(self, dim: str) -> dict:
        return {**super().settings(dim), "full_info_sha256": self.full_info_sha256}


class LongMode(Mode):
    name = "long"

    def shardable(self, dim: str) -> bool:
        return True

    def clip_seconds(self, e: comp.Expected) -> float:
        """VBench-Long's clip length of one video: custom suite 2 s; standard suite the longest over the dimensions
        of every full-info entry with this prompt (``get_duration_from_json``), not only the entry that lists
        ``dim`` (a prompt shared by appearance_style and overall_consistency gets 10 s clips for both)."""
        if self.full_info is None:
            return longmod.clip_seconds("", "custom")
        dims = tuple(d for x in self.full_info if x["prompt_en"] == e.prompt for d in x["dimension"])
        return longmod.clip_seconds("", "standard", dims)

    def units(self, dim: str) -> list[Unit]:
        units = []
        for e in self.present:
            if dim not in e.dimensions:
                continue
            secs = self.clip_seconds(e)
            src = self.cfg.videos / e.filename
            for clip in longmod.split_video(src, self.cfg.out / "clips" / f"{secs:g}s", secs,
                                            source_sha256=self.shas[e.filename]):
                units.append(Unit(path=clip, name=clip.name, prompt=e.prompt, video=e.filename,
                                  entry=self.entry_for(e, dim), content=f"{self.shas[e.filename]}:{secs:g}"))
        return units

    def text(self, u: Unit) -> str:
        return u.prompt if self.cfg.long_text == "prompt" else Path(u.video).stem

    def worker_spec(self, dim: str, shard: list[Unit], work: Path) -> dict:
        vids = work / "videos"
        if self.full_info is None:  # long_custom_input: one entry per long video, its clips as the video list
            by_video: dict[str, list[Unit]] = defaultdict(list)
            for u in shard:
                by_video[u.video].append(u)
            entries = [{"prompt_en": self.text(us[0]), "dimension": [dim], "video_list": [str(vids / u.name)
                                                                                      for u in us]}
                       for us in by_video.values()]
        else:  # long_vbench_standard: the suite's entries (auxiliary_info kept) with their clips
            by_entry: dict[int, list[Unit]] = defaultdict(list)
            for u in shard:
                by_entry[u.entry].append(u)
            entries = [{**self.full_info[k], "video_list": [str(vids / u.name) for u in us]}
                       for k, us in sorted(by_entry.items())]
        return {"vbench_mode": "entries", "entries": entries}

    def settings(self, dim: str) -> dict:
        out = {**super().settings(dim), "clip_rule": "custom: 2 s" if self.full_info is None else
               "standard: max over the prompt's full-info dimensions (clip_length_mix.yaml)"}
        if self.full_info is None and dim in ("temporal_style", "overall_consistency"):
            out["long_text"] = self.cfg.long_text
        if self.full_info is not None:
            out["full_info_sha256"] = self.full_info_sha256
        return out

    def merge(self, dim: str, files: list[Path], units: dict[str, Unit]) -> Merged:
        results = _per_unit(dim, files, units)
        per_video: dict[str, list[float]] = defaultdict(list)
        for u, v in results:
            per_video[u.video].append(v)
        means = {k: sum(v) / len(v) for k, v in per_video.items()}
        scale = 100.0 if dim in PERCENT_SCALE else 1.0
        score = sum(v for _, v in results) / len(results) / scale if results else None  # reorganize_clips_results
        raw = [score, [{"video_path": str(u.path), "video_results": v} for u, v in results],
               [{"video_path": k, "video_results": m} for k, m in means.items()]]
        return Merged(score=score, evaluated=frozenset(means), raw=raw, n_units=len(results), video_means=means,
                      unit_scores=tuple((u.video, v) for u, v in results))

    def protocol(self, dim: str) -> str:
        return "vbench-long in-clip (eval_long.py without --dev_flag)"

    def record_fields(self, dim: str, merged: Merged) -> dict:
        scale = 100.0 if dim in PERCENT_SCALE else 1.0
        fields = {**super().record_fields(dim, merged), "n_clips": merged.n_units, "slow_fast": False,
                  "long_aggregate": "mean over clips (vbench2_beta_long reorganize_clips_results)",
                  "video_mean_score": sum(merged.video_means.values()) / len(merged.video_means) / scale}
        if self.full_info is None and dim in ("temporal_style", "overall_consistency"):
            fields["long_text"] = self.cfg.long_text
        if dim == "temporal_flickering":
            fields["notes"] = [STATIC_FILTER_NOTE]
        return fields


MODES: dict[str, type[Mode]] = {"standard": StandardMode, "custom": CustomMode, "long": LongMode}


def _per_unit(dim: str, files: list[Path], units: dict[str, Unit]) -> list[tuple[Unit, float]]:
    """(unit, per-video result) of every result in VBench's shard files, matched by the file name VBench saw."""
    out = []
    for f in files:
        data = json.loads(f.read_text())
        if dim not in data:
            raise EvalkitError(f"{f}: VBench results hold no {dim!r} (keys {sorted(data)})")
        for item in data[dim][1]:
            if not isinstance(item, dict) or "video_path" not in item:
                continue
            u = units.get(Path(item["video_path"]).name)
            if u is None:
                raise EvalkitError(f"{f}: result for an unknown video {item['video_path']}")
            out.append((u, float(item["video_results"])))
    return out
