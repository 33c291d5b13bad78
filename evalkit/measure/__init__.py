"""The measurement registry of the cost sweep (paper Fig. 1b / 6 / 20, Table 1 "Max. Raw Frames", Table 2).

Each measurement is a function ``run(point, ctx) -> list[dict]`` living in its own module next to the settings
section it reads (``FlopsSettings`` in ``flops.py``, ...; the section has the measurement's name), registered here
with its name, version, settings class and whether it needs a GPU. It takes a :class:`~evalkit.measure.point.Point` (model config, video, batch, settings: resolved
once in planning) and returns only its own fields plus ``status``/``message``; :mod:`evalkit.sweep.runner` adds
the point's fields and writes them (``evalkit.core.schema`` lists every field). Bump ``version`` whenever the
method changes (reports compare within one version). Importing this module does not import torch.
"""
from __future__ import annotations

from evalkit.core.registry import Registry

MEASUREMENTS = Registry("measurement")

# v2: evalkit.measure.flop_counter (FLOP ops only, each layer kind once) replaces FlopCounterMode; same totals
MEASUREMENTS.add("flops", "evalkit.measure.flops:run", version=2, requires_gpu=False,
                 settings="evalkit.measure.flops:FlopsSettings",
                 summary="forward FLOPs counted on the meta device (FLOP-carrying ops, each layer kind once) vs "
                         "models.estimate_flops (+ fvcore MACs)")
# v3: backends profiled on the first warm-up call (no extra forward), latency.max_seconds cap (budget),
# environment and peak memory of the timed forwards in the record
MEASUREMENTS.add("latency", "evalkit.measure.latency:run", version=3, requires_gpu=False,
                 settings="evalkit.measure.latency:LatencySettings",
                 summary="wall time of one denoiser forward (or the sampling loop): CUDA events on GPU, "
                         "perf_counter on CPU for points under latency.cpu_budget_gflop")
# v2: reuses the peak of the latency measurement's timed forwards at the same point (mem_source)
MEASUREMENTS.add("memory", "evalkit.measure.memory:run", version=2, requires_gpu=True,
                 settings="evalkit.measure.memory:MemorySettings",
                 summary="peak CUDA memory (allocated, reserved) of one denoiser forward under inference_mode")
# v2: max_frames.memory_limit_gib (probe as a smaller card) and max_frames.max_seconds (budget); probe times
MEASUREMENTS.add("max_frames", "evalkit.measure.max_frames:run", version=2, requires_gpu=True,
                 settings="evalkit.measure.max_frames:MaxFramesSettings",
                 summary="largest duration whose denoiser forward fits on one GPU at a resolution (bisection)")


def version(name: str) -> int:
    return int(MEASUREMENTS.entry(name, "measurement").meta["version"])


def requires_gpu(name: str) -> bool:
    return bool(MEASUREMENTS.entry(name, "measurement").meta["requires_gpu"])


__all__ = ["MEASUREMENTS", "version", "requires_gpu"]
