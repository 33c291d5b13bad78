"""TESA (LinGen Fig. 5): the mask-free ``split`` path vs the padded + rolled ``masked`` path, one layer's
attention (q, k, v given), per layer parity: milliseconds, the SDPA kernel each dispatched to, the attention
FLOPs each executes (4 x windows x Wtok^2 x D summed over its SDPA calls), and the largest difference between the
two outputs.

    python benchmarks/tesa_paths.py                                   # CPU-sized default (4b window, d 256)
    python benchmarks/tesa_paths.py --device cuda --dtype bfloat16 --grid 34 32 56 --d-model 2048 --heads 16

The second line is one 4b TESA at 512p / 17 s (34 x 32 x 56 latent tokens). Timing: warm-up calls, then the
median of ``--iters`` calls (CUDA: synchronised around each call).
"""
from __future__ import annotations

import argparse
import statistics
import time

import itertools
import math

import torch

from lingen.tesa import effective_shift, padded_grid, segments, window_attention

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _time(fn, cuda: bool, iters: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def attention_flops(grid, window, shift, d: int, impl: str) -> int:
    """Score + value products of one batch element: 2 matmuls x 2 FLOPs per MAC x Lq x Lk x D per window."""
    if impl == "masked":  # full windows on the padded grid
        return 4 * math.prod(padded_grid(grid, window)) * math.prod(window) * d
    total = 0
    for runs in itertools.product(*(segments(g, w, s) for g, w, s in zip(grid, window, shift))):
        total += math.prod(c for _, c, _ in runs) * math.prod(length for _, _, length in runs) ** 2
    return 4 * total * d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--grid", type=int, nargs=3, default=[34, 8, 16], metavar=("T", "H", "W"))
    ap.add_argument("--window", type=int, nargs=3, default=[17, 4, 4])
    ap.add_argument("--shift", type=int, nargs=3, default=[8, 2, 2])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    grid, window, shift = tuple(a.grid), tuple(a.window), tuple(a.shift)
    n = grid[0] * grid[1] * grid[2]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, n, a.d_model, generator=g).to(a.device, DTYPES[a.dtype]) for _ in range(3))
    cuda = torch.device(a.device).type == "cuda"
    print(f"{a.device} {a.dtype}  grid {grid}  window {window}  shift {shift}  d {a.d_model}  heads {a.heads}  "
          f"{n:,} tokens")
    with torch.inference_mode():
        for layer in (0, 1):
            out = {}
            for impl in ("split", "masked"):
                used: set[str] = set()
                call = lambda: window_attention(q, k, v, grid, a.heads, window, shift, layer, impl=impl)  # noqa
                out[impl] = window_attention(q, k, v, grid, a.heads, window, shift, layer, impl=impl, used=used)
                ms = _time(call, cuda, a.iters)
                s = effective_shift(grid, window, shift, layer)
                gflop = attention_flops(grid, window, s, a.d_model, impl) / 1e9
                print(f"  layer parity {layer} (shift {s})  {impl:<6} {ms:9.2f} ms  {gflop:8.3f} GFLOP  "
                      f"sdpa {'+'.join(sorted(used))}")
            diff = (out["split"].float() - out["masked"].float()).abs().max().item()
            print(f"  layer parity {layer}  max |split - masked| = {diff:.3g}")


if __name__ == "__main__":
    main()
