"""Running one point: ``run_point(point, run_dir, job_tag) -> list[record]``.

The work function every launcher runs (``evalkit.launch``: in this process, in a fresh subprocess, or as a SLURM
job), on a :class:`~evalkit.measure.point.Point` (its JSON when it crossed a process boundary). Each
measurement's records get the point's fields (:func:`cost_record`) and are appended to ``<run_dir>/results.jsonl``
(``results.<job_tag>.jsonl`` for a tagged job) as soon as they exist, so an interrupted sweep loses at most the
measurement in flight. Failures are rows: an exception is an ``error`` row with the message, an OOM an ``oom``
row; nothing is silently dropped.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from evalkit import measure
from evalkit.core.records import append, results_file
from evalkit.core.schema import make_record
from evalkit.measure.common import Context, is_oom
from evalkit.measure.point import Point, as_point

_CTX: Context | None = None


def default_context() -> Context:
    """The per-process context (model cache), shared by consecutive in-process points."""
    global _CTX
    if _CTX is None:
        _CTX = Context()
    return _CTX


def cost_record(point: Point, measurement: str, run_dir: Path | str, **fields: Any) -> dict[str, Any]:
    """A ``cost`` record of one measurement at ``point``: the point's fields, the budget planner's figures for
    this measurement (``sweep --budget-s``), then the measurement's own ``fields``."""
    return make_record("cost", key=point.record_key(measurement), **point.record_fields(),
                       **point.budget.get(measurement, {}), run_id=Path(run_dir).name, measurement=measurement,
                       measurement_version=measure.version(measurement), **fields)


def run_point(item: Point | Mapping[str, Any], run_dir: str | Path, job_tag: str | None = None, *,
              ctx: Context | None = None, skip_keys: Iterable[str] = (),
              on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every measurement of one point, append each record as it finishes, and return them."""
    point = as_point(item)
    ctx = ctx or default_context()
    out_path = results_file(run_dir, job_tag)
    skip = set(skip_keys)
    records = []
    for m in point.measurements:
        if point.record_key(m) in skip:
            continue
        t0 = time.perf_counter()
        try:
            produced = measure.MEASUREMENTS.get(m)(point, ctx)
        except Exception as exc:  # a failure is a row, never a crash of the sweep
            status = "oom" if is_oom(exc) else "error"
            if status == "oom":
                ctx.release(real_only=True)
            tb = traceback.format_exc(limit=6)
            produced = [{"status": status, "message": f"{type(exc).__name__}: {exc}"[:500],
                         "traceback": tb[-2000:]}]
        for rec in produced:
            full = cost_record(point, m, run_dir, **{"message": "", **rec,
                                                     "seconds": round(time.perf_counter() - t0, 3)})
            append(out_path, full)
            records.append(full)
            if on_record is not None:
                on_record(full)
    return records
