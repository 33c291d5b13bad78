"""Shared pieces of the measurements: the per-process model cache, dtype names, backend detection.

A sweep visits many points of one (model, flavor); building the model (even on ``meta``) costs more than counting
one point, so :class:`Context` keeps the most recently built models, keyed by the resolved config, device, dtype
and kernel choice. Real-device models are evicted before another is built so only one holds GPU memory.
"""
from __future__ import annotations

import gc
from collections import OrderedDict
from typing import Any, Literal

from evalkit import models

DType = Literal["float32", "bfloat16", "float16"]


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
        # (config, height, width, duration, batch, dtype, kernels) -> (peak allocated, peak reserved) bytes of the
        # latency measurement's timed forwards, for the cached real model (cleared with it)
        self.peaks: dict[tuple, tuple[int, int]] = {}

    def build(self, cfg: Any, device: str, dtype: str = "float32", kernels: str = "auto") -> Any:
        """The model of ``cfg`` (a frozen mixer config) on ``device``, built once and cached."""
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
        self.peaks.clear()
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


_ENV: dict[str, Any] = {}


def environment() -> dict[str, Any]:
    """What a timing depends on besides the model (put into every latency / memory / max-frames record): GPU
    name, torch, CUDA, cuDNN, triton and mamba-ssm versions (``absent`` when not installed)."""
    if _ENV:
        return dict(_ENV)
    import torch
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    cuda = torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None
    _ENV.update(gpu=torch.cuda.get_device_name(0) if cuda else None, torch_version=torch.__version__,
                cuda_version=torch.version.cuda, cudnn_version=cudnn, triton_version=version("triton"),
                mamba_ssm_version=version("mamba-ssm"))
    return dict(_ENV)


GPU_QUERY = ("clocks.sm", "clocks.max.sm", "power.draw", "power.limit", "temperature.gpu")
THROTTLE_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")   # newer / older drivers


def gpu_state() -> dict[str, Any]:
    """The GPU's clocks, power, temperature and throttle reasons now (``nvidia-smi``), for the latency records: a
    timing taken while the card ran below its clocks or at its power limit says so. ``{"error": ...}`` when
    nvidia-smi cannot tell (no NVIDIA driver, a hung query)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return {"error": "nvidia-smi not found"}
    last = ""
    for reasons in THROTTLE_FIELDS:
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(GPU_QUERY + (reasons,))}",
                                  "--format=csv,noheader,nounits", "-i", "0"], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"error": f"nvidia-smi: {exc}"[:200]}
        if out.returncode == 0:
            values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
            keys = ("sm_clock_mhz", "max_sm_clock_mhz", "power_w", "power_limit_w", "temperature_c",
                    "throttle_reasons")
            state: dict[str, Any] = {}
            for k, v in zip(keys, values):
                try:
                    state[k] = v if k == "throttle_reasons" else float(v)
                except ValueError:
                    state[k] = v
            return state
        last = (out.stderr or out.stdout).strip()
    return {"error": f"nvidia-smi: {last}"[:200]}


def sdpa_enabled() -> str:
    """The SDPA backends torch may choose from (its flags; the dispatcher takes the first in its priority order
    that accepts the inputs), '+'-joined: why a backend ran is this plus the inputs' dtype, shape and mask."""
    import torch

    b = torch.backends.cuda
    flags = {"flash": b.flash_sdp_enabled(), "efficient": b.mem_efficient_sdp_enabled(), "math": b.math_sdp_enabled()}
    if hasattr(b, "cudnn_sdp_enabled"):
        flags["cudnn"] = b.cudnn_sdp_enabled()
    return "+".join(k for k, v in flags.items() if v) or "none"


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
