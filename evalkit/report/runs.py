"""Published runs as DataFrames: every record of each run folder plus the run's identity from its manifest
(experiment, run_id, git sha and hardware of the run, never the current checkout's)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.core.errors import FieldError
from evalkit.core.records import read_records
from evalkit.core.typed import plain_name

RESOLUTION_NOTE = "resolution label = '<shorter side in pixels>p' (e.g. 512p), from the records' height/width"


@dataclass(frozen=True, kw_only=True)
class Run:
    path: Path
    experiment: str
    run_id: str
    git_sha: str
    hardware: str
    manifest: dict[str, Any]


def hardware_label(hw: dict[str, Any] | None) -> str:
    """'NVIDIA H100 80GB HBM3 x1' for a GPU manifest, 'CPU x86_64, 2 cores' otherwise."""
    hw = hw or {}
    if hw.get("gpu"):
        return f"{hw['gpu']} x{hw.get('gpu_count', 1)}"
    return f"CPU {hw.get('machine', '?')}, {hw.get('cpu_count', '?')} cores"


def load_run(path: Path) -> Run:
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise FieldError("run_dir", f"{path} has no manifest.json (a run folder holds manifest.json + results*.jsonl)")
    if not list(path.glob("results*.jsonl")):
        raise FieldError("run_dir", f"{path} has no results*.jsonl")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FieldError("run_dir", f"{mpath} is not valid JSON ({exc})") from None
    experiment = plain_name(f"{mpath}: experiment", str(m.get("experiment", path.parent.name)))
    run_id = plain_name(f"{mpath}: run_id", str(m.get("run_id", path.name)))
    return Run(path=path, experiment=experiment, run_id=run_id, git_sha=str(m.get("git_sha", "unknown")),
               hardware=hardware_label(m.get("hardware")), manifest=m)


def records_frame(runs: list[Run]) -> pd.DataFrame:
    """All records of ``runs``; columns ``_run_id``, ``_experiment``, ``_git_sha``, ``_hardware`` added,
    ``_part_group`` (the record's ``part_group`` in a sweep with parts, else ""; renderers treat each group of a
    run like an experiment of its own). Where height/width exist, the reports' ``resolution`` is the label
    :data:`RESOLUTION_NOTE` describes, derived the same way for every experiment (a sensitivity sweep's frame
    ``512x512`` is also ``512p``); the name the experiment gave the frame stays in ``resolution_name``."""
    frames = []
    for run in runs:
        recs = read_records([run.path], strict=True)   # a torn or corrupt line fails the report, naming it
        if not recs:
            continue
        df = pd.DataFrame(recs)
        df["_run_id"], df["_experiment"] = run.run_id, run.experiment
        df["_git_sha"], df["_hardware"] = run.git_sha, run.hardware
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["kind", "_run_id", "_part_group"])
    df = pd.concat(frames, ignore_index=True, sort=False)
    df["_part_group"] = df["part_group"].fillna("").astype(str) if "part_group" in df else ""
    if "height" in df and "width" in df:
        short = df[["height", "width"]].min(axis=1)
        if "resolution" in df:
            df["resolution_name"] = df["resolution"]
        df["resolution"] = [f"{int(s)}p" if pd.notna(s) else None for s in short]
    return df


def run_ids(df: pd.DataFrame, runs: list[Run]) -> tuple[tuple[str, str, str], ...]:
    """(experiment, run_id, git_sha) of the runs that contributed rows to ``df``."""
    used = set(df["_run_id"]) if "_run_id" in df else set()
    return tuple(sorted({(r.experiment, r.run_id, r.git_sha) for r in runs if r.run_id in used}))
