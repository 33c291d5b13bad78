"""Latency of one denoiser forward or of the whole sampling loop (paper Fig. 6 latency, Fig. 20, Table 2).

Protocol: random weights and inputs, ``eval()`` + ``inference_mode``, warm-up calls (none after one that took
longer than ``warmup_cap_s``; none at all when the budget planner finds the model already warm in this process:
the first call is then a timed one, ``first_call_timed``), then timed iterations until at least
``min_iterations`` *and* ``min_seconds`` are reached (capped by ``max_iterations``, and by ``max_seconds`` from the
start of the measurement: the budget planner's cap, at least one timed iteration); every per-iteration time is
kept (``latency_ms_raw``, the warm-up calls in ``warmup_ms_raw``) with p10/p50/p90, min, max, standard deviation
and the spread (p90 - p10) / p50, and on CUDA the GPU's clocks, power, temperature and throttle reasons before
and after the timed calls (``gpu_state_*``, from nvidia-smi). ``sdpa_backend`` can force one SDPA kernel (e.g.
cuDNN attention for DiT). On CUDA: ``dtype_cuda`` (bf16), ``torch.cuda.Event`` timing, and the peak
memory of the timed forwards (``mem_peak_*``, which the memory measurement reuses at the same point). On CPU:
``perf_counter`` (after the forward returns, CPU ops are synchronous), only for points whose analytic forward
cost is under ``latency.cpu_budget_gflop``; larger points get a ``skipped`` row with the reason. The SDPA and
SSD backends that actually ran are read from a profiled call that is never a timed one (op and kernel names: the
first warm-up call, or, without one or for the sampling loop, one forward at the shortest duration the model
represents), not assumed; next to them the SSD
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
from evalkit.measure.common import (Context, DType, cuda_available, environment, gpu_state, is_oom, profile_names,
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
    # no more warm-up calls once one took longer than this (a 68 s DiT-4B forward needs no second warm-up)
    warmup_cap_s: float = 30.0
    # which SDPA kernel the timed calls may use: "auto" lets torch choose (the record says which ran); a name
    # forces that backend (torch.nn.attention.sdpa_kernel), e.g. "cudnn" for DiT on cuDNN attention
    sdpa_backend: Literal["auto", "flash", "efficient", "cudnn", "math"] = "auto"

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
        for name in ("max_seconds", "warmup_cap_s"):
            if getattr(self, name) < 0:
                raise FieldError(f"{where}.{name}", f"must be >= 0 (0: no limit), got {getattr(self, name)}")


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
              expected_call_s: float | None = None, warmup_cap_s: float = 0.0) -> list[float]:
    """Per-iteration milliseconds of ``fn()`` after ``warmup`` calls. ``first_warmup`` (if given) replaces the
    first warm-up call (the profiled one). With ``max_seconds`` > 0 a timed iteration starts only if, judged by
    the previous call's time, it ends within ``max_seconds`` of ``started`` (default: now), so the result can
    be empty; before the first timed call, a single (profiled, first-ever) warm-up call is judged by at most
    twice ``expected_call_s`` (the planner's prediction), as it includes one-time costs. ``warmup_times``
    receives the warm-up calls' milliseconds; with ``warmup_cap_s`` > 0 no warm-up call follows one that took
    longer than that."""
    import torch

    started = time.perf_counter() if started is None else started
    warmup_times = [] if warmup_times is None else warmup_times
    for i in range(warmup):
        warmup_times.append(_timed(first_warmup if i == 0 and first_warmup is not None else fn, cuda))
        if warmup_cap_s > 0 and warmup_times[-1] / 1e3 > warmup_cap_s:
            break
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


def short_duration(point: Point) -> float:
    """The shortest duration the point's model can represent at its frame (the cheap call that is profiled when
    there is no warm-up call to profile)."""
    from evalkit.core.errors import EvalkitError

    ct, pt = point.config.latent.compression[0], point.config.latent.patch[0]
    # a causal VAE (latent.first_frame_apart) makes 1 + ct k frames: its duration counts the ct k frames after the
    # first (evalkit.models.latent_shape)
    step = ct if point.config.latent.first_frame_apart else ct * pt
    for k in range(1, 4096):
        duration = k * step / point.fps
        try:
            models.validate_point(point.config, point.at(duration))
            return duration
        except EvalkitError:
            continue
    return float(point.duration_s)


def _sdpa_context(backend: str) -> Any:
    """A context that lets SDPA use only ``backend`` (``auto``: no restriction)."""
    import contextlib

    if backend == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kind = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[backend]
    return sdpa_kernel([kind])


def _spread(raw: list[float]) -> dict[str, float]:
    """The timed calls' spread: min, max, standard deviation (n - 1) and (p90 - p10) / p50."""
    p50 = percentile(raw, 50)
    return {"latency_ms_min": min(raw), "latency_ms_max": max(raw),
            "latency_ms_std": statistics.stdev(raw) if len(raw) > 1 else 0.0,
            "latency_spread": (percentile(raw, 90) - percentile(raw, 10)) / p50 if p50 > 0 else 0.0}


def run(point: Point, ctx: Context) -> list[dict[str, Any]]:
    import torch

    started = time.perf_counter()
    ls, sampling = point.settings.latency, point.settings.sampling
    cuda = cuda_available()
    dtype = ls.dtype_cuda if cuda else ls.dtype_cpu
    base = {"scope": ls.scope, "steps": sampling.steps, "cfg_factor": sampling.cfg_factor,
            "warmup": ls.warmup, "dtype": dtype, "device": "cuda" if cuda else "cpu",
            "timer": "cuda_events" if cuda else "perf_counter", "kernels": ls.kernels,
            "sdpa_backend_requested": ls.sdpa_backend, **environment()}
    caveats = getattr(point.config, "latency_caveats", "")
    if caveats:
        base["latency_caveats"] = caveats
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
        # the profiled call (op and kernel names: which backends ran) is never a timed one: the first warm-up
        # call when there is one, else one forward at the shortest duration the model represents
        fold = ls.warmup > 0 and ls.scope == "denoiser_forward"
        gpu_before = gpu_state() if cuda else None
        with torch.inference_mode(), _sdpa_context(ls.sdpa_backend):
            raw = time_call(fn, cuda=cuda, warmup=ls.warmup, min_iterations=ls.min_iterations,
                            min_seconds=ls.min_seconds, max_iterations=ls.max_iterations,
                            max_seconds=ls.max_seconds, started=started, warmup_times=warm,
                            expected_call_s=(point.budget.get("latency") or {}).get("predicted_call_s"),
                            first_warmup=(lambda: names.update(profile_names(fn))) if fold else None,
                            warmup_cap_s=ls.warmup_cap_s)
            peaks = _peaks_after(cuda)
            gpu_after = gpu_state() if cuda else None
            if not fold:
                short = point.at(short_duration(point))
                short_inputs = models.dummy_inputs(point.config, short, batch=point.batch, device=device,
                                                   dtype=torch_dtype(dtype))
                names = profile_names(lambda: model(*short_inputs))   # the backbone's or a released model's
    except Exception as exc:
        if is_oom(exc):
            ctx.release(real_only=True)
            return [{**base, "status": "oom", "message": f"{type(exc).__name__}: {str(exc)[:200]}"}]
        raise
    facts = {"warmup_ms_raw": [round(v, 4) for v in warm], "planned_iterations": ls.min_iterations,
             "first_call_timed": len(warm) == 0, "profiled_call": "first_warmup" if fold else "short_call",
             "backend_sdpa": sdpa_backend_from_names(names), "backend_ssd": ssd_backend_from_names(names),
             "backend_ssd_selected": _module_facts(model, "backend") or "none",
             "backend_ssd_reason": _module_facts(model, "backend_reason"),
             "backend_tesa": _module_facts(model, "te_backend") or "none", "sdpa_enabled": sdpa_enabled(),
             "flops_analytic": point.flops_analytic}
    if cuda:
        facts.update(gpu_state_before=gpu_before, gpu_state_after=gpu_after)
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
             "latency_ms_mean": statistics.fmean(raw), **_spread(raw),
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
