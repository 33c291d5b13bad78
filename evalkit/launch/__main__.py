"""``python -m evalkit.launch run-job SPEC.json`` (internal: the body of one ``process`` job) and
``python -m evalkit.launch selftest RUN_DIR [--launcher submitit] [--set launch.partition=gpu]`` (a cluster check
with deterministic items)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from evalkit.launch.config import add_launch_args, resolve_launch

    parser = argparse.ArgumentParser(prog="python -m evalkit.launch", description=__doc__,
                                     epilog="examples:\n  python -m evalkit.launch selftest runs/selftest "
                                            "--launcher submitit --set launch.partition=debug --dry-run\n",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    rj = sub.add_parser("run-job")
    rj.add_argument("spec")
    st = sub.add_parser("selftest")
    st.add_argument("run_dir")
    st.add_argument("--items", type=int, default=4)
    st.add_argument("--set", action="append", default=[], metavar="launch.KEY=VALUE")
    add_launch_args(st)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.cmd == "run-job":
        from evalkit.launch.jobs import run_job

        run_job(json.loads(Path(args.spec).read_text()))
        return 0
    from evalkit.launch import run_items

    cfg = resolve_launch(None, args.set, launcher=args.launcher)
    items = [{"key": f"item{i}", "x": i} for i in range(args.items)]
    summary = run_items(items, "evalkit.launch:selftest_item", launch=cfg, run_dir=Path(args.run_dir),
                        dry_run=args.dry_run, name="evalkit-selftest")
    print(json.dumps(summary, sort_keys=True))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    from evalkit.core.errors import EvalkitError

    try:
        sys.exit(main())
    except EvalkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
