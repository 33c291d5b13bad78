"""Instantiate LinGen-4B and DiT-4B on the meta device (no memory, any machine): parameters and seconds.

    python benchmarks/params_4b.py            # prints one line per model, then the DiT/LinGen FLOPs ratios
"""
from __future__ import annotations

import time

from evalkit import models as M


def main() -> None:
    t0 = time.perf_counter()
    for name in ("lingen", "dit"):  # warm-up: imports + torch's lazy meta-kernel setup (one-time per process)
        M.build(M.resolve(name, "tiny"), device="meta")
    print(f"warm-up (imports, first meta build of the tiny pair): {time.perf_counter() - t0:.2f} s")
    for name in ("lingen", "dit"):
        cfg = M.resolve(name, "4b")
        t0 = time.perf_counter()
        model = M.build(cfg, device="meta")
        seconds = time.perf_counter() - t0
        n = sum(p.numel() for p in model.parameters())
        assert n == M.param_count(cfg), (n, M.param_count(cfg))
        print(f"{name:<7} 4b  params {n:,} ({n / 1e9:.3f} B)  instantiate on meta {seconds:.2f} s")
    lin, dit = M.resolve("lingen", "4b"), M.resolve("dit", "4b")
    for h, w, s in ((512, 896, 68.0), (512, 896, 17.0), (256, 448, 17.0)):
        p = M.VideoPoint(height=h, width=w, duration_s=s)
        fd, fl = M.estimate_flops(dit, p).total, M.estimate_flops(lin, p).total
        print(f"{h}x{w} {s:g} s  tokens {M.num_tokens(lin, p):,}  DiT {fd / 1e15:.3f} PFLOP  LinGen {fl / 1e15:.3f} "
              f"PFLOP  ratio {fd / fl:.2f}x  (one forward, batch 1, 2 FLOPs per MAC)")


if __name__ == "__main__":
    main()
