"""Custom ops ``lingen::ssd_scan`` / ``lingen::selective_scan`` (reference body, fake kernel, FLOP formula,
autograd by recomputation) and the ``auto | ref | fused`` backend switch (fused = mamba-ssm's Triton SSD, loaded
and checked by ``lingen.kernels.fused``; the choice comes with the reason when it is not the fused kernel).
"""
from __future__ import annotations

import sys

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from lingen import spec
from lingen.kernels import fused
from lingen.kernels import reference as ref

BACKENDS = ("auto", "ref", "fused")
_REPORTED: set[str] = set()  # reasons already printed (once per process each)


def _check_choice(kernels: str) -> None:
    if kernels not in BACKENDS:
        import difflib
        guess = difflib.get_close_matches(str(kernels), BACKENDS, n=1)
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        raise ValueError(f"kernels: unknown backend {kernels!r}. Valid choices: {', '.join(BACKENDS)}.{hint}")


def fused_unavailable_reason(device: str | torch.device) -> str | None:
    """None when mamba-ssm's fused SSD can run on ``device``, else one sentence saying why not."""
    return fused.unavailable_reason(torch.device(device).type)


def select_backend(kernels: str, device: str | torch.device, ssm: str | None = "mamba2") -> tuple[str, str]:
    """(backend, reason) of the MA-branch scan: backend 'fused' | 'ref' | 'none' (no SSM), reason '' for fused.

    ``ssm`` is the scan kind ('mamba2' SSD, 'mamba1' selective scan, None for a model without an MA-branch).
    'auto' -> 'fused' on CUDA where mamba-ssm's Triton SSD runs, else 'ref' with the reason (printed once per
    process and reason). 'fused' where it cannot run is an error, never a quiet reference run; it also accepts CPU
    tensors when the kernels were compiled for Triton's interpreter (the ``triton`` tests), which 'auto' never
    picks.
    """
    _check_choice(kernels)
    dev = torch.device(device)
    if ssm is None:
        return "none", "no MA-branch: the model runs no scan"
    if kernels == "ref":
        return "ref", "kernels='ref' requested"
    if ssm != "mamba2":
        reason = (f"the {ssm} selective scan has only the plain-PyTorch reference here (mamba-ssm's fused one is "
                  "the CUDA extension selective_scan_cuda)")
    else:
        reason = fused_unavailable_reason(dev)
        if reason is None and kernels == "auto" and dev.type != "cuda":
            reason = "kernels='auto' uses the fused SSD on CUDA only (on CPU it is Triton's interpreter)"
    if reason is None:
        return "fused", ""
    if kernels == "fused":
        raise RuntimeError(f"kernels='fused' cannot run on {dev.type}: {reason}. Use kernels='auto' or 'ref'.")
    if dev.type != "meta" and reason not in _REPORTED:
        _REPORTED.add(reason)
        print(f"lingen: the MA-branch scan uses the reference kernels on {dev.type}: {reason}", file=sys.stderr)
    return "ref", reason


def resolve_backend(kernels: str, device: str | torch.device) -> str:
    """The SSD backend name of :func:`select_backend` ('fused' | 'ref')."""
    return select_backend(kernels, device)[0]


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
    return spec.ssd_scan_flops(b, l, h, p, B_shape[-1], chunk)


def ssd_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int, backend: str = "ref") -> Tensor:
    """y (b,l,h,p) of the SSD recurrence; x (b,l,h,p), dt (b,l,h) > 0, A (h) < 0, B/C (b,l,h,n).

    backend 'ref' | 'fused' | 'auto' ('auto' is resolved for x's device). 'fused' is mamba-ssm's
    ``mamba_chunk_scan_combined`` with ngroups = h (one B/C per head), dt already positive (no dt_bias, no
    softplus inside), and no D, no z (the caller adds D x and gates). It raises where it cannot run.
    """
    if backend == "auto":
        backend = resolve_backend("auto", x.device)
    if backend == "fused":
        reason = fused_unavailable_reason(x.device)
        if reason is not None:
            raise RuntimeError(f"ssd_scan(backend='fused') on {x.device.type} tensors: {reason}")
        return fused.load().fn(x, dt, A, B, C, chunk_size=chunk)
    if backend != "ref":
        _check_choice(backend)
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
    return spec.selective_scan_flops(b, l, d, A_shape[-1])


def selective_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int = 16) -> Tensor:
    """Mamba-1 selective scan (reference path on every device; x, dt (b,l,d), A (d,n), B/C (b,l,g,n))."""
    return torch.ops.lingen.selective_scan(x, dt, A, B, C, chunk)
