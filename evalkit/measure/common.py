"""Shared pieces of the measurements: the per-process model cache, dtype names, backend detection.

A sweep visits many points of one (model, flavor); building the model (even on ``meta``) costs more than counting
one point, so :class:`Context` keeps the most recently built models, keyed by the resolved config, device, dtype
and kernel choice. Real-device models are evicted before another is built so only one holds GPU memory.
"""
from __future__ import annotations

import gc
from collections import OrderedDict
from typing import Any

from evalkit import models


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def video_point(spec: dict[str, Any], duration_s: float | None = None) -> Any:
    return models.VideoPoint(height=int(spec["height"]), width=int(spec["width"]),
                             duration_s=float(spec["duration_s"] if duration_s is None else duration_s),
                             fps=int(spec["fps"]))


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Context:
    """Per-process state shared by the measurements of a sweep (model cache)."""

    def __init__(self, max_meta: int = 2) -> None:
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self.max_meta = max_meta
        self.builds = 0   # how many models were built (tests check that resume builds none)

    def model_config(self, spec: dict[str, Any]) -> Any:
        return models.resolve(spec["model"], spec["flavor"], spec.get("model_overrides") or None)

    def model(self, spec: dict[str, Any], device: str, dtype: str = "float32", kernels: str = "auto") -> Any:
        return self.build(self.model_config(spec), device, dtype, kernels)

    def build(self, cfg: Any, device: str, dtype: str = "float32", kernels: str = "auto") -> Any:
        """The model of ``cfg`` (a frozen ModelConfig) on ``device``, built once and cached."""
        key = (cfg, device, dtype, kernels)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        if device != "meta":
            self.release(real_only=True)
        model = models.build(cfg, device=device, dtype=torch_dtype(dtype), kernels=kernels)
        model.eval()
        self.builds += 1
        self._models[key] = model
        while sum(1 for k in self._models if k[1] == "meta") > self.max_meta:
            oldest = next(k for k in self._models if k[1] == "meta")
            del self._models[oldest]
        return model

    def release(self, real_only: bool = False) -> None:
        for key in [k for k in self._models if not real_only or k[1] != "meta"]:
            del self._models[key]
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def sdpa_backend_from_names(names: set[str]) -> str:
    """Which SDPA implementation ran, from profiler op/kernel names; "none" when no attention ran."""
    found = []
    table = (("_scaled_dot_product_flash_attention_for_cpu", "cpu_flash"),
             ("_scaled_dot_product_cudnn_attention", "cudnn"), ("cudnn", "cudnn"),
             ("_scaled_dot_product_flash_attention", "flash"), ("flash_fwd", "flash"),
             ("_scaled_dot_product_efficient_attention", "efficient"), ("fmha", "efficient"),
             ("_efficient_attention_forward", "efficient"),
             ("_scaled_dot_product_attention_math", "math"))
    for name in names:
        for needle, label in table:
            if needle in name:
                if label not in found:
                    found.append(label)
                break
    if not found and any("scaled_dot_product_attention" in n for n in names):
        found.append("math")
    return "+".join(sorted(found)) or "none"


def ssd_backend_from_names(names: set[str]) -> str:
    """"fused" when mamba-ssm's Triton SSD kernels ran, "ref" when the plain-PyTorch scan ran, else "none"."""
    if any("_chunk_scan_fwd" in n or "_chunk_state_fwd" in n or "selective_scan_cuda" in n
           or "selective_scan_fwd" in n for n in names):
        return "fused"
    if any("ssd_scan" in n or "selective_scan" in n for n in names):
        return "ref"
    return "none"


def profile_names(fn: Any) -> set[str]:
    """Names of every op and kernel that ran during ``fn()`` (torch.profiler; CUDA kernels when on GPU)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return {evt.name for evt in prof.events()}
