"""Benchmark (not a timed test): how long counting one full-size point takes, and the peak RSS.

Counts lingen-4b and dit-4b at 512p (512x896) / 68 s with the sweep's own FLOPs measurement
(FlopCounterMode on the meta device + models.estimate_flops), printing per model: meta build seconds, count
seconds, counted and analytic FLOPs, and the process's peak RSS (ru_maxrss) so far.

    python benchmarks/count_flops_point.py [--fvcore] [--duration 68] [--height 512 --width 896]
"""
from __future__ import annotations

import argparse
import resource
import time

from evalkit import models
from evalkit.measure.common import Context
from evalkit.measure.flops import count_fvcore, count_meta


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["lingen", "dit"])
    p.add_argument("--flavor", default="4b")
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=896)
    p.add_argument("--duration", type=float, default=68.0)
    p.add_argument("--fvcore", action=argparse.BooleanOptionalAction, default=False)
    args = p.parse_args()
    t0 = time.perf_counter()
    import torch

    print(f"import torch: {time.perf_counter() - t0:.2f} s, peak RSS {peak_rss_mb():.0f} MB")
    ctx = Context()
    point = models.VideoPoint(height=args.height, width=args.width, duration_s=args.duration)
    for name in args.models:
        spec = {"model": name, "flavor": args.flavor}
        cfg = ctx.model_config(spec)
        t = time.perf_counter()
        model = ctx.model(spec, "meta")
        build_s = time.perf_counter() - t
        inputs = tuple(models.dummy_inputs(cfg, point, batch=1, device="meta", dtype=torch.float32))
        counted, by_op, count_s = count_meta(model, inputs)
        t = time.perf_counter()
        analytic = models.estimate_flops(cfg, point).total
        analytic_s = time.perf_counter() - t
        print(f"{name}-{args.flavor} {args.height}x{args.width} {args.duration:g} s: "
              f"{models.num_tokens(cfg, point)} tokens, {models.param_count(cfg) / 1e9:.2f} B params | "
              f"meta build {build_s:.2f} s, count {count_s:.2f} s, analytic {analytic_s * 1e3:.1f} ms | "
              f"counted {counted:.4e}, analytic {analytic:.4e} FLOP (rel diff {abs(counted - analytic) / analytic:.2e})"
              f" | peak RSS {peak_rss_mb():.0f} MB")
        if args.fvcore:
            t = time.perf_counter()
            fv = count_fvcore(model, inputs)
            print(f"  fvcore: {fv.get('fvcore_macs')} MAC ({fv.get('fvcore_message', 'ok')}) in "
                  f"{time.perf_counter() - t:.2f} s, peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
