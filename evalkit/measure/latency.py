"""Latency of one denoiser forward or of the whole sampling loop (paper Fig. 6 latency, Fig. 20, Table 2).

Protocol: random weights and inputs, ``eval()`` + ``inference_mode``, warm-up calls,
then timed iterations until at least ``min_iterations`` *and* ``min_seconds`` are reached (capped by
``max_iterations``, and by ``max_seconds`` from the start of the measurement: the budget planner's cap, at least
one timed iteration); every per-iteration time is kept (``latency_ms_raw``, the warm-up calls in
``warmup_ms_raw``) with p10/p50/p90. On CUDA: ``dtype_cuda`` (bf16), ``torch.cuda.Event`` timing, and the peak
memory of the timed forwards (``mem_peak_*``, which the memory measurement reuses at the same point). On CPU:
``perf_counter`` (after the forward returns, CPU ops are synchronous), only for points whose analytic forward
cost is under ``latency.cpu_budget_gflop``; larger points get a ``skipped`` row with the reason. The SDPA and
SSD backends that actually ran are read from the profiled first warm-up call (op and kernel names; an extra
profiled forward when there is no warm-up or the scope is the sampling loop), not assumed; next to them the SSD
backend the model selected and, when it is not the fused kernel, why (``backend_ssd_reason``), the TESA path +
SDPA kernel MATE's last forward dispatched to (``backend_tesa``), which SDPA backends torch had enabled
(``sdpa_enabled``), and the software and GPU (``measure.common.environment``). An OOM is an ``oom`` row; a
forward so slow that no timed iteration fits ``max_seconds`` after the warm-up is a ``skipped`` row with
``skip_reason: budget``.

Scopes: ``denoiser_forward`` = one call at batch ``batch``; ``sampling_loop`` = the sampler ``generate`` runs
(``evalkit.runtime.sampling.sample``: ``steps`` Euler steps, CFG as one forward of twice the batch when ``cfg_factor`` is
2; text encoder and decoder excluded). Reports convert a forward to a video as forward x steps x cfg_factor when
the scope is ``denoiser_forward``.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from evalkit import models
from evalkit.core.errors import FieldError
from evalkit.measure.common import (Context, DType, cuda_available, environment, is_oom, profile_names,
                                    sdpa_backend_from_names, sdpa_enabled, ssd_backend_from_names, torch_dtype)

if TYPE_CHECKING:
    from evalkit.measure.point import Point

# CPU latency points above this many GFLOP per timed call would take many minutes each on a CPU (a 2-core box
# does roughly 0.05-0.2 TFLOP/s in float32); time larger points on a GPU
CPU_BUDGET_GFLOP_MAX = 2000.0


@dataclass(frozen=True, kw_only=True)
class LatencySettings:
    """The ``latency:`` section of a sweep file."""
    scope: Literal["denoiser_forward", "sampling_loop"] = "denoiser_forward"
    warmup: int = 3
    min_iterations: int = 5
    min_seconds: float = 2.0
    max_iterations: int = 200
    dtype_cuda: DType = "bfloat16"
    dtype_cpu: DType = "float32"
    kernels: Literal["auto", "ref", "fused"] = "auto"
    # CPU only: time points whose analytic forward cost (one denoiser call) is at most this many GFLOPs;
    # larger ones get a "skipped" row (no CUDA). Chosen so a tiny-model point takes well under a second.
    cpu_budget_gflop: float = 20.0
    # > 0: stop timing once another iteration would end more than this many seconds after the measurement
    # started (warm-up included; at least one timed iteration). `sweep --budget-s` sets it per point.
    max_seconds: float = 0.0

    def check(self, where: str) -> None:
        for name in ("min_iterations", "max_iterations"):
            if getattr(self, name) < 1:
                raise FieldError(f"{where}.{name}", f"must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "min_seconds", "cpu_budget_gflop"):
            if getattr(self, name) < 0:
                raise FieldError(f"{where}.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.cpu_budget_gflop > CPU_BUDGET_GFLOP_MAX:
            raise FieldError(f"{where}.cpu_budget_gflop",
                             f"{self.cpu_budget_gflop:g} GFLOP per timed call is hours of CPU time for a large "
                             f"point (a 2-core CPU does ~0.05-0.2 TFLOP/s); the most allowed is "
                             f"{CPU_BUDGET_GFLOP_MAX:g}: time larger points on a GPU")
        if self.max_seconds < 0:
            raise FieldError(f"{where}.max_seconds", f"must be >= 0 (0: no limit), got {self.max_seconds}")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of a non-empty list, q in [0, 100]."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _make_call(model: Any, inputs: tuple, scope: str, steps: int, cfg_factor: int) -> Any:
    """The timed call: one denoiser forward, or the sampling loop users run (``evalkit.runtime.sampling.sample``:
    ``steps`` Euler steps; with ``cfg_factor`` 2 each step is one forward of the conditional and unconditional
    branch batched together, as ``generate`` does)."""
    import torch

    from evalkit.runtime.sampling import SamplerConfig, sample

    if scope == "denoiser_forward":
        return lambda: model(*inputs)    # the backbone's (x, t, context), or a released model's own inputs
    if len(inputs) != 3:
        from evalkit.core.errors import FieldError

        raise FieldError("latency.scope", "sampling_loop runs the project's sampler, which drives the backbone's "
                         "(x, t, context) forward; a released model (openmodels/) is timed with denoiser_forward "
                         "(per-video latency = forward x steps x cfg_factor)")
    x, t, context = inputs
    mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
    cfg = SamplerConfig(steps=steps, cfg_scale=7.5 if cfg_factor == 2 else 1.0)   # any scale != 1 guides
    null = torch.zeros_like(context)
    return lambda: sample(model, x, context, mask, null, mask, cfg)


def cpu_skip_reason(point: Point) -> str | None:
    """Why a point is not timed without CUDA (its analytic cost per timed call is over
    ``latency.cpu_budget_gflop``), or None. Also what the budget planner predicts with (evalkit.sweep.predict)."""
    ls, sampling = point.settings.latency, point.settings.sampling
    gflop = point.flops_analytic / 1e9
    if ls.scope == "sampling_loop":
        gflop *= sampling.steps * sampling.cfg_factor
    if gflop > ls.cpu_budget_gflop:
        return f"no CUDA: {gflop:.4g} GFLOP per timed call is over latency.cpu_budget_gflop={ls.cpu_budget_gflop:g}"
    return None


def _timed(fn: Any, cuda: bool) -> float:
    """Milliseconds of one call of ``fn`` (CUDA events around it on GPU)."""
    import torch

    if cuda:
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record()
        fn()
        ev1.record()
        ev1.synchronize()
        return float(ev0.elapsed_time(ev1))
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def time_call(fn: Any, *, cuda: bool, warmup: int, min_iterations: int, min_seconds: float,
              max_iterations: int, max_seconds: float = 0.0, started: float | None = None,
              first_warmup: Any = None, warmup_times: list[float] | None = None,
              expected_call_s: float | None = None) -> list[float]:
    """Per-iteration milliseconds of ``fn()`` after ``warmup`` calls. ``first_warmup`` (if given) replaces the
    first warm-up call (the profiled one). With ``max_seconds`` > 0 a timed iteration starts only if, judged by
    the previous call's time, it ends within ``max_seconds`` of ``started`` (default: now), so the result can
    be empty; before the first timed call, a single (profiled, first-ever) warm-up call is judged by at most
    twice ``expected_call_s`` (the planner's prediction), as it includes one-time costs. ``warmup_times``
    receives the warm-up calls' milliseconds."""
    import torch

    started = time.perf_counter() if started is None else started
    warmup_times = [] if warmup_times is None else warmup_times
    for i in range(warmup):
        warmup_times.append(_timed(first_warmup if i == 0 and first_warmup is not None else fn, cuda))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()   # the timed forwards' own peak (weights and inputs are resident)
    times: list[float] = []
    last = warmup_times[-1] / 1e3 if warmup_times else 0.0
    if expected_call_s and warmup == 1:
        last = min(last, 2 * expected_call_s)
    start = time.perf_counter()
    while len(times) < max_iterations and (len(times) < min_iterations
                                           or time.perf_counter() - start < min_seconds):
        if max_seconds > 0 and time.perf_counter() - started + last > max_seconds:
            break
        times.append(_timed(fn, cuda))
        last = times[-1] / 1e3
    return times


def _module_facts(model: Any, attr: str) -> str:
    """The distinct string values of ``attr`` over the model's modules, '+'-joined (the models' own reports:
    MATE's ``backend`` / ``backend_reason`` from the kernel switch, ``te_backend`` set by its last forward)."""
    return "+".join(sorted({v for m in model.modules() if isinstance(v := getattr(m, attr, None), str) and v}))


def run(point: Point, ctx: Context) -> list[dict[str, Any]]:
    import torch

    started = time.perf_counter()
    ls, sampling = point.settings.latency, point.settings.sampling
    cuda = cuda_available()
    dtype = ls.dtype_cuda if cuda else ls.dtype_cpu
    base = {"scope": ls.scope, "steps": sampling.steps, "cfg_factor": sampling.cfg_factor,
            "warmup": ls.warmup, "dtype": dtype, "device": "cuda" if cuda else "cpu",
            "timer": "cuda_events" if cuda else "perf_counter", "kernels": ls.kernels, **environment()}
    if not cuda and (reason := cpu_skip_reason(point)):
        return [{**base, "status": "skipped", "message": reason}]
    device = "cuda" if cuda else "cpu"
    warm: list[float] = []
    names: set[str] = set()
    try:
        model = ctx.build(point.config, device, dtype, ls.kernels)
        inputs = models.dummy_inputs(point.config, point.video, batch=point.batch, device=device,
                                     dtype=torch_dtype(dtype))
        fn = _make_call(model, inputs, ls.scope, sampling.steps, sampling.cfg_factor)
        # the first warm-up call is profiled (op and kernel names: which backends ran); it costs no extra forward
        fold = ls.warmup > 0 and ls.scope == "denoiser_forward"
        with torch.inference_mode():
            raw = time_call(fn, cuda=cuda, warmup=ls.warmup, min_iterations=ls.min_iterations,
                            min_seconds=ls.min_seconds, max_iterations=ls.max_iterations,
                            max_seconds=ls.max_seconds, started=started, warmup_times=warm,
                            expected_call_s=(point.budget.get("latency") or {}).get("predicted_call_s"),
                            first_warmup=(lambda: names.update(profile_names(fn))) if fold else None)
            peaks = _peaks_after(cuda)
            if not fold:
                names = profile_names(lambda: model(*inputs))
    except Exception as exc:
        if is_oom(exc):
            ctx.release(real_only=True)
            return [{**base, "status": "oom", "message": f"{type(exc).__name__}: {str(exc)[:200]}"}]
        raise
    facts = {"warmup_ms_raw": [round(v, 4) for v in warm], "planned_iterations": ls.min_iterations,
             "backend_sdpa": sdpa_backend_from_names(names), "backend_ssd": ssd_backend_from_names(names),
             "backend_ssd_selected": _module_facts(model, "backend") or "none",
             "backend_ssd_reason": _module_facts(model, "backend_reason"),
             "backend_tesa": _module_facts(model, "te_backend") or "none", "sdpa_enabled": sdpa_enabled(),
             "flops_analytic": point.flops_analytic}
    if not raw:
        return [{**base, **facts, "status": "skipped", "skip_reason": "budget", "iterations": 0,
                 "message": f"budget: the warm-up took {sum(warm) / 1e3:.1f} s, so no timed iteration ends within "
                            f"latency.max_seconds={ls.max_seconds:g} s of the measurement's start"}]
    p50 = percentile(raw, 50)
    calls = 1 if ls.scope == "denoiser_forward" else sampling.steps * sampling.cfg_factor
    if peaks:   # the memory measurement at this point reuses the timed forwards' peak (same inputs, dtype)
        ctx.peaks[peak_key(point, dtype, ls.kernels)] = peaks
    return [{**base, **facts, "status": "ok", "message": "", "latency_ms_raw": [round(v, 4) for v in raw],
             "iterations": len(raw), "stopped_by_max_seconds": len(raw) < ls.min_iterations,
             "latency_ms_p10": percentile(raw, 10), "latency_ms_p50": p50, "latency_ms_p90": percentile(raw, 90),
             "latency_ms_mean": statistics.fmean(raw),
             "achieved_tflops": facts["flops_analytic"] * calls / (p50 / 1e3) / 1e12,
             **({"mem_peak_allocated_bytes": peaks[0], "mem_peak_reserved_bytes": peaks[1]} if peaks else {})}]


def peak_key(point: Point, dtype: str, kernels: str) -> tuple:
    """What a measured peak belongs to: the model, the video, the batch, dtype and kernels."""
    return (point.config, point.height, point.width, point.duration_s, point.batch, dtype, kernels)


def _peaks_after(cuda: bool) -> tuple[int, int] | None:
    """(peak allocated, peak reserved) bytes since the last reset (time_call resets after the warm-up)."""
    if not cuda:
        return None
    import torch

    return int(torch.cuda.max_memory_allocated()), int(torch.cuda.max_memory_reserved())
