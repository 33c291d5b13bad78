"""The budgeted sweep: ``python -m evalkit sweep EXP --budget-s S`` runs the most important points first and
never starts one it predicts will not finish in what is left (experiments/paper_latency.yaml: Fig. 6a, Table 2,
Fig. 20 and Table 1 max frames in one GPU call).

1. **Plan** (:func:`plan_units`, a pure function of the units still due, the predictor and the seconds left).
   Units are (point, measurement) in priority order (parts in file order, then each part's points). Pass 1 gives
   every unit its *minimal* work (latency: one warm-up call, one timed iteration; max frames: two probes) in
   that order, greedily: a unit whose minimal cost does not fit what is left is not planned ("budget"), and
   later, cheaper units may still be. Peak memory comes free with a point's latency (the timed forwards'
   peak); a memory unit whose point's latency is not planned costs a forward of its own and is the lowest
   priority of all (the paper's memory claims rank after its latency claims), so it is considered last.
   Pass 2 spends what remains, again in priority order, raising each planned unit towards the work its
   settings ask for (warm-up calls, then ``min_iterations`` / ``min_seconds`` timed iterations, max frames'
   remaining probes).
2. **Run** (:func:`run_budgeted`): before each point the plan is made again from the real clock, with the
   predictor corrected by every latency measured so far (``Predictor.observe``). The point's planned units run
   (one ``run_items`` call: any launcher but submitit) with their iteration counts and a hard cap
   (``latency.max_seconds`` / ``max_frames.max_seconds`` = the seconds left) so that not even a forward slower
   than predicted overruns the budget; its unplanned units become ``skipped`` rows at once with
   ``skip_reason: budget``, the prediction and the seconds left. Resuming the same command retries those rows
   (evalkit.sweep.cli does not count them as done).

Every record of a budgeted run carries ``budget_s`` and ``predicted_s``. Pure python except for what the
measurements import.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evalkit.core.errors import FieldError
from evalkit.core.records import append, read_records, results_file
from evalkit.sweep.predict import CpuThroughput, CudaThroughput, Predictor, SimState, UnitPlan

if TYPE_CHECKING:
    from evalkit.measure.point import Point

FN = "evalkit.sweep.runner:run_point"
BUDGET = "budget"          # the skip_reason of a row the budget did not reach


@dataclass(frozen=True, kw_only=True)
class BudgetSettings:
    """The ``budget:`` section of a sweep file: ``--budget-s`` default and the devices' throughput profiles.

    ``device`` is the profile ``--dry-run`` plans for (``auto``: CUDA when torch sees it, else CPU); a real run
    always plans for the device it runs on. Excluded from the config hash: it changes which points run and how
    many iterations each gets, never what a record measures."""
    seconds: float = 0.0                     # 0: no budget (every point runs with its configured iterations)
    device: Literal["auto", "cuda", "cpu"] = "auto"
    reserve_s: float = 5.0                   # kept free at the end (summary table, plots)
    cuda: CudaThroughput = field(default_factory=CudaThroughput)
    cpu: CpuThroughput = field(default_factory=CpuThroughput)


def check_budget(b: BudgetSettings, where: str) -> None:
    """Ranges: every number >= 0, fractions in (0, 1], each per-model table with a ``default``."""
    for name, value in (("seconds", b.seconds), ("reserve_s", b.reserve_s)):
        if value < 0:
            raise FieldError(f"{where}.budget.{name}", f"must be >= 0, got {value}")
    from evalkit import models

    for dev, prof in (("cuda", b.cuda), ("cpu", b.cpu)):
        w = f"{where}.budget.{dev}"
        if not prof.peak_tflops > 0:
            raise FieldError(f"{w}.peak_tflops", f"must be > 0, got {prof.peak_tflops}")
        for name in ("forward_overhead_s", "import_s", "startup_s", "point_overhead_s", "build_s",
                     "build_s_per_gparam", "first_forward_s", "skip_s"):
            if getattr(prof, name) < 0:
                raise FieldError(f"{w}.{name}", f"must be >= 0, got {getattr(prof, name)}")
        for name in ("achieved_fraction", "meta_build_s", "count_s", "fvcore_s"):
            table = getattr(prof, name)
            if "default" not in table:
                raise FieldError(f"{w}.{name}", f"needs a 'default' entry (used for models not listed), got "
                                                f"{sorted(table)}")
            for model, v in table.items():
                if model != "default":
                    models.REGISTRY.entry(model, f"{w}.{name}.{model}")
                frac = name == "achieved_fraction"
                if (not 0 < v <= 1) if frac else v < 0:
                    raise FieldError(f"{w}.{name}.{model}", f"must be {'in (0, 1]' if frac else '>= 0'}, got {v}")


@dataclass(kw_only=True)
class Decision:
    """One unit of the plan: run it (with ``plan``) or not, and its predicted seconds."""
    point: Point
    measurement: str
    run: bool
    predicted_s: float
    plan: UnitPlan | None = None
    state: SimState | None = None       # the simulated process state the unit starts from
    note: str = ""                      # what the unit will do when it is not real work

    @property
    def key(self) -> str:
        return self.point.record_key(self.measurement)


def _adjustable(m: str) -> bool:
    return m in ("latency", "max_frames")


def plan_units(items: list[Point], predictor: Predictor, seconds: float,
               state: SimState | None = None) -> list[Decision]:
    """The plan of the due units of ``items`` (points, each with its due ``measurements``) in ``seconds``."""
    state = (state or predictor.initial_state()).copy()
    left = seconds
    out: list[Decision] = []
    deferred: list[int] = []

    def consider(point: Point, m: str, st: SimState, first: bool = False) -> Decision:
        nonlocal left
        extra = predictor.prof.point_overhead_s if first else 0.0
        plan = predictor.minimal(point, m, st) if _adjustable(m) else None
        cost = predictor.cost(point, m, st, plan) + extra
        if point.strict and plan is not None:       # a strict part's points: all they ask for, if it fits
            full = predictor.desired(point, m, st)
            full_cost = predictor.cost(point, m, st, full) + extra
            if full_cost <= left:
                plan, cost = full, full_cost
        note = _note(predictor, point, m, st)
        # a unit that only writes its `skipped` row (no CUDA here) is never held back by the budget
        d = Decision(point=point, measurement=m, run=cost <= left or note == NO_CUDA, predicted_s=cost, plan=plan,
                     state=st.copy(), note=note)
        if d.run:
            left -= min(cost, max(left, 0.0))
            predictor.apply(point, m, st)
        return d

    for point in items:                                 # pass 1: minimal work, greedily in priority order
        for m in point.measurements:
            lat = next((d for d in out if d.point is point and d.measurement == "latency"), None)
            if m == "memory" and lat is not None and not lat.run:
                deferred.append(len(out))               # its latency did not fit: memory alone, last of all
                out.append(Decision(point=point, measurement=m, run=False, predicted_s=0.0))
                continue
            out.append(consider(point, m, state, first=m == point.measurements[0]))
        predictor.end_point(state)
    for i in deferred:
        out[i] = consider(out[i].point, out[i].measurement, state)
        predictor.end_point(state)
    for d in out:                                       # pass 2: what remains, in priority order
        if not (d.run and _adjustable(d.measurement)):
            continue
        want = predictor.desired(d.point, d.measurement, d.state)
        while True:
            nxt = _next(d.plan, want)
            if nxt is None:
                break
            extra = predictor.cost(d.point, d.measurement, d.state, nxt) - d.predicted_s
            if extra > left:
                break
            left -= extra
            d.plan, d.predicted_s = nxt, d.predicted_s + extra
    return out


NO_CUDA = "skipped row (no CUDA)"


def _note(predictor: Predictor, point: Point, m: str, state: SimState) -> str:
    if predictor.skipped_on_cpu(point, m):
        return NO_CUDA
    if m == "memory" and predictor.cost(point, m, state) == predictor.prof.skip_s:
        return "latency's peak"
    return ""


def _next(plan: UnitPlan, want: UnitPlan) -> UnitPlan | None:
    """One step more work towards ``want``: a warm-up call first, then a timed iteration (a probe)."""
    if plan.warmup < want.warmup:
        return UnitPlan(warmup=plan.warmup + 1, iterations=plan.iterations)
    if plan.iterations < want.iterations:
        return UnitPlan(warmup=plan.warmup, iterations=plan.iterations + 1)
    return None


def predict_all(items: list[Point], predictor: Predictor) -> list[Decision]:
    """Every due unit with the work its settings ask for (no budget): the progress bar's clock."""
    state, out = predictor.initial_state(), []
    for point in items:
        for m in point.measurements:
            plan = predictor.desired(point, m) if _adjustable(m) else None
            extra = predictor.prof.point_overhead_s if m == point.measurements[0] else 0.0
            out.append(Decision(point=point, measurement=m, run=True, plan=plan,
                                note=_note(predictor, point, m, state),
                                predicted_s=predictor.cost(point, m, state, plan) + extra))
            predictor.apply(point, m, state)
        predictor.end_point(state)
    return out


def _plan_label(d: Decision) -> str:
    if not d.run:
        return "skip: budget"
    if d.note:
        return d.note
    if d.plan is None:
        return "-"
    if d.measurement == "max_frames":
        return f"<= {d.plan.iterations} probes"
    return f"warmup {d.plan.warmup} + {d.plan.iterations} it"


def plan_lines(decisions: list[Decision], *, device: str, budget_s: float | None) -> list[str]:
    """What ``--dry-run`` prints: one line per unit (order, key, plan, predicted and cumulative seconds) and the
    totals."""
    planned = [d for d in decisions if d.run]
    total = sum(d.predicted_s for d in planned)
    head = f"plan for {device}" + (f", budget {budget_s:g} s" if budget_s else ", no budget") + \
        f": {len(planned)} of {len(decisions)} (point, measurement) planned, predicted {total:.1f} s in total"
    w = max([len(d.key) for d in decisions] + [3])
    lines = [head, f"{'#':>4}  {'key':<{w}}  {'plan':<22}{'predicted':>11}{'cumulative':>12}"]
    cum = 0.0
    for i, d in enumerate(decisions, 1):
        cum += d.predicted_s if d.run else 0.0
        lines.append(f"{i:>4}  {d.key:<{w}}  {_plan_label(d):<22}{d.predicted_s:>10.1f}s{cum:>11.1f}s")
    skipped = [d for d in decisions if not d.run]
    lines.append(f"predicted total {total:.1f} s" + (f" of the {budget_s:g} s budget" if budget_s else "")
                 + (f"; {len(skipped)} not planned (budget): they would need "
                    f"{sum(d.predicted_s for d in skipped):.1f} s" if skipped else ""))
    return lines


def budget_item(point: Point, mine: list[Decision], left: float, budget_s: float, call_s: float = 0.0) -> Point:
    """The launcher item for one point: its planned measurements, their iteration counts and time caps, and the
    plan's figures for the records."""
    run = [d for d in mine if d.run]
    lat, mf = point.settings.latency, point.settings.max_frames
    after = 0.0
    for d in reversed(run):           # each unit's cap leaves room for the planned units after it
        cap = max(left - after, 1e-3)
        if d.measurement == "latency":
            lat = dataclasses.replace(lat, warmup=d.plan.warmup, min_iterations=d.plan.iterations,
                                      max_iterations=d.plan.iterations, min_seconds=0.0, max_seconds=round(cap, 3))
        elif d.measurement == "max_frames":
            mf = dataclasses.replace(mf, max_seconds=round(cap, 3))
        after += d.predicted_s
    budget = {d.measurement: {"budget_s": budget_s, "predicted_s": round(d.predicted_s, 3)} for d in run}
    if "latency" in budget:   # the planner's forward, for the cap's first judgement (measure.latency)
        budget["latency"]["predicted_call_s"] = round(call_s, 4)
    settings = point.settings.replace(latency=lat, max_frames=mf)
    return dataclasses.replace(point, measurements=tuple(d.measurement for d in run), settings=settings,
                               budget=budget)


def skipped_row(point: Point, d: Decision, run_dir: Path, budget_s: float, left: float) -> dict[str, Any]:
    from evalkit.sweep.runner import cost_record

    return cost_record(point, d.measurement, run_dir, status="skipped", skip_reason=BUDGET, budget_s=budget_s,
                       predicted_s=round(d.predicted_s, 3), seconds=0.0,
                       message=f"budget: predicted {d.predicted_s:.1f} s, {max(left, 0.0):.1f} s left of --budget-s "
                               f"{budget_s:g} after the points before it")


def run_budgeted(items: list[Point], predictor: Predictor, *, budget_s: float, started: float,
                 reserve_s: float, launch: Any, run_dir: Path, job_tag: str | None,
                 echo: Callable[[str], None], on_point: Callable[[Point, list[Decision], list[Decision]], None]
                 ) -> list[dict[str, Any]]:
    """Run ``items`` (points with their due measurements, in priority order) within ``budget_s`` seconds from
    ``started`` (a ``time.perf_counter()``); returns the launcher's errors. ``on_point(point, its decisions,
    the plan of everything after it)`` is called after each point (the progress bar)."""
    from evalkit.launch import run_items

    state, errors = predictor.initial_state(), []
    for i, point in enumerate(items):
        left = budget_s - reserve_s - (time.perf_counter() - started)
        plan = plan_units(items[i:], predictor, left, state)
        mine, rest = plan[:len(point.measurements)], plan[len(point.measurements):]
        for d in mine:
            if not d.run:
                append(results_file(run_dir, job_tag), skipped_row(point, d, run_dir, budget_s, left))
        run = [d for d in mine if d.run]
        if run:
            item = budget_item(point, mine, left, budget_s,
                               predictor.call_s(point) if "latency" in point.measurements else 0.0)
            result = run_items([item], FN, launch=launch, run_dir=run_dir, skip_done=set(),
                               name=f"sweep-{point.experiment}",
                               echo=echo, results_tag=job_tag)
            errors += [{**e, "item": item} for e in result["errors"]]
            keys = {d.key for d in run}
            got = {r["key"]: r for r in read_records([run_dir]) if r.get("key") in keys}
            for d in run:
                rec = got.get(d.key)
                if rec is not None:
                    predictor.observe(point, rec)
                if rec is None or rec.get("status") in ("oom", "error"):
                    state.real, state.real_warm, state.timed_points = None, False, set()   # context released
                else:
                    predictor.apply(point, d.measurement, state)
        predictor.end_point(state)
        on_point(point, mine, rest)
    return errors
