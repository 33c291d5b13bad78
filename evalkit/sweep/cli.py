"""``python -m evalkit sweep``: the cost sweep (paper Fig. 1b / Fig. 6 scaling, Fig. 20, Table 1, Table 2).

Load + validate the experiment (every model, flavor and point, before any work) -> open or resume the run folder
(one writer at a time) -> hand every point with measurements not yet recorded to the launcher (``inline`` in
this process by default, ``process``: one subprocess per point, ``submitit``: SLURM) with a progress bar ->
summary table, plots into the run folder, and a one-line JSON summary as the last stdout line. Exit status 1
when any record of the run is an ``error`` (unless ``--keep-going``), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import FieldError
from evalkit.experiment import add_experiment_args, load_experiment
from evalkit.launch.config import add_launch_args, resolve_launch
from evalkit.records import append, done_keys, read_records, results_file
from evalkit.runs import DEFAULT_RUNS_ROOT, WriterLock, now_iso, open_run
from evalkit.sweep import plots, summary
from evalkit.sweep.plan import plan_points, point_items
from evalkit.typed import plain_name, to_dict

FN = "evalkit.sweep.runner:run_point"
EPILOG = """examples:
  python -m evalkit sweep                              # experiments/scaling.yaml (FLOPs on meta; < 1 min on CPU)
  python -m evalkit sweep --smoke                      # the file's smoke: section
  python -m evalkit sweep size_ladder --set sampling.steps=100
  python -m evalkit sweep ablations --launcher process --set launch.timeout_s=3600 --keep-going
  python -m evalkit sweep scaling --new-run --set 'measurements=[flops]'
  python -m evalkit sweep --dry-run                    # validate and list the planned records, run nothing
  python -m evalkit sweep scaling --launcher submitit --set launch.partition=gpu --set launch.gpus_per_job=1 --dry-run
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit sweep", description=__doc__.split("\n\n")[1],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_experiment_args(p)
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
                   help="validate and print the plan; run nothing")
    add_launch_args(p, dry_run=False)
    return p


def _latest(run_dir: Path, keys: set[str]) -> dict[str, dict]:
    """The current (merged) record of each of ``keys`` in the run."""
    return {r["key"]: r for r in read_records([run_dir]) if r.get("key") in keys}


def record_failures(errors: list[dict[str, Any]], items: dict[str, dict], before: dict[str, dict],
                    run_dir: Path, job_tag: str | None) -> None:
    """A point job that died (killed, OOM-killed, timed out) wrote no record for the measurements it did not
    reach: give each of them an ``oom`` / ``error`` row, so failures are data and the next run retries them."""
    if not errors:
        return
    after = _latest(run_dir, {k for it in items.values() for k in it["keys"].values()})
    from evalkit.sweep.runner import base_record

    for err in errors:
        print(f"point failed: {err['key']}: {err.get('message', '')}", file=sys.stderr)
        item = items[err["key"]]
        for m in item["measurements"]:
            key = item["keys"][m]
            if key not in after or after[key] == before.get(key):   # nothing new written for this key
                append(results_file(run_dir, job_tag), {
                    **base_record(item, m, run_dir), "status": "oom" if err.get("oom") else "error",
                    "created": now_iso(), "message": f"point job failed: {err.get('message', '')}"[:500]})


def main(argv: Sequence[str]) -> int:
    t0 = time.perf_counter()
    args = build_parser().parse_args(list(argv))
    exp = load_experiment(args.experiment, smoke=args.smoke, sets=args.sets)
    launch = resolve_launch(to_dict(exp.config.launch), launcher=args.launcher, where=f"{exp.name}.launch")
    if args.job_tag is not None:
        plain_name("--job-tag", args.job_tag)
    specs = plan_points(exp)                       # validates every model/flavor/point before any work
    timed = {"latency", "memory", "max_frames"} & set(exp.config.measurements)
    if launch.launcher == "process" and launch.workers > 1 and timed:
        import torch

        if torch.cuda.is_available():
            raise FieldError("launch.workers", f"{launch.workers} processes at once would share the GPU while "
                                               f"timing ({', '.join(sorted(timed))}): use 1, or measure flops only")
    if args.dry_run:
        from evalkit.launch import run_items

        run_items(point_items(specs, set()), FN, launch=launch, dry_run=True, skip_done=set(),
                  run_dir=args.run_dir or args.runs_root / exp.name / "<new run>")
        for s in specs:
            for m in s["measurements"]:
                print(s["keys"][m])
        print(json.dumps({"experiment": exp.name, "config_hash": exp.config_hash(), "points": len(specs),
                          "planned": sum(len(s["measurements"]) for s in specs)}))
        return 0
    run_dir, resumed = open_run(
        args.runs_root / exp.name, exp.config_hash(), run_dir=args.run_dir, new_run=args.new_run,
        manifest={"experiment": exp.name, "kind": "sweep", "config": exp.resolved(),
                  "experiment_file": str(exp.path), "smoke": exp.smoke, "sets": list(exp.sets),
                  "command": " ".join(["python -m evalkit sweep", *argv])})
    with WriterLock(run_dir, args.job_tag):
        ran = _run(exp, specs, launch, run_dir, resumed, args)
    records = [r for r in read_records([run_dir]) if r.get("kind") == "cost"]
    print(summary.table(records))
    for r in summary.flops_ratios(records):
        print(f"DiT/LinGen counted FLOPs, {r['flavor']} {r['height']}x{r['width']} {r['duration_s']:g} s: "
              f"{r['ratio']:.2f}x")
    written = plots.write_plots(records, run_dir) if args.plots else []
    for rec in records:
        if rec["status"] in ("error", "flagged"):
            print(f"{rec['status']}: {rec['key']}: {rec.get('message', '')}", file=sys.stderr)
    planned = sum(len(s["measurements"]) for s in specs)
    line = summary.summary_json(records, experiment=exp.name, run_dir=str(run_dir), resumed=resumed,
                                seconds=time.perf_counter() - t0, ran=ran, skipped_done=planned - ran,
                                plots=written)
    print(json.dumps(line, sort_keys=False))
    errors = sum(1 for r in records if r["status"] == "error")
    return 1 if errors and not args.keep_going else 0


def _run(exp, specs: list[dict], launch, run_dir: Path, resumed: bool, args) -> int:
    """Run the points not yet recorded; returns how many (point, measurement) records were due."""
    from tqdm import tqdm

    from evalkit.launch import run_items

    items = {it["key"]: it for it in point_items(specs, done_keys(run_dir))}
    due = sum(len(it["measurements"]) for it in items.values())
    planned = sum(len(s["measurements"]) for s in specs)
    print(f"{'resuming' if resumed else 'new run'} {run_dir} ({due} to run, {planned - due} already done, "
          f"launcher {launch.launcher})", file=sys.stderr)
    bar = tqdm(total=due, desc=f"sweep {exp.name}", unit="rec", disable=not args.progress, file=sys.stderr)

    def on_item(key: str, status: str) -> None:
        it = items[key]
        bar.set_postfix_str(f"{it['model']}/{it['flavor']} {it['height']}x{it['width']} "
                            f"{'max' if it['duration_s'] is None else format(it['duration_s'], 'g')}s")
        bar.update(len(it["measurements"]))

    before = _latest(run_dir, {k for it in items.values() for k in it["keys"].values()})
    result = run_items(list(items.values()), FN, launch=launch, run_dir=run_dir, skip_done=set(),
                       name=f"sweep-{exp.name}", echo=lambda s: print(s, file=sys.stderr), on_item=on_item,
                       results_tag=args.job_tag)
    record_failures(result["errors"], items, before, run_dir, args.job_tag)
    bar.close()
    return due
