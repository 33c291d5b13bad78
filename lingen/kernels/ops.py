"""Custom ops ``lingen::ssd_scan`` / ``lingen::selective_scan`` (reference body, fake kernel, FLOP formula,
autograd by recomputation) and the ``auto | ref | fused`` backend switch (fused = mamba-ssm Triton SSD on CUDA).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from lingen import analytic
from lingen.kernels import reference as ref

BACKENDS = ("auto", "ref", "fused")


def _fused_available() -> bool:
    try:
        import mamba_ssm.ops.triton.ssd_combined  # noqa: F401
    except Exception:  # ImportError, or a broken build without triton
        return False
    return torch.cuda.is_available()


def resolve_backend(kernels: str, device: str) -> str:
    """'auto' -> 'fused' on CUDA with mamba-ssm importable, else 'ref'. 'fused' without them is an error."""
    if kernels not in BACKENDS:
        import difflib
        guess = difflib.get_close_matches(str(kernels), BACKENDS, n=1)
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        raise ValueError(f"kernels: unknown backend {kernels!r}. Valid choices: {', '.join(BACKENDS)}.{hint}")
    is_cuda = str(device).startswith("cuda")
    if kernels == "ref" or (kernels == "auto" and not (is_cuda and _fused_available())):
        return "ref"
    if not is_cuda or not _fused_available():
        raise RuntimeError("kernels='fused' needs a CUDA device and mamba-ssm (install the `gpu` extra: "
                           "pip install -e '.[gpu]'); use kernels='ref' or 'auto' otherwise")
    return "fused"


# ---- SSD (Mamba2) ----------------------------------------------------------------------------------------------
def _f32(fn, x: Tensor, *rest: Tensor, chunk: int) -> Tensor:
    """Run a reference scan in float32 for half-precision inputs (cumulative decays need the range)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return fn(x.float(), *(t.float() for t in rest), chunk).to(x.dtype)
    return fn(x, *rest, chunk)


@torch.library.custom_op("lingen::ssd_scan", mutates_args=())
def _ssd_scan_op(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    return _f32(ref.ssd_chunked, x, dt, A, B, C, chunk=chunk)


@_ssd_scan_op.register_fake
def _(x, dt, A, B, C, chunk):
    return torch.empty_like(x)


def _ssd_setup(ctx, inputs, output):
    x, dt, A, B, C, chunk = inputs
    ctx.save_for_backward(x, dt, A, B, C)
    ctx.chunk = chunk


def _recompute_backward(fn):
    """Backward of a reference scan op: recompute ``fn`` under autograd (memory-light; the fused path has its own
    backward) and differentiate it."""
    def backward(ctx, gy):
        inputs = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        with torch.enable_grad():
            y = _f32(fn, *inputs, chunk=ctx.chunk)
            grads = torch.autograd.grad(y, inputs, gy)
        return (*grads, None)
    return backward


_ssd_scan_op.register_autograd(_recompute_backward(ref.ssd_chunked), setup_context=_ssd_setup)


@register_flop_formula(torch.ops.lingen.ssd_scan)
def _ssd_flop(x_shape, dt_shape, A_shape, B_shape, C_shape, chunk, *args, out_shape=None, **kwargs) -> int:
    b, l, h, p = x_shape
    return analytic.ssd_scan_flops(b, l, h, p, B_shape[-1], chunk)


def ssd_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int, backend: str = "ref") -> Tensor:
    """y (b,l,h,p) of the SSD recurrence; x (b,l,h,p), dt (b,l,h) > 0, A (h) < 0, B/C (b,l,h,n)."""
    if backend == "fused" and x.is_cuda:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
        return mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=chunk)
    return torch.ops.lingen.ssd_scan(x, dt, A, B, C, chunk)


# ---- Selective scan (Mamba-1) ------------------------------------------------------------------------------------
@torch.library.custom_op("lingen::selective_scan", mutates_args=())
def _selective_op(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    return _f32(ref.selective_chunked, x, dt, A, B, C, chunk=chunk)


@_selective_op.register_fake
def _(x, dt, A, B, C, chunk):
    return torch.empty_like(x)


_selective_op.register_autograd(_recompute_backward(ref.selective_chunked), setup_context=_ssd_setup)


@register_flop_formula(torch.ops.lingen.selective_scan)
def _sel_flop(x_shape, dt_shape, A_shape, B_shape, C_shape, chunk, *args, out_shape=None, **kwargs) -> int:
    b, l, d = x_shape
    return analytic.selective_scan_flops(b, l, d, A_shape[-1])


def selective_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int = 16) -> Tensor:
    """Mamba-1 selective scan (reference path on every device; x, dt (b,l,d), A (d,n), B/C (b,l,g,n))."""
    return torch.ops.lingen.selective_scan(x, dt, A, B, C, chunk)
