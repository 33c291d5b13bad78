"""Peak CUDA memory of one denoiser forward (the memory side of paper Table 1 / Fig. 6).

``torch.cuda.reset_peak_memory_stats()`` before, ``max_memory_allocated()`` / ``max_memory_reserved()`` after one
``inference_mode`` forward in ``memory.dtype_cuda``. Weights are included (they are resident during sampling).
When the latency measurement has just timed the same point with the same model, dtype and kernels in this
process, its timed forwards already are such forwards (peak stats reset after the warm-up, weights and inputs
resident): their peak is the record (``mem_source: latency_timed_forwards``) and no forward is run again; else
one forward of its own (``mem_source: own_forward``). No CUDA -> a ``skipped`` row; an OOM -> an ``oom`` row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit import models
from evalkit.measure.common import Context, DType, cuda_available, environment, is_oom, torch_dtype

if TYPE_CHECKING:
    from evalkit.measure.point import Point


@dataclass(frozen=True, kw_only=True)
class MemorySettings:
    """The ``memory:`` section of a sweep file."""
    dtype_cuda: DType = "bfloat16"

    def check(self, where: str) -> None:
        """Nothing beyond the types."""


def peak_forward_bytes(ctx: Context, point: Point, duration_s: float | None, dtype: str,
                       kernels: str = "auto") -> tuple[int, int]:
    """(peak allocated, peak reserved) bytes of one forward at ``duration_s`` (default: the point's)."""
    import torch

    video = point.video if duration_s is None else point.at(duration_s)
    model = ctx.build(point.config, "cuda", dtype, kernels)
    inputs = models.dummy_inputs(point.config, video, batch=point.batch, device="cuda", dtype=torch_dtype(dtype))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model(*inputs)      # the backbone's (x, t, context), or a released model's own inputs
    torch.cuda.synchronize()
    out = int(torch.cuda.max_memory_allocated()), int(torch.cuda.max_memory_reserved())
    del inputs
    return out


def run(point: Point, ctx: Context) -> list[dict[str, Any]]:
    from evalkit.measure.latency import peak_key

    ms = point.settings.memory
    kernels = point.settings.latency.kernels
    base = {"dtype": ms.dtype_cuda, "device": "cuda" if cuda_available() else "cpu"}
    if not cuda_available():
        return [{**base, "status": "skipped", "message": "no CUDA: peak GPU memory not measured"}]
    base.update(environment())
    key = peak_key(point, ms.dtype_cuda, kernels)
    if key in ctx.peaks:
        alloc, reserved = ctx.peaks[key]
        return [{**base, "status": "ok", "message": "", "mem_peak_allocated_bytes": alloc,
                 "mem_peak_reserved_bytes": reserved, "mem_source": "latency_timed_forwards"}]
    try:
        alloc, reserved = peak_forward_bytes(ctx, point, None, ms.dtype_cuda, kernels)
    except Exception as exc:
        if is_oom(exc):
            ctx.release(real_only=True)
            return [{**base, "status": "oom", "message": f"{type(exc).__name__}: {str(exc)[:200]}"}]
        raise
    return [{**base, "status": "ok", "message": "", "mem_peak_allocated_bytes": alloc,
             "mem_peak_reserved_bytes": reserved, "mem_source": "own_forward"}]
