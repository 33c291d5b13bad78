"""``python -m evalkit.sweep.point --spec FILE --run-dir DIR [--job-tag TAG]``: one point in a fresh process.

The ``--isolate`` executor of the sweep runs each point through this entry point, so an OOM kill, a segfault
or a CUDA error costs that point only; the parent checks the exit code and records an ``error`` row for every
key the child did not write (:func:`evalkit.sweep.cli` / ``_run_isolated``).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from evalkit.sweep.runner import run_point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.sweep.point")
    parser.add_argument("--spec", required=True, help="JSON file with one point spec (from evalkit.sweep.plan)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--job-tag", default=None)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    with open(args.spec, encoding="utf-8") as fh:
        spec = json.load(fh)
    records = run_point(spec, args.run_dir, args.job_tag)
    print(json.dumps({"records": len(records), "statuses": [r["status"] for r in records]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
