"""The measurement registry of the cost sweep (paper Fig. 1b / 6 / 20, Table 1 "Max. Raw Frames", Table 2).

Each measurement is a function ``run(spec, settings, ctx) -> list[dict]`` living in its own module, registered
here with its name, version, metrics (unit, direction) and whether it needs a GPU. The records it returns carry
only the measurement's own fields plus ``status``/``message``; :mod:`evalkit.sweep.runner` adds the common point
fields and writes them. Bump ``version`` whenever the method changes (reports compare within one version).
Importing this module does not import torch.
"""
from __future__ import annotations

from evalkit.core.registry import Registry

MEASUREMENTS = Registry("measurement")

MEASUREMENTS.add(
    "flops", "evalkit.measure.flops:run", version=2, requires_gpu=False,
    # v2: evalkit.measure.flop_counter (FLOP ops only, each layer kind once) replaces FlopCounterMode; same totals
    summary="forward FLOPs counted on the meta device (FLOP-carrying ops, each layer kind once) vs "
            "models.estimate_flops (+ fvcore MACs)",
    metrics={"flops": ("FLOP (2 per MAC), one denoiser forward", "lower"),
             "flops_analytic": ("FLOP (2 per MAC)", "lower"), "flops_rel_diff": ("fraction", "lower"),
             "fvcore_macs": ("MAC, excludes attention/custom ops", "lower")})
MEASUREMENTS.add(
    "latency", "evalkit.measure.latency:run", version=3, requires_gpu=False,
    # v3: backends profiled on the first warm-up call (no extra forward), latency.max_seconds cap (budget),
    # environment and peak memory of the timed forwards in the record
    summary="wall time of one denoiser forward (or the sampling loop): CUDA events on GPU, perf_counter on CPU "
            "for points under latency.cpu_budget_gflop",
    metrics={"latency_ms_p50": ("ms", "lower"), "latency_ms_p10": ("ms", "lower"),
             "latency_ms_p90": ("ms", "lower")})
MEASUREMENTS.add(
    "memory", "evalkit.measure.memory:run", version=2, requires_gpu=True,
    # v2: reuses the peak of the latency measurement's timed forwards at the same point (mem_source)
    summary="peak CUDA memory (allocated, reserved) of one denoiser forward under inference_mode",
    metrics={"mem_peak_allocated_bytes": ("bytes", "lower"), "mem_peak_reserved_bytes": ("bytes", "lower")})
MEASUREMENTS.add(
    "max_frames", "evalkit.measure.max_frames:run", version=2, requires_gpu=True,
    # v2: max_frames.memory_limit_gib (probe as a smaller card) and max_frames.max_seconds (budget); probe times
    summary="largest duration whose denoiser forward fits on one GPU at a resolution (bisection)",
    metrics={"max_frames": ("raw frames", "higher"), "max_duration_s": ("s", "higher")})


def version(name: str) -> int:
    return int(MEASUREMENTS.entry(name, "measurement").meta["version"])


def requires_gpu(name: str) -> bool:
    return bool(MEASUREMENTS.entry(name, "measurement").meta["requires_gpu"])


__all__ = ["MEASUREMENTS", "version", "requires_gpu"]
