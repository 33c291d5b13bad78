"""``python -m evalkit sweep``: the cost sweep (paper Fig. 1b / Fig. 6 scaling, Fig. 20, Table 1, Table 2).

Load + validate the experiment (every model, flavor and point, before any work) -> open or resume the run folder
(one writer at a time) -> hand every point with measurements not yet recorded to the launcher (``inline`` in
this process by default, ``process``: one subprocess per point, ``submitit``: SLURM) with a progress bar ->
summary table, plots into the run folder, and a one-line JSON summary as the last stdout line. Exit status 1
when any record of the run is an ``error`` (unless ``--keep-going``), 2 on bad input.

The progress bar counts predicted seconds (evalkit.sweep.predict), not records, so its ETA holds from the first
point. ``--budget-s S`` runs the points in priority order within S seconds (evalkit.sweep.budget): iterations
planned per point, no point started that is predicted not to finish, the rest ``skipped`` rows with
``skip_reason: budget`` (retried when the command runs again). ``--dry-run`` prints the plan with predicted
seconds per (point, measurement) and in total.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalkit.core.errors import FieldError
from evalkit.core.experiments import add_experiment_args, repo_relative
from evalkit.core.records import FINISHED, append, read_records, results_file
from evalkit.core.runs import DEFAULT_RUNS_ROOT, WriterLock, open_run
from evalkit.core.typed import finite, plain_name, to_dict
from evalkit.launch.config import add_launch_args, resolve_launch
from evalkit.measure.point import Point
from evalkit.sweep import plots, summary
from evalkit.sweep.budget import BUDGET, plan_lines, plan_units, predict_all, run_budgeted
from evalkit.sweep.config import DEFAULT_EXPERIMENT, NOT_HASHED, load_experiment
from evalkit.sweep.plan import due_points, plan_points
from evalkit.sweep.predict import Predictor

FN = "evalkit.sweep.runner:run_point"
EPILOG = """examples:
  python -m evalkit sweep                              # experiments/scaling.yaml (FLOPs on meta; < 1 min on CPU)
  python -m evalkit sweep --smoke                      # the file's smoke: section
  python -m evalkit sweep size_ladder --set sampling.steps=100
  python -m evalkit sweep ablations --launcher process --set launch.timeout_s=3600 --keep-going
  python -m evalkit sweep scaling --new-run --set 'measurements=[flops]'
  python -m evalkit sweep --dry-run                    # validate and print the plan (predicted seconds), run nothing
  python -m evalkit sweep paper_latency --dry-run      # the GPU latency plan within its default budget
  python -m evalkit sweep paper_latency --budget-s 420 # every latency claim, most important first, in 7 min
  python -m evalkit sweep paper_latency --part fig6a_512p --budget-s 600
  python -m evalkit sweep scaling --launcher submitit --set launch.partition=gpu --set launch.gpus_per_job=1 --dry-run
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit sweep", description=__doc__.split("\n\n")[1],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_experiment_args(p, DEFAULT_EXPERIMENT)
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT, help="where run folders go (default runs/)")
    p.add_argument("--run-dir", type=Path, default=None, help="write into this run folder (resume it if it exists)")
    p.add_argument("--new-run", action=argparse.BooleanOptionalAction, default=False,
                   help="start a new run folder instead of resuming the latest matching one")
    p.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=False,
                   help="exit 0 even if some records are errors")
    p.add_argument("--job-tag", default=None,
                   help="write results.<tag>.jsonl (several machines filling one shared run folder)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True, help="write the run's plots")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bar")
    p.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=False,
                   help="validate and print the plan (predicted seconds per record and in total); run nothing")
    p.add_argument("--budget-s", type=float, default=None, metavar="S",
                   help="run the most important points first within S seconds of wall time, planning iterations "
                        "per point (default: the file's budget.seconds; 0 = no budget)")
    p.add_argument("--part", dest="parts", action="append", default=[], metavar="NAME",
                   help="only this part of a file with parts (repeatable)")
    add_launch_args(p, dry_run=False)
    return p


def done_record_keys(run_dir: Path) -> set[str]:
    """Keys finished in the run: ``ok | flagged | oom | skipped`` except rows the budget did not reach."""
    if not run_dir.exists():
        return set()
    return {r["key"] for r in read_records([run_dir]) if "key" in r and r.get("status") in FINISHED
            and r.get("skip_reason") != BUDGET}


def _device(exp, dry_run: bool, points: list[Point]) -> str:
    """The device the plan is for: a run plans for where it runs; a dry run for ``budget.device`` (auto: here).
    FLOPs are counted on the CPU (meta tensors) wherever the sweep runs: no torch import to find out."""
    if all(m == "flops" for pt in points for m in pt.measurements):
        return "cpu"
    want = exp.config.budget.device
    if dry_run and want != "auto":
        return want
    import torch

    here = "cuda" if torch.cuda.is_available() else "cpu"
    if not dry_run and want not in ("auto", here):
        print(f"budget.device is {want}, but this run times on {here}: planning for {here}", file=sys.stderr)
    return here


class Clock:
    """The progress bar in predicted seconds: ``total`` is the work planned, ``advance`` adds the predicted
    seconds of what just finished; ``history`` keeps (elapsed, done, total, eta) after each point, where
    eta = (total - done) x elapsed / done: the bar's own estimate (also with the bar disabled)."""

    def __init__(self, total: float, desc: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.t0 = time.perf_counter()
        self.done, self.total = 0.0, float(total)
        self.bar = tqdm(total=round(total, 2), desc=desc, unit="s", disable=not enabled, file=sys.stderr,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} predicted s [{elapsed}<{remaining}]{postfix}")
        self.history: list[tuple[float, float, float, float | None]] = []

    def advance(self, seconds: float, total: float | None = None, label: str = "") -> None:
        self.done += seconds
        if total is not None:
            self.total = total
            self.bar.total = round(total, 2)
        self.bar.update(round(seconds, 2))
        if label:
            self.bar.set_postfix_str(label)
        elapsed = time.perf_counter() - self.t0
        eta = (self.total - self.done) * elapsed / self.done if self.done > 0 else None
        self.history.append((elapsed, self.done, self.total, eta))

    def close(self) -> None:
        self.bar.close()


def _label(pt: Point) -> str:
    dur = "max" if pt.duration_s is None else format(pt.duration_s, "g")
    return f"{pt.tag.part + ' ' if pt.tag.part else ''}{pt.model}/{pt.flavor} {pt.height}x{pt.width} {dur}s"


def _latest(run_dir: Path, keys: set[str]) -> dict[str, dict]:
    """The current (merged) record of each of ``keys`` in the run."""
    return {r["key"]: r for r in read_records([run_dir]) if r.get("key") in keys}


def _record_keys(points: Sequence[Point]) -> set[str]:
    return {pt.record_key(m) for pt in points for m in pt.measurements}


def record_failures(errors: list[dict[str, Any]], items: dict[str, Point], before: dict[str, dict],
                    run_dir: Path, job_tag: str | None) -> None:
    """A point job that died (killed, OOM-killed, timed out) wrote no record for the measurements it did not
    reach: give each of them an ``oom`` / ``error`` row, so failures are data and the next run retries them."""
    if not errors:
        return
    after = _latest(run_dir, _record_keys(list(items.values())))
    from evalkit.sweep.runner import cost_record

    for err in errors:
        print(f"point failed: {err['key']}: {err.get('message', '')}", file=sys.stderr)
        point = items[err["key"]]
        for m in point.measurements:
            key = point.record_key(m)
            if key not in after or after[key] == before.get(key):   # nothing new written for this key
                append(results_file(run_dir, job_tag), cost_record(
                    point, m, run_dir, status="oom" if err.get("oom") else "error",
                    message=f"point job failed: {err.get('message', '')}"[:500]))


def main(argv: Sequence[str], *, on_clock: Callable[[Clock], None] | None = None) -> int:
    """``python -m evalkit sweep``; ``on_clock`` receives the run's progress clock (benchmarks/sweep_eta.py)."""
    t0 = time.perf_counter()
    args = build_parser().parse_args(list(argv))
    exp = load_experiment(args.experiment, smoke=args.smoke, sets=args.sets)
    launch = resolve_launch(to_dict(exp.config.launch), launcher=args.launcher, where=f"{exp.name}.launch")
    if args.job_tag is not None:
        plain_name("--job-tag", args.job_tag)
    points = plan_points(exp, args.parts)          # validates every model/flavor/point before any work
    budget_s = exp.config.budget.seconds if args.budget_s is None else finite("--budget-s", args.budget_s, minimum=0)
    if budget_s and launch.launcher == "submitit":
        raise FieldError("--budget-s", "a budget runs the points one after another from this process: use "
                                       "launch.launcher inline or process (submitit jobs run elsewhere, at once)")
    timed = {"latency", "memory", "max_frames"} & {m for pt in points for m in pt.measurements}
    if launch.launcher == "process" and launch.workers > 1 and timed:
        import torch

        if torch.cuda.is_available():
            raise FieldError("launch.workers", f"{launch.workers} processes at once would share the GPU while "
                                               f"timing ({', '.join(sorted(timed))}): use 1, or measure flops only")
    if args.dry_run:
        from evalkit.launch import run_items

        run_items(points, FN, launch=launch, dry_run=True, skip_done=set(), name=f"sweep-{exp.name}",
                  run_dir=args.run_dir or args.runs_root / exp.name / "<new run>")
        device = _device(exp, dry_run=True, points=points)
        predictor = Predictor(exp.config.budget, device, launch.launcher)
        decisions = plan_units(points, predictor, budget_s - exp.config.budget.reserve_s) if budget_s else \
            predict_all(points, predictor)
        for line in plan_lines(decisions, device=device, budget_s=budget_s):
            print(line)
        planned = [d for d in decisions if d.run]
        print(json.dumps({"experiment": exp.name, "config_hash": exp.config_hash(), "points": len(points),
                          "planned": len(planned), "not_planned_budget": len(decisions) - len(planned),
                          "predicted_s": round(sum(d.predicted_s for d in planned), 1), "budget_s": budget_s,
                          "device": device}))
        return 0
    run_dir, resumed = open_run(
        args.runs_root / exp.name, exp.config_hash(), run_dir=args.run_dir, new_run=args.new_run,
        manifest={"experiment": exp.name, "kind": "sweep", "config": exp.resolved(),
                  "experiment_file": repo_relative(exp.path), "smoke": exp.smoke, "sets": list(exp.sets),
                  "command": " ".join(["python -m evalkit sweep", *argv])}, ignore=NOT_HASHED)
    with WriterLock(run_dir, args.job_tag):
        ran, clock = _run(exp, points, launch, run_dir, resumed, args, budget_s, t0)
    if on_clock is not None:
        on_clock(clock)
    records = [r for r in read_records([run_dir]) if r.get("kind") == "cost"]
    print(summary.table(records))
    for r in summary.flops_ratios(records):
        print(f"DiT/LinGen counted FLOPs, {r['flavor']} {r['height']}x{r['width']} {r['duration_s']:g} s: "
              f"{r['ratio']:.2f}x")
    written = plots.write_plots(records, run_dir) if args.plots else []
    for rec in records:
        if rec["status"] in ("error", "flagged"):
            print(f"{rec['status']}: {rec['key']}: {rec.get('message', '')}", file=sys.stderr)
    planned = sum(len(pt.measurements) for pt in points)
    line = summary.summary_json(records, experiment=exp.name, run_dir=str(run_dir), resumed=resumed,
                                seconds=time.perf_counter() - t0, ran=ran, skipped_done=planned - ran,
                                plots=written)
    print(json.dumps(line, sort_keys=False))
    errors = sum(1 for r in records if r["status"] == "error")
    return 1 if errors and not args.keep_going else 0


def _run(exp, points: list[Point], launch, run_dir: Path, resumed: bool, args, budget_s: float,
         t0: float) -> tuple[int, Clock]:
    """Run the points not yet recorded; returns how many (point, measurement) records were due, and the clock."""
    from evalkit.launch import run_items

    items = {pt.key: pt for pt in due_points(points, done_record_keys(run_dir))}
    due = sum(len(pt.measurements) for pt in items.values())
    planned = sum(len(pt.measurements) for pt in points)
    print(f"{'resuming' if resumed else 'new run'} {run_dir} ({due} to run, {planned - due} already done, "
          f"launcher {launch.launcher}{f', budget {budget_s:g} s' if budget_s else ''})", file=sys.stderr)
    predictor = Predictor(exp.config.budget, _device(exp, False, list(items.values())), launch.launcher)
    before = _latest(run_dir, _record_keys(list(items.values())))
    if budget_s:
        order = list(items.values())
        first = plan_units(order, predictor, budget_s - exp.config.budget.reserve_s - (time.perf_counter() - t0))
        clock = Clock(sum(d.predicted_s for d in first if d.run), f"sweep {exp.name}", args.progress)

        def on_point(pt: Point, mine: list, rest: list) -> None:
            clock.advance(sum(d.predicted_s for d in mine if d.run),
                          total=clock.done + sum(d.predicted_s for d in mine + rest if d.run), label=_label(pt))

        errors = run_budgeted(order, predictor, budget_s=budget_s, started=t0,
                              reserve_s=exp.config.budget.reserve_s, launch=launch, run_dir=run_dir,
                              job_tag=args.job_tag, echo=lambda s_: print(s_, file=sys.stderr), on_point=on_point)
        record_failures(errors, {e["item"].key: e["item"] for e in errors}, before, run_dir, args.job_tag)
    else:
        per_item: dict[str, float] = {}
        for d in predict_all(list(items.values()), predictor):
            per_item[d.point.key] = per_item.get(d.point.key, 0.0) + d.predicted_s
        clock = Clock(sum(per_item.values()), f"sweep {exp.name}", args.progress)

        def on_item(key: str, status: str) -> None:
            clock.advance(per_item.get(key, 0.0), label=_label(items[key]))

        def finished(folder: Path) -> set[str]:
            """Points whose records are all in, read again by run_items after it has asked what is in flight
            (a job of an earlier ``wait: false`` command that ends in between has its points finished here)."""
            return set(items) - {pt.key for pt in due_points(list(items.values()), done_record_keys(folder))}

        result = run_items(list(items.values()), FN, launch=launch, run_dir=run_dir, skip_done=finished,
                           name=f"sweep-{exp.name}",
                           echo=lambda s_: print(s_, file=sys.stderr), on_item=on_item, results_tag=args.job_tag)
        record_failures(result["errors"], items, before, run_dir, args.job_tag)
        # what this command ran: not the points still on SLURM from an earlier wait:false submission (nor those
        # such a job finished meanwhile), nor (wait: false again) the ones it has just submitted and left running
        left = set(items) if result["unknown"] else set(items) - set(result["submitted_keys"])
        due -= sum(len(items[k].measurements) for k in left)
    clock.close()
    return due, clock
