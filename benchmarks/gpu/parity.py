"""Parity checks before the latency sweep of a GPU run (benchmarks/gpu/run.sh), with the measured errors printed
and written as JSON (pytest's gpu group says pass/fail; this says by how much, and which kernels ran).

1. SSD: mamba-ssm's fused Triton SSD (``lingen.kernels.ops.ssd_scan(backend='fused')``) vs the float64 chunked
   reference, float32 and bfloat16 inputs, at a MATE-like shape (heads of 64, d_state 64, chunk 256, ngroups =
   heads, a length that is not a multiple of the chunk).
2. MATE: a two-layer LinGen of the 4b width (one unshifted, one shifted TESA layer) at 256x448 / 8.5 s, fused vs
   reference SSD through the whole model, float32 and bfloat16: the argument mapping on the real GPU kernels.
3. TESA: the mask-free split path vs a brute-force masked full attention (float64 on CPU), 4b window (17, 4, 4)
   and shift (8, 2, 2) on a padded grid, both layer parities, with the SDPA kernel every window call used.
4. Backends: one profiled forward of a two-layer DiT and LinGen (4b width) at 512p / 17 s in bfloat16: which SDPA
   kernels (self-, cross-, window attention), which SSD kernels and which TESA path actually ran
   (``evalkit.measure.common``'s readers of profiler op and kernel names).

Without CUDA (``run.sh --smoke`` on CPU) 1-2 are ``skipped: no CUDA``, 3-4 run on CPU in float32 at tiny sizes.
Exit status 1 when a check that ran is over its tolerance.

    python benchmarks/gpu/parity.py --out parity.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from evalkit import models
from evalkit.measure.common import (environment, profile_names, sdpa_backend_from_names, sdpa_enabled,
                                    ssd_backend_from_names)
from lingen.kernels import reference as ref
from lingen.kernels.ops import fused_unavailable_reason, ssd_scan
from lingen.tesa import effective_shift, window_attention

# relative-error tolerances: float32 as the gpu tests (tests/lingen/test_kernels.py), bfloat16 has 8 bits of mantissa
TOL = {"float32": 6e-3, "bfloat16": 5e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check_ssd(dev: str) -> list[dict]:
    if dev != "cuda":
        return [{"check": "ssd_fused_vs_reference", "status": "skipped", "message": "no CUDA"}]
    reason = fused_unavailable_reason("cuda")
    if reason is not None:
        return [{"check": "ssd_fused_vs_reference", "status": "failed", "message": reason}]
    g = torch.Generator().manual_seed(0)
    b, l, h, p, n = 1, 4000, 8, 64, 64
    x, B, C = (torch.randn(b, l, h, d, generator=g) for d in (p, n, n))
    dt = F.softplus(torch.randn(b, l, h, generator=g) - 2)
    A = -torch.rand(h, generator=g) - 0.5
    y_ref = ref.ssd_chunked(x.double(), dt.double(), A.double(), B.double(), C.double(), 256)
    out = []
    for name, dtype in DTYPES.items():
        args = [t.to("cuda", dtype) for t in (x,)] + [dt.cuda(), A.cuda()] + [t.to("cuda", dtype) for t in (B, C)]
        y = ssd_scan(args[0], args[1], args[2], args[3], args[4], 256, backend="fused")
        e = rel(y.cpu(), y_ref)
        out.append({"check": "ssd_fused_vs_reference", "dtype": name, "shape": [b, l, h, p, n], "rel_err": e,
                    "tol": TOL[name], "status": "ok" if e < TOL[name] else "failed"})
    return out


def _small(name: str, flavor: str, depth: int = 2):
    return models.resolve(name, flavor, {"depth": depth})


def check_mate(dev: str) -> list[dict]:
    if dev != "cuda":
        return [{"check": "lingen_fused_vs_reference", "status": "skipped", "message": "no CUDA"}]
    cfg = _small("lingen", "4b")
    point = models.VideoPoint(height=256, width=448, duration_s=8.5, fps=16)
    out = []
    for name, dtype in DTYPES.items():
        ys = {}
        for kernels in ("ref", "fused"):
            torch.manual_seed(0)
            m = models.build(cfg, device="cuda", dtype=dtype, kernels=kernels).eval()
            x, t, c = models.dummy_inputs(cfg, point, device="cuda", dtype=dtype)
            with torch.inference_mode():
                ys[kernels] = m(x, t, c).float().cpu()
            del m
            torch.cuda.empty_cache()
        e = rel(ys["fused"], ys["ref"])
        out.append({"check": "lingen_fused_vs_reference", "dtype": name, "layers": 2, "point": "256x448 8.5s",
                    "rel_err": e, "tol": TOL[name], "status": "ok" if e < TOL[name] else "failed"})
    return out


def brute_tesa(q, k, v, grid, window, shift, heads):
    """Full attention with an explicit mask: same (shifted) window on the padded, cyclically rolled grid."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(g) for g in grid), indexing="ij"), -1).reshape(-1, 3)
    keys = []
    for a in range(3):
        c, s, w, g = coords[:, a], shift[a], window[a], grid[a]
        pos = (c - s) % (-(-g // w) * w)
        keys += [pos // w, (c < s).long()]
    key = torch.stack(keys, -1)
    mask = (key[:, None] == key[None, :]).all(-1)
    d = q.shape[-1]
    split = lambda t: t.view(1, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
    y = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
    return y.transpose(1, 2).reshape(1, -1, d)


def check_tesa(dev: str) -> list[dict]:
    grid, window, shift, heads, d = ((34, 8, 12), (17, 4, 4), (8, 2, 2), 4, 256) if dev == "cuda" else \
        ((6, 5, 7), (3, 2, 3), (1, 1, 1), 2, 16)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, grid[0] * grid[1] * grid[2], d, generator=g) for _ in range(3))
    out = []
    for layer in (0, 1):
        want = brute_tesa(*(t.double() for t in (q, k, v)), grid, window,
                          effective_shift(grid, window, shift, layer), heads)
        for name, dtype in (DTYPES.items() if dev == "cuda" else [("float32", torch.float32)]):
            used: set[str] = set()
            y = window_attention(*(t.to(dev, dtype) for t in (q, k, v)), grid, heads, window, shift, layer,
                                 impl="split", used=used)
            e = rel(y.cpu(), want)
            out.append({"check": "tesa_split_vs_brute_force", "dtype": name, "layer": layer, "grid": list(grid),
                        "window": list(window), "kernels": sorted(used), "rel_err": e, "tol": TOL[name],
                        "status": "ok" if e < TOL[name] else "failed"})
    return out


def check_backends(dev: str) -> list[dict]:
    flavor, point = ("4b", models.VideoPoint(height=512, width=896, duration_s=17, fps=16)) if dev == "cuda" else \
        ("tiny", models.VideoPoint(height=64, width=112, duration_s=8.5, fps=16))
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    out = []
    for name in ("dit", "lingen"):
        cfg = _small(name, flavor)
        m = models.build(cfg, device=dev, dtype=dtype, kernels="auto").eval()
        x, t, c = models.dummy_inputs(cfg, point, device=dev, dtype=dtype)
        with torch.inference_mode():
            m(x, t, c)                                   # compile / select kernels first
            names = profile_names(lambda: m(x, t, c))
        tesa = "+".join(sorted({v for mod in m.modules() if isinstance(v := getattr(mod, "te_backend", None), str)}))
        reason = "+".join(sorted({v for mod in m.modules() if (v := getattr(mod, "backend_reason", None))}))
        out.append({"check": "backends_that_ran", "model": name, "layers": 2, "dtype": str(dtype).split(".")[-1],
                    "point": f"{point.height}x{point.width} {point.duration_s:g}s",
                    "sdpa": sdpa_backend_from_names(names), "ssd": ssd_backend_from_names(names),
                    "ssd_reason": reason, "tesa": tesa or "none", "sdpa_enabled": sdpa_enabled(),
                    "cuda_kernels": sorted(n for n in names if "attention" in n.lower() or "fmha" in n.lower()
                                           or "flash" in n.lower() or "chunk_scan" in n)[:40],
                    "status": "ok"})
        del m
        if dev == "cuda":
            torch.cuda.empty_cache()
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args(argv)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict = {"device": dev, "environment": environment(), "checks": []}
    for fn in (check_ssd, check_mate, check_tesa, check_backends):
        t0 = time.perf_counter()
        try:
            rows = fn(dev)
        except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed row, the others still run
            rows = [{"check": fn.__name__, "status": "failed", "message": f"{type(exc).__name__}: {exc}"[:500]}]
        for r in rows:
            r["seconds"] = round(time.perf_counter() - t0, 2)
            extra = {k: r[k] for k in ("dtype", "layer", "model", "sdpa", "ssd", "tesa", "kernels") if k in r}
            err = f" rel_err {r['rel_err']:.2e} (tol {r['tol']:g})" if "rel_err" in r else ""
            print(f"parity {r['check']}: {r['status']}{err} {json.dumps(extra)} {r.get('message', '')}".rstrip())
        results["checks"] += rows
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 1 if any(r["status"] == "failed" for r in results["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
