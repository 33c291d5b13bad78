"""``python -m evalkit sweep``: the cost sweep (paper Fig. 1b / Fig. 6 scaling, Fig. 20, Table 1, Table 2).

Load + validate the experiment (every model, flavor and point, before any work) -> open or resume the run folder
-> run each point x measurement not yet done (in-process, or ``--isolate``: one subprocess per point) with a
progress bar -> summary table, plots into the run folder, and a one-line JSON summary as the last stdout line.
Exit status 1 when any record of the run is an ``error`` (unless ``--keep-going``), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from evalkit.cluster import add_cluster_args
from evalkit.experiment import add_experiment_args, load_experiment
from evalkit.results import append_record, done_keys, now_iso, read_records
from evalkit.sweep import plots, summary
from evalkit.sweep.plan import plan_points
from evalkit.sweep.rundir import DEFAULT_RUNS_ROOT, open_run
from evalkit.sweep.runner import base_record, results_path, run_point

EPILOG = """examples:
  python -m evalkit sweep                              # experiments/scaling.yaml (FLOPs on meta; < 1 min on CPU)
  python -m evalkit sweep --smoke                      # the file's smoke: section
  python -m evalkit sweep size_ladder --set sampling.steps=100
  python -m evalkit sweep ablations --isolate --keep-going
  python -m evalkit sweep scaling --new-run --set 'measurements=[flops]'
  python -m evalkit sweep --dry-run                    # validate and list the planned records, run nothing
  python -m evalkit sweep scaling --executor submitit --set cluster.partition=gpu --set cluster.gpus_per_job=1
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit sweep", description=__doc__.split("\n\n")[1],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_experiment_args(p)
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT, help="where run folders go (default runs/)")
    p.add_argument("--run-dir", type=Path, default=None, help="write into this run folder (resume it if it exists)")
    p.add_argument("--new-run", action=argparse.BooleanOptionalAction, default=False,
                   help="start a new run folder instead of resuming the latest matching one")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="run each point in a fresh subprocess (default: the file's executor.isolate)")
    p.add_argument("--flops-workers", type=int, default=None,
                   help="processes counting FLOPs in parallel without CUDA (default: the file's executor.flops_workers)")
    p.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=False,
                   help="exit 0 even if some records are errors")
    p.add_argument("--job-tag", default=None, help="write results.<tag>.jsonl (parallel jobs into one run)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True, help="write the run's plots")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bar")
    p.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=False,
                   help="validate and print the plan; run nothing")
    add_cluster_args(p, dry_run=False)
    return p


def _run_isolated(spec: dict, run_dir: Path, job_tag: str | None, skip: set[str], timeout_s: float) -> int:
    """One point in ``python -m evalkit.sweep.point``; rows for the keys the child did not write."""
    todo = {m: k for m, k in spec["keys"].items() if k not in skip}
    spec = {**spec, "measurements": [m for m in spec["measurements"] if m in todo]}
    before = _latest(run_dir, set(todo.values()))  # e.g. an error row of an earlier attempt, to be retried
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    cmd = [sys.executable, "-m", "evalkit.sweep.point", "--spec", fh.name, "--run-dir", str(run_dir)]
    if job_tag:
        cmd += ["--job-tag", job_tag]
    timed_out = False
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        rc, err = proc.returncode, proc.stderr or ""
    except subprocess.TimeoutExpired as exc:
        timed_out, rc = True, None
        err = f"killed after executor.point_timeout_s={timeout_s:g} s; {exc.stderr or ''}"
    finally:
        Path(fh.name).unlink(missing_ok=True)
    # a child killed by SIGKILL without a timeout is most likely the kernel's out-of-memory killer
    oom = not timed_out and (rc == -9 or "out of memory" in err.lower())
    after = _latest(run_dir, set(todo.values()))
    for m, key in todo.items():
        if key not in after or after[key] == before.get(key):  # the child wrote nothing new for this key
            append_record(results_path(run_dir, job_tag), {
                **base_record(spec, m, run_dir), "status": "oom" if oom else "error",
                "message": f"isolated point {'timed out' if timed_out else f'exited with status {rc}'}: "
                           f"{err.strip()[-400:]}", "created": now_iso()})
    return len(todo)


def _latest(run_dir: Path, keys: set[str]) -> dict[str, dict]:
    """The current (merged) record of each of ``keys`` in the run."""
    return {r["key"]: r for r in read_records([run_dir]) if r.get("key") in keys} if run_dir.exists() else {}


def _cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()


def _flops_worker(args: tuple) -> int:
    spec, run_dir, job_tag, done = args
    return len(run_point(spec, run_dir, job_tag, skip_keys=done))


def _count_flops_in_pool(specs: list[dict], done: set[str], run_dir: Path, job_tag: str | None, workers: int,
                         bar) -> list[dict]:
    """Run the pending ``flops`` measurements in ``workers`` processes (CPU only; meta-device counting is
    independent per point); return the specs with ``flops`` removed, for the serial pass."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [({**s, "measurements": ["flops"]}, run_dir, job_tag, done) for s in specs
            if "flops" in s["measurements"] and s["keys"]["flops"] not in done]
    if jobs:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for n in pool.map(_flops_worker, jobs):
                bar.update(n)
    return [{**s, "measurements": [m for m in s["measurements"] if m != "flops"]} for s in specs]


def _submit(exp, specs: list[dict], done: set[str], run_dir: Path, executor: str | None) -> None:
    """The pending points as submitit/SLURM jobs running ``run_point`` (evalkit.executors; waits per
    ``cluster.wait``); every job writes its own ``results.<job>.jsonl`` in the run folder."""
    from evalkit.executors import point_items, run_items
    from evalkit.typed import to_dict
    from evalkit.cluster import resolve_cluster

    cfg = resolve_cluster(to_dict(exp.config.cluster), executor=executor)
    items = {it["key"]: it for it in point_items(specs, done)}
    pending = {k for it in items.values() for m, k in it["keys"].items() if m in it["measurements"]}
    before = _latest(run_dir, pending)  # error rows of earlier attempts, to tell them from this attempt's
    result = run_items(point_items(specs, done), "evalkit.sweep.runner:run_point", executor=cfg, run_dir=run_dir,
                       skip_done=set(), name=f"sweep-{exp.name}", echo=lambda s: print(s, file=sys.stderr))
    after = _latest(run_dir, pending)
    for err in result.get("errors", []):
        print(f"job error: {err.get('key')}: {err.get('message', '')}", file=sys.stderr)
        item = items[err["key"]]
        for m in item["measurements"]:
            key = item["keys"][m]
            if key not in after or after[key] == before.get(key):  # the job wrote nothing new for this key
                append_record(results_path(run_dir, "cluster"), {
                    **base_record(item, m, run_dir), "status": "error", "created": now_iso(),
                    "message": f"cluster job failed: {err.get('message', '')}"[:500]})


def main(argv: Sequence[str]) -> int:
    t0 = time.perf_counter()
    args = build_parser().parse_args(list(argv))
    exp = load_experiment(args.experiment, smoke=args.smoke, sets=args.sets)
    specs = plan_points(exp)                       # validates every model/flavor/point before any work
    if args.dry_run and (args.executor or exp.config.cluster.executor) == "submitit":
        from evalkit.cluster import resolve_cluster
        from evalkit.executors import point_items, run_items
        from evalkit.typed import to_dict

        run_items(point_items(specs, set()), "evalkit.sweep.runner:run_point", dry_run=True, skip_done=set(),
                  executor=resolve_cluster(to_dict(exp.config.cluster), executor=args.executor),
                  run_dir=args.run_dir or args.runs_root / exp.name / "<new run>")
    if args.dry_run:
        for s in specs:
            for m in s["measurements"]:
                print(s["keys"][m])
        print(json.dumps({"experiment": exp.name, "config_hash": exp.config_hash(), "points": len(specs),
                          "planned": sum(len(s["measurements"]) for s in specs)}))
        return 0
    run_dir, resumed = open_run(exp, runs_root=args.runs_root, run_dir=args.run_dir, new_run=args.new_run,
                                argv=list(argv))
    done = done_keys(run_dir, ("ok", "oom", "skipped", "flagged"))
    todo = [(s, m) for s in specs for m in s["measurements"] if s["keys"][m] not in done]
    planned = sum(len(s["measurements"]) for s in specs)
    isolate = exp.config.executor.isolate if args.isolate is None else args.isolate
    print(f"{'resuming' if resumed else 'new run'} {run_dir} ({len(todo)} to run, "
          f"{planned - len(todo)} already done, "
          f"{'isolated' if isolate else 'in-process'})", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"sweep {exp.name}", unit="rec", disable=not args.progress, file=sys.stderr)
    executor = args.executor or exp.config.cluster.executor
    workers = exp.config.executor.flops_workers if args.flops_workers is None else args.flops_workers
    if executor == "submitit":
        _submit(exp, specs, done, run_dir, args.executor)
        specs = []
    elif workers > 1 and not isolate and not _cuda_present():
        specs = _count_flops_in_pool(specs, done, run_dir, args.job_tag, workers, bar)
    for spec in specs:
        if all(spec["keys"][m] in done for m in spec["measurements"]):
            continue
        bar.set_postfix_str(f"{spec['model']}/{spec['flavor']} {spec['height']}x{spec['width']} "
                            f"{'max' if spec['duration_s'] is None else format(spec['duration_s'], 'g')}s")
        if isolate:
            bar.update(_run_isolated(spec, run_dir, args.job_tag, done, exp.config.executor.point_timeout_s))
        else:
            run_point(spec, run_dir, args.job_tag, skip_keys=done, on_record=lambda _r: bar.update(1))
    bar.close()
    records = [r for r in read_records([run_dir]) if r.get("kind") == "cost"]
    print(summary.table(records))
    for r in summary.flops_ratios(records):
        print(f"DiT/LinGen counted FLOPs, {r['flavor']} {r['height']}x{r['width']} {r['duration_s']:g} s: "
              f"{r['ratio']:.2f}x")
    written = plots.write_plots(records, run_dir) if args.plots else []
    for rec in records:
        if rec["status"] in ("error", "flagged"):
            print(f"{rec['status']}: {rec['key']}: {rec.get('message', '')}", file=sys.stderr)
    line = summary.summary_json(records, experiment=exp.name, run_dir=str(run_dir), resumed=resumed,
                                seconds=time.perf_counter() - t0, ran=len(todo),
                                skipped_done=planned - len(todo), plots=written)
    print(json.dumps(line, sort_keys=False))
    errors = sum(1 for r in records if r["status"] == "error")
    return 1 if errors and not args.keep_going else 0
