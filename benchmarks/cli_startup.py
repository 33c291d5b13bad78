"""Benchmark (not a timed test): wall time of `python -m evalkit ls` and of every `--help` (each verb and each
sub-command), in fresh interpreters, and whether any of them imported torch (target: each under 0.5 s, no
torch). The sub-commands are read from each verb's usage line, so new verbs are measured without edits here.

Each command runs ``--repeats`` times (default 7) as ``python -c`` with an ``atexit`` hook that reports whether
torch, pandas or matplotlib were imported; the median, min and max wall times are printed, with the machine load
(the machine may be shared), and the exit status is 1 when a command imported torch or its median is over
``--budget`` seconds.

    python benchmarks/cli_startup.py [--repeats 7] [--budget 0.5]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

PROBE = ("import atexit, runpy, sys\n"
         "atexit.register(lambda: sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'pandas', "
         "'matplotlib') if m in sys.modules) + '\\n'))\n"
         "sys.argv = ['evalkit'] + sys.argv[1:]\n"
         "runpy.run_module('evalkit', run_name='__main__', alter_sys=True)\n")


def run(argv: list[str]) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"`python -m evalkit {' '.join(argv)}` exited {res.returncode}: {res.stderr[-500:]}")
    heavy = re.findall(r"HEAVY=(.*)", res.stderr)
    return wall, res.stdout, heavy[-1] if heavy else "?"


def commands() -> list[list[str]]:
    from evalkit.cli import VERBS

    out = [["ls"], ["--help"]]
    for verb in VERBS:
        out.append([verb, "--help"])
        usage = run([verb, "--help"])[1].split("\n\n")[0]
        subs = re.search(r"\{([\w,-]+)\} \.\.\.", usage)   # a sub-command list, not an option's choices
        out += [[verb, sub, "--help"] for sub in (subs.group(1).split(",") if subs else [])]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--budget", type=float, default=0.5, help="seconds (median) each command must stay under")
    args = p.parse_args()
    print("before: load average {:.2f} {:.2f} {:.2f} (1/5/15 min), {} CPUs".format(*os.getloadavg(), os.cpu_count()))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"bare `python -c pass`: {time.perf_counter() - t0:.3f} s")
    bad = 0
    for argv in commands():
        times, heavy = [], ""
        for _ in range(args.repeats):
            wall, _, heavy = run(argv)
            times.append(wall)
        med = statistics.median(times)
        flag = " TORCH IMPORTED" if "torch" in heavy else ""
        flag += f" OVER {args.budget:g} s" if med > args.budget else ""
        bad += bool(flag)
        print(f"python -m evalkit {' '.join(argv):<26} median {med:.3f} s (min {min(times):.3f}, max "
              f"{max(times):.3f}; n={len(times)}) imports: {heavy or 'no torch/pandas/matplotlib'}{flag}")
    print("after: load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
