"""``python -m evalkit figure``: the LinGen project page's efficiency figure (the absolute-value counterpart of the
paper's Fig. 6) as data, and the geometry fitted to it.

``digitize`` reads the PNG and writes every plotted marker's value with its pixel uncertainty to
experiments/paper/efficiency_figure_values.yaml (``--check``: fail if the committed file differs from a fresh
digitization). ``fit`` searches the unstated geometry of LinGen-4B / DiT-4B for the sets that reproduce every
plotted FLOPs point under the project's analytic cost, and writes a run folder (manifest + records) that
``python -m evalkit report --publish`` publishes; the report renders it (reports/paper/figure_fit.*).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from evalkit.core.errors import FieldError

EPILOG = """examples:
  python -m evalkit figure digitize                 # experiments/paper/efficiency_figure.png -> ..._values.yaml
  python -m evalkit figure digitize --check         # fail if the committed values differ from a fresh digitization
  python -m evalkit figure digitize --png efficiency.png --out /tmp/values.yaml
  python -m evalkit figure fit                      # the geometry search (minutes; prints its time): runs/figure_fit/
  python -m evalkit report --publish runs/figure_fit/<run_id> && python -m evalkit report
"""


def parser() -> argparse.ArgumentParser:
    from evalkit.core.runs import DEFAULT_RUNS_ROOT

    p = argparse.ArgumentParser(prog="python -m evalkit figure", description=__doc__.split("\n\n")[1],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, metavar="{digitize,fit}")
    d = sub.add_parser("digitize", help="the figure's markers -> values with uncertainty", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--spec", type=Path, default=None, help="what the figure prints (default: "
                   "experiments/paper/efficiency_figure.yaml)")
    d.add_argument("--png", type=Path, default=None, help="the figure (default: the spec's `file`, beside it)")
    d.add_argument("--out", type=Path, default=None, help="output YAML (default: "
                   "experiments/paper/efficiency_figure_values.yaml)")
    d.add_argument("--check", action=argparse.BooleanOptionalAction, default=False,
                   help="compare with --out instead of writing it; exit 1 when they differ")
    f = sub.add_parser("fit", help="search the geometry that reproduces the plotted FLOPs", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--values", type=Path, default=None, help="digitized values (default: "
                   "experiments/paper/efficiency_figure_values.yaml)")
    f.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT, help="where run folders go (default runs/)")
    f.add_argument("--new-run", action=argparse.BooleanOptionalAction, default=False,
                   help="start a new run folder instead of reusing a finished one with the same inputs")
    return p


def _digitize(args: argparse.Namespace) -> int:
    from evalkit.figure import digitize as D

    spec_path = args.spec or D.SPEC
    spec = D.load_spec(spec_path)
    png = args.png or Path(spec_path).parent / spec.file
    out = args.out or D.VALUES
    t0 = time.perf_counter()
    res = D.digitize(png, spec)
    if res["sha256"] != spec.source.sha256:
        print(f"warning: {png} has sha256 {res['sha256']}, the spec names {spec.source.sha256} "
              f"({spec.source.repository} {spec.source.path} at {spec.source.commit})", file=sys.stderr)
    bad = [f"{lab['panel']} {lab['category']} {lab['text']} (digitized {lab['ratio']}, range {lab['ratio_range']})"
           for lab in res["labels"] if not lab["agrees"]]
    if args.check:
        diff = D.compare(D.read(out), res)
        if diff:
            print(f"{out} differs from a fresh digitization of {png}:", file=sys.stderr)
            for line in diff[:20]:
                print("  " + line, file=sys.stderr)
            return 1
        print(f"{out} is up to date ({len(res['markers'])} markers, {time.perf_counter() - t0:.1f} s)")
        return 0
    D.write(res, out)
    print(f"wrote {out}: {len(res['markers'])} markers of {len(res['panels'])} panels, "
          f"{len(res['labels']) - len(bad)} of {len(res['labels'])} ratio labels agree "
          f"({time.perf_counter() - t0:.1f} s)")
    for b in bad:
        print(f"  label does not agree: {b}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from evalkit.sweep.config import load_experiment
    from evalkit.figure import digitize as D
    from evalkit.figure import fit as F
    from evalkit.figure import results as R
    from evalkit.core.records import append, read_records, results_file
    from evalkit.core.runs import WriterLock, open_run
    from evalkit.core.typed import to_dict

    vpath = args.values or D.VALUES
    if not Path(vpath).is_file():
        raise FieldError("--values", f"{vpath} not found (run `python -m evalkit figure digitize` first)")
    values = D.read(vpath)
    space = F.SearchSpace()
    budget = load_experiment("paper_latency").config.budget
    config = {"space": to_dict(space), "values_file": Path(vpath).name,
              "values_sha256": hashlib.sha256(Path(vpath).read_bytes()).hexdigest(),
              "figure_sha256": values["sha256"], "latency_steps": R.STEPS,
              "throughput": {"source": "experiments/paper_latency.yaml budget.cuda", **to_dict(budget.cuda)}}
    chash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    run_dir, resumed = open_run(Path(args.runs_root) / "figure_fit", chash, new_run=args.new_run,
                                manifest={"experiment": "figure_fit", "kind": "figure_fit", "config": config})
    with WriterLock(run_dir):
        done = {r.get("key") for r in read_records([run_dir])}
        if "summary" in done:
            print(f"{run_dir}: already finished (same inputs); --new-run to search again")
            return 0
        t0 = time.perf_counter()

        def progress(n: int, total: int) -> None:
            print(f"  stage 1: {n}/{total} combinations ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        res = F.search(values, space, progress=progress)
        best = res["refined"][0]
        F.verify(res["evaluator"], best, best["_tokens"])
        recs = R.records(res)
        top = next(r for r in recs if r["record"] == "candidate" and r["list"] == "best" and r["rank"] == 0)
        recs += R.latency_predictions(values, top, budget)
        recs.append(R.summary_record(res, time.perf_counter() - t0))
        path = results_file(run_dir)
        for r in recs:
            if r["key"] not in done:
                append(path, r)
    s = recs[-1]
    print(f"{run_dir}: {s['combinations']} combinations, {s['candidates_refined']} refined, {s['fitting']} fit every "
          f"plotted FLOPs point; best max |z| {s['best_max_abs_z']} ({s['seconds']} s)")
    g = top["geometry"]
    print(f"  best: d {g['d_model']}, FFN {g['ffn_dim']}, {g['depth']} layers, {g['text_len']} text tokens, latent "
          f"{g['compression']} patch {g['patch']} at {g['frame']}, {g['passes']} pass(es) per step, TESA "
          f"{g['window']}, review stride {g['review_stride']}, d_state {g['d_state']}")
    print(f"next: python -m evalkit report --publish {run_dir} && python -m evalkit report")
    return 0


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    return _digitize(args) if args.action == "digitize" else _fit(args)
