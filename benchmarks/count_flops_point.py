"""Benchmark (not a timed test): how long counting one full-size point takes (target: LinGen-4B at 68 s / 512p,
build on meta + count + analytic, under 1 s on 2 cores), and the peak RSS.

Counts lingen-4b and dit-4b at 512p (512x896) / 68 s the way the sweep's flops measurement does
(``evalkit.measure.flop_counter.count_point``: a model of one layer per layer kind built on meta, counted, each
kind multiplied; plus ``models.estimate_flops``). Every repeat starts from an empty model cache, so it includes the
build. torch's one-time lazy initialisation (the first op with a Python meta kernel, here ``randn(...) * 0.02`` on
meta as the backbone's positional tables do, imports ``torch._dynamo``: ~1.5-2.5 s on this box) is triggered and timed
first and printed apart; the first repeat is then printed as "cold" (first build of lingen's modules), the rest as
the median of the warm repeats. ``--processes N`` runs N fresh interpreters and reports the median cold figures.
``--method full`` counts every layer; ``--reference`` also times torch's ``FlopCounterMode`` on the full model (the
old method).
The machine load (``os.getloadavg``) is printed before and after: the machine may be shared.

    python benchmarks/count_flops_point.py [--repeats 7] [--processes 5] [--method full] [--reference]
        [--models lingen dit] [--duration 68] [--height 512 --width 896] [--fvcore]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f} (1/5/15 min), {} CPUs".format(*os.getloadavg(), os.cpu_count())


def one_point(name: str, args: argparse.Namespace) -> dict:
    """Build (fresh) + count + analytic of one model at the point; seconds and FLOPs."""
    import torch

    from evalkit import models
    from evalkit.measure import flop_counter
    from evalkit.measure.common import Context

    point = models.VideoPoint(height=args.height, width=args.width, duration_s=args.duration)
    cfg = models.resolve(name, args.flavor)
    ctx = Context()
    t0 = time.perf_counter()
    c = flop_counter.count_point(cfg, point, build=lambda sub: ctx.build(sub, "meta"), method=args.method)
    t1 = time.perf_counter()
    analytic = models.estimate_flops(cfg, point).total
    t2 = time.perf_counter()
    out = {"model": name, "build_s": c.build_seconds, "count_s": c.count_seconds, "analytic_s": t2 - t1,
           "total_s": t2 - t0, "counted": c.total, "analytic": analytic, "method": c.method,
           "layers_counted": c.layers_counted, "layers": c.layers, "kinds": c.kinds,
           "tokens": models.num_tokens(cfg, point), "params": models.param_count(cfg)}
    if args.reference:
        from torch.utils.flop_counter import FlopCounterMode

        t = time.perf_counter()
        model = ctx.build(cfg, "meta")
        tb = time.perf_counter()
        inputs = models.dummy_inputs(cfg, point, device="meta", dtype=torch.float32)
        with flop_counter.no_opt_einsum(), torch.no_grad(), FlopCounterMode(display=False) as mode:
            model(*inputs)
        out.update(ref_build_s=tb - t, ref_count_s=time.perf_counter() - tb, ref_counted=mode.get_total_flops())
    if args.fvcore:
        from evalkit.measure.flops import count_fvcore

        model = ctx.build(cfg, "meta")
        t = time.perf_counter()
        fv = count_fvcore(model, tuple(models.dummy_inputs(cfg, point, device="meta", dtype=torch.float32)))
        out.update(fvcore_s=time.perf_counter() - t, fvcore_macs=fv.get("fvcore_macs"),
                   fvcore_message=fv.get("fvcore_message", "ok"))
    return out


def show(label: str, r: dict) -> None:
    exact = "exact" if r["counted"] == r["analytic"] else f"DIFFER by {abs(r['counted'] - r['analytic']):.3g}"
    line = (f"{r['model']}-{label}: build {r['build_s']:.3f} s + count {r['count_s']:.3f} s + analytic "
            f"{r['analytic_s'] * 1e3:.2f} ms = {r['total_s']:.3f} s | {r['method']}: {r['layers_counted']} of "
            f"{r['layers']} layers ({r['kinds']} kinds) | counted {r['counted']:.6e} FLOP, analytic {exact}")
    if "ref_count_s" in r:
        same = "same total" if r["ref_counted"] == r["counted"] else f"total {r['ref_counted']:.6e}"
        line += (f" | FlopCounterMode full model: build {r['ref_build_s']:.3f} s + count {r['ref_count_s']:.3f} s, "
                 f"{same}")
    if "fvcore_s" in r:
        line += f" | fvcore {r['fvcore_s']:.2f} s ({r['fvcore_macs']} MAC; {r['fvcore_message']})"
    print(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["lingen", "dit"])
    p.add_argument("--flavor", default="4b")
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=896)
    p.add_argument("--duration", type=float, default=68.0)
    p.add_argument("--method", choices=("per_layer_kind", "full"), default="per_layer_kind")
    p.add_argument("--repeats", type=int, default=7, help="repeats per model in this process (first = cold)")
    p.add_argument("--processes", type=int, default=0, help="also run N fresh interpreters (cold medians)")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--fvcore", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=False, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not args.json:
        print(f"before: {load()}")
    t0 = time.perf_counter()
    import torch  # noqa: F401

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.randn(2, 2, device="meta") * 0.02  # one-time: the first Python meta kernel (this mul) imports torch._dynamo
    lazy_s = time.perf_counter() - t0
    results = {name: [one_point(name, args) for _ in range(args.repeats)] for name in args.models}
    if args.json:  # child of --processes: the cold figures of a fresh interpreter
        print(json.dumps({"import_torch_s": import_s, "lazy_init_s": lazy_s,
                          **{n: rs[0] for n, rs in results.items()}}))
        return
    print(f"import torch: {import_s:.2f} s; torch lazy init (first Python meta kernel imports torch._dynamo): "
          f"{lazy_s:.2f} s; point {args.height}x{args.width} {args.duration:g} s, flavor {args.flavor}")
    for name, rs in results.items():
        show("cold (first in process)", rs[0])
        warm = rs[1:]
        if warm:
            med = {k: statistics.median(r[k] for r in warm) if isinstance(rs[0][k], float) else rs[0][k]
                   for k in rs[0]}
            show(f"warm (median of {len(warm)}; total min {min(r['total_s'] for r in warm):.3f} max "
                 f"{max(r['total_s'] for r in warm):.3f} s)", med)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    if args.processes:
        cmd = [sys.executable, __file__, "--json", "--repeats", "1", "--models", *args.models, "--flavor",
               args.flavor, "--height", str(args.height), "--width", str(args.width), "--duration",
               str(args.duration), "--method", args.method]
        runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                for _ in range(args.processes)]
        print(f"{args.processes} fresh processes, medians: import torch "
              f"{statistics.median(r['import_torch_s'] for r in runs):.2f} s, torch lazy init "
              f"{statistics.median(r['lazy_init_s'] for r in runs):.2f} s; " + "; ".join(
                  f"{n} first point {statistics.median(r[n]['total_s'] for r in runs):.3f} s (build "
                  f"{statistics.median(r[n]['build_s'] for r in runs):.3f} + count "
                  f"{statistics.median(r[n]['count_s'] for r in runs):.3f})" for n in args.models))
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
