"""Latency of one denoiser forward or of the whole sampling loop (paper Fig. 6 latency, Fig. 20, Table 2).

Protocol: random weights and inputs, ``eval()`` + ``inference_mode``, warm-up calls,
then timed iterations until at least ``min_iterations`` *and* ``min_seconds`` are reached (capped by
``max_iterations``); every per-iteration time is kept (``latency_ms_raw``) with p10/p50/p90.
On CUDA: ``dtype_cuda`` (bf16), ``torch.cuda.Event`` timing. On CPU: ``perf_counter`` (after the forward returns,
CPU ops are synchronous), only for points whose analytic forward cost is under ``latency.cpu_budget_gflop``;
larger points get a ``skipped`` row with the reason. The SDPA and SSD backends that actually ran are read from
a profiled extra call (op and kernel names), not assumed; next to them the SSD backend the model selected and,
when it is not the fused kernel, why (``backend_ssd_reason``), and the TESA path + SDPA kernel MATE's last
forward dispatched to (``backend_tesa``). An OOM is an ``oom`` row.

Scopes: ``denoiser_forward`` = one call at batch ``batch``; ``sampling_loop`` = the sampler ``generate`` runs
(``evalkit.sampling.sample``: ``steps`` Euler steps, CFG as one forward of twice the batch when ``cfg_factor`` is
2; text encoder and decoder excluded). Reports convert a forward to a video as forward x steps x cfg_factor when
the scope is ``denoiser_forward``.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

from evalkit import models
from evalkit.measure.common import (Context, cuda_available, is_oom, profile_names, sdpa_backend_from_names,
                                    ssd_backend_from_names, torch_dtype, video_point)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of a non-empty list, q in [0, 100]."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _make_call(model: Any, inputs: tuple, scope: str, steps: int, cfg_factor: int) -> Any:
    """The timed call: one denoiser forward, or the sampling loop users run (``evalkit.sampling.sample``:
    ``steps`` Euler steps; with ``cfg_factor`` 2 each step is one forward of the conditional and unconditional
    branch batched together, as ``generate`` does)."""
    import torch

    from evalkit.sampling import SamplerConfig, sample

    x, t, context = inputs
    if scope == "denoiser_forward":
        return lambda: model(x, t, context)
    mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
    cfg = SamplerConfig(steps=steps, cfg_scale=7.5 if cfg_factor == 2 else 1.0)   # any scale != 1 guides
    null = torch.zeros_like(context)
    return lambda: sample(model, x, context, mask, null, mask, cfg)


def time_call(fn: Any, *, cuda: bool, warmup: int, min_iterations: int, min_seconds: float,
              max_iterations: int) -> list[float]:
    """Per-iteration milliseconds of ``fn()`` after ``warmup`` calls."""
    import torch

    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iterations and (len(times) < min_iterations
                                           or time.perf_counter() - start < min_seconds):
        if cuda:
            ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            ev0.record()
            fn()
            ev1.record()
            ev1.synchronize()
            times.append(float(ev0.elapsed_time(ev1)))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def _module_facts(model: Any, attr: str) -> str:
    """The distinct string values of ``attr`` over the model's modules, '+'-joined (the models' own reports:
    MATE's ``backend`` / ``backend_reason`` from the kernel switch, ``te_backend`` set by its last forward)."""
    return "+".join(sorted({v for m in model.modules() if isinstance(v := getattr(m, attr, None), str) and v}))


def run(spec: dict[str, Any], settings: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    import torch

    ls, sampling = settings["latency"], settings["sampling"]
    cuda = cuda_available()
    dtype = ls["dtype_cuda"] if cuda else ls["dtype_cpu"]
    base = {"scope": ls["scope"], "steps": sampling["steps"], "cfg_factor": sampling["cfg_factor"],
            "warmup": ls["warmup"], "dtype": dtype, "device": "cuda" if cuda else "cpu",
            "timer": "cuda_events" if cuda else "perf_counter", "kernels": ls["kernels"]}
    cfg = ctx.model_config(spec)
    point = video_point(spec)
    if not cuda:
        gflop = models.estimate_flops(cfg, point, cfg_factor=1).total * spec["batch"] / 1e9
        if ls["scope"] == "sampling_loop":
            gflop *= sampling["steps"] * sampling["cfg_factor"]
        if gflop > ls["cpu_budget_gflop"]:
            return [{**base, "status": "skipped",
                     "message": f"no CUDA: {gflop:.4g} GFLOP per timed call is over "
                                f"latency.cpu_budget_gflop={ls['cpu_budget_gflop']:g}"}]
    try:
        model = ctx.model(spec, "cuda" if cuda else "cpu", dtype, ls["kernels"])
        x, t, context = models.dummy_inputs(cfg, point, batch=spec["batch"], device="cuda" if cuda else "cpu",
                                            dtype=torch_dtype(dtype))
        fn = _make_call(model, (x, t, context), ls["scope"], sampling["steps"], sampling["cfg_factor"])
        with torch.inference_mode():
            raw = time_call(fn, cuda=cuda, warmup=ls["warmup"], min_iterations=ls["min_iterations"],
                            min_seconds=ls["min_seconds"], max_iterations=ls["max_iterations"])
            names = profile_names(lambda: model(x, t, context))
    except Exception as exc:
        if is_oom(exc):
            ctx.release(real_only=True)
            return [{**base, "status": "oom", "message": f"{type(exc).__name__}: {str(exc)[:200]}"}]
        raise
    return [{**base, "status": "ok", "message": "", "latency_ms_raw": [round(v, 4) for v in raw],
             "iterations": len(raw), "latency_ms_p10": percentile(raw, 10), "latency_ms_p50": percentile(raw, 50),
             "latency_ms_p90": percentile(raw, 90), "latency_ms_mean": statistics.fmean(raw),
             "backend_sdpa": sdpa_backend_from_names(names), "backend_ssd": ssd_backend_from_names(names),
             "backend_ssd_selected": _module_facts(model, "backend") or "none",
             "backend_ssd_reason": _module_facts(model, "backend_reason"),
             "backend_tesa": _module_facts(model, "te_backend") or "none",
             "gpu": torch.cuda.get_device_name(0) if cuda else None}]
