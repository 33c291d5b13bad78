"""Running one point: ``run_point(point_spec, run_dir, job_tag) -> list[record]``.

A plain function of plain data, the work function every launcher runs (``evalkit.launch``: in this process, in
a fresh subprocess, or as a SLURM job). Each measurement's records get the common point fields
(``records.CostRecord``) and are appended to ``<run_dir>/results.jsonl`` (``results.<job_tag>.jsonl`` for a
tagged job) as soon as they exist, so an interrupted sweep loses at most the measurement in flight. Failures are
rows: an exception is an ``error`` row with the message, an OOM an ``oom`` row; nothing is silently dropped.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from evalkit import measure
from evalkit.measure.common import Context, is_oom
from evalkit.records import append, results_file
from evalkit.runs import now_iso

_CTX: Context | None = None
COMMON_FIELDS = ("experiment", "model", "flavor", "variant", "resolution", "height", "width", "duration_s", "fps",
                 "num_frames", "latent_frames", "num_tokens", "params", "batch")
VARIATION_FIELDS = ("variation", "variation_axis", "variation_value")  # only in sweeps with variations
PART_FIELDS = ("part", "part_group", "part_index", "claim")             # only in sweeps with parts


def default_context() -> Context:
    """The per-process context (model cache), shared by consecutive in-process points."""
    global _CTX
    if _CTX is None:
        _CTX = Context()
    return _CTX


def base_record(spec: dict[str, Any], measurement: str, run_dir: Path) -> dict[str, Any]:
    rec = {k: spec.get(k) for k in COMMON_FIELDS}
    rec.update({k: spec[k] for k in VARIATION_FIELDS + PART_FIELDS if spec.get(k) is not None})
    if spec.get("budget"):   # the budget planner's figures for this measurement (evalkit.sweep.budget)
        rec.update(spec["budget"].get(measurement, {}))
    rec.update(key=spec["keys"][measurement], kind="cost", run_id=Path(run_dir).name, measurement=measurement,
               measurement_version=measure.version(measurement), model_overrides=spec.get("model_overrides") or {})
    return rec


def run_point(point_spec: dict[str, Any], run_dir: str | Path, job_tag: str | None = None, *,
              ctx: Context | None = None, skip_keys: Iterable[str] = (),
              on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every measurement of one point, append each record as it finishes, and return them."""
    ctx = ctx or default_context()
    run_dir = Path(run_dir)
    out_path = results_file(run_dir, job_tag)
    skip = set(skip_keys)
    records = []
    for m in point_spec["measurements"]:
        if point_spec["keys"][m] in skip:
            continue
        t0 = time.perf_counter()
        base = base_record(point_spec, m, run_dir)
        try:
            fn = measure.MEASUREMENTS.get(m)
            produced = fn(point_spec, point_spec["settings"], ctx)
        except Exception as exc:  # a failure is a row, never a crash of the sweep
            status = "oom" if is_oom(exc) else "error"
            if status == "oom":
                ctx.release(real_only=True)
            tb = traceback.format_exc(limit=6)
            produced = [{"status": status, "message": f"{type(exc).__name__}: {exc}"[:500],
                         "traceback": tb[-2000:]}]
        for rec in produced:
            full = {**base, **rec, "seconds": round(time.perf_counter() - t0, 3), "created": now_iso()}
            full.setdefault("message", "")
            append(out_path, full)
            records.append(full)
            if on_record is not None:
                on_record(full)
    return records
