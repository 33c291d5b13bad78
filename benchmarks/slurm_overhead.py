"""Benchmark (not a timed test): what running a sweep's points as SLURM jobs costs over running them inline.

Runs the same sweep (default: the default experiment, ``python -m evalkit sweep``: 22 point jobs, FLOPs on meta)
in fresh run folders with ``--launcher inline``, ``--launcher process`` (a fresh interpreter per job, one at a
time) and ``--launcher submitit --set launch.submitit_cluster=slurm`` with the array throttle at 1 and at 2 (the
node's CPUs) and with 8 points per job (``launch.items_per_job=8``), each under ``/usr/bin/time``; checks that
every run's records equal the inline run's (timings and timestamps aside); prints wall time, max RSS of the command, the overhead per job over inline when jobs run one
at a time (``(wall - inline wall) / jobs``), and, from sacct and the job files, where a SLURM run's time goes
(submission to first start, gaps between jobs, each job's items vs its interpreter start-up and teardown, the
last job's end to the command's exit). Prints the machine load before and after (the box may be shared).

Needs a running cluster: ``tests/slurm/cluster.sh start`` (root) and ``eval "$(tests/slurm/cluster.sh env)"``.

    python benchmarks/slurm_overhead.py [--smoke] [--keep DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLURM = ["--launcher", "submitit", "--set", "launch.submitit_cluster=slurm"]
VOLATILE = ("created", "traceback")


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds by time.perf_counter, max RSS in MB by /usr/bin/time) of one command, which must succeed."""
    out = cwd / "time.txt"
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out), *cmd], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, int(out.read_text().split()[-1]) / 1024


def stable(run_dir: Path) -> list[dict]:
    from evalkit.core.records import read_records

    return sorted(({k: v for k, v in r.items() if k not in VOLATILE and not k.endswith("seconds")}
                   for r in read_records([run_dir])), key=lambda r: r["key"])


def _t(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.rstrip("Z"))


def slurm_breakdown(run_dir: Path, command_end: dt.datetime) -> dict[str, list[float]]:
    """Where a SLURM run's time goes, from sacct (Submit, Start, End: whole seconds, the cluster's local time)
    and the job files: ``to first start`` (submission -> the first job starts), ``between jobs`` (a job's end ->
    the next job's start), per job ``run`` (Start -> End), of it ``items`` (first item start -> last item end)
    and ``rest`` (interpreter start-up, unpickling, teardown), and ``collect`` (the last job's end -> the command
    has exited: submitit noticing, sacct's final states, the summary)."""
    jobs = [json.loads(p.read_text()) for p in sorted((run_dir / "jobs").glob("*.json"))]
    ids = [j["attempts"][-1]["job_id"] for j in jobs]
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-o", "JobID,Submit,Start,End", "-j",
                          ",".join(sorted({i.split("_")[0] for i in ids}))], capture_output=True, text=True,
                         check=True).stdout
    sacct = {ln.split("|")[0]: [_t(x) for x in ln.split("|")[1:]] for ln in out.splitlines() if ln}
    res: dict[str, list[float]] = {"run": [], "items": [], "rest": []}
    for job, job_id in zip(jobs, ids):
        _, start, end = sacct[job_id]
        items = [st for st in job["items"].values() if st.get("start") and st.get("end")]
        busy = (max(_t(st["end"]) for st in items) - min(_t(st["start"]) for st in items)).total_seconds()
        res["run"].append((end - start).total_seconds())
        res["items"].append(busy)
        res["rest"].append((end - start).total_seconds() - busy)
    spans = sorted((v[1], v[2]) for v in sacct.values())
    res["between jobs"] = [max(0.0, (b[0] - a[1]).total_seconds()) for a, b in zip(spans, spans[1:])]
    res["to first start"] = [(spans[0][0] - min(v[0] for v in sacct.values())).total_seconds()]
    res["collect"] = [(command_end - max(v[2] for v in sacct.values())).total_seconds()]
    return res


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="the smoke sweep (4 tiny FLOPs points) instead")
    p.add_argument("--keep", type=Path, default=None, help="keep the run folders here (default: a temp folder)")
    args = p.parse_args(argv)
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        raise SystemExit("no SLURM cluster answers: run tests/slurm/cluster.sh start (as root), then "
                         "eval \"$(tests/slurm/cluster.sh env)\"")
    sweep = ["sweep", "scaling", "--no-progress", "--no-plots"]
    if args.smoke:
        sweep += ["--smoke", "--set", "measurements=[flops]"]
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %c"], capture_output=True, text=True).stdout.split()
    print(f"machine: {os.cpu_count()} CPUs, SLURM node {node[0]} with {node[1]} CPUs; "
          "load average {:.2f} {:.2f} {:.2f} (1/5/15 min) before".format(*os.getloadavg()))
    root = args.keep or Path(tempfile.mkdtemp(prefix="slurm-overhead-"))
    root.mkdir(parents=True, exist_ok=True)
    runs = [("inline", []), ("process, 1 at once", ["--launcher", "process"]),
            ("slurm, 1 at once", [*SLURM, "--set", "launch.array_parallelism=1"]),
            ("slurm, 2 at once", [*SLURM, "--set", "launch.array_parallelism=2"]),
            ("slurm, 8 per job, 1 at once", [*SLURM, "--set", "launch.array_parallelism=1",
                                             "--set", "launch.items_per_job=8"])]
    results = {}
    for i, (name, extra) in enumerate(runs):
        cwd = root / f"{i}"
        cwd.mkdir(exist_ok=True)
        wall, rss = timed([sys.executable, "-m", "evalkit", *sweep, "--run-dir", "run", *extra], cwd)
        jobs = len(list((cwd / "run" / "jobs").glob("*.json")))
        results[name] = (wall, rss, jobs, cwd / "run", dt.datetime.now())
        print(f"  ran {name}: {wall:.1f} s", flush=True)
    reference = stable(results["inline"][3])
    base = results["inline"][0]
    print(f"\n{' '.join(['python -m evalkit', *sweep])}: {len(reference)} records")
    print("jobs: one per point unless said; inline runs them in this process, process in one fresh interpreter each")
    print(f"{'launcher':<28} {'jobs':>5} {'wall s':>8} {'x inline':>9} {'overhead/job s':>15} {'max RSS MB':>11}  "
          "records = inline")
    for name, (wall, rss, jobs, run_dir, _) in results.items():
        per_job = f"{(wall - base) / jobs:.2f}" if jobs and "1 at once" in name else "-"
        print(f"{name:<28} {jobs or '-':>5} {wall:>8.1f} {wall / base:>9.2f} {per_job:>15} {rss:>11.0f}  "
              f"{stable(run_dir) == reference}")
    for name in [n for n in results if n.startswith("slurm")]:
        b = slurm_breakdown(results[name][3], results[name][4])
        print(f"\n{name} (s, median / max over jobs):")
        for k, v in b.items():
            print(f"  {k:<15} {statistics.median(v):6.1f} / {max(v):.0f}" if v else f"  {k:<15}      -")
    print("\nload average {:.2f} {:.2f} {:.2f} (1/5/15 min) after".format(*os.getloadavg()))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
