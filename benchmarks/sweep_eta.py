"""Benchmark (not a timed test): how good the sweep's progress-bar ETA is from the first point on.

Runs a sweep in this process (default: the default experiment, a fresh run in a temporary folder, no plots) and,
after every point, compares the ETA the bar showed (it counts predicted seconds, evalkit.sweep.predict) with
the time the sweep really still took, next to the ETA a bar counting records would have shown (remaining
records x elapsed / records done: what the bar did before). Prints one line per point for the first few, the
ratio shown/actual after the first point, and the machine load (the box may be shared).

    python benchmarks/sweep_eta.py [experiment] [--smoke] [--points 5]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", nargs="?", default="scaling")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--points", type=int, default=5, help="print this many points (all ratios are summarised)")
    args = p.parse_args(argv)
    from evalkit.sweep.config import load_experiment
    from evalkit.sweep import cli
    from evalkit.sweep.plan import plan_points, due_points

    exp = load_experiment(args.experiment, smoke=args.smoke)
    counts = [len(it.measurements) for it in due_points(plan_points(exp), set())]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {len(counts)} points, {sum(counts)} records")
    with tempfile.TemporaryDirectory() as tmp:
        argv_ = [args.experiment, "--runs-root", tmp, "--new-run", "--no-plots", "--no-progress"]
        t0 = time.perf_counter()
        clocks = []
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(argv_ + (["--smoke"] if args.smoke else []), on_clock=clocks.append)
        wall = time.perf_counter() - t0
    hist = clocks[0].history
    end = hist[-1][0]
    done_records = 0
    print(f"{'point':>5}{'elapsed s':>11}{'ETA shown s':>13}{'actual left s':>15}{'ETA by records s':>18}")
    ratios = []
    for i, ((elapsed, _, _, eta), n) in enumerate(zip(hist, counts)):
        done_records += n
        by_records = (sum(counts) - done_records) * elapsed / done_records
        actual = end - elapsed
        if actual > 0.05 and eta is not None:
            ratios.append(eta / actual)
        if i < args.points:
            print(f"{i + 1:>5}{elapsed:>11.2f}{eta or 0:>13.2f}{actual:>15.2f}{by_records:>18.2f}")
    first = hist[0]
    print(f"after the first point ({first[0]:.2f} s): ETA shown {first[3]:.2f} s, actual {end - first[0]:.2f} s, "
          f"by records {(sum(counts) - counts[0]) * first[0] / counts[0]:.2f} s")
    if ratios:
        print(f"shown/actual over all points: min {min(ratios):.2f}, max {max(ratios):.2f}")
    print(f"sweep wall {wall:.2f} s (points {end:.2f} s); load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
