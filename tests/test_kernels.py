"""SSD (Mamba2) and selective-scan (Mamba-1) references: chunked == step-by-step recurrence; custom ops count
on meta with their formulas; autograd through the custom ops; backend switch errors."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lingen import analytic
from lingen.kernels import reference as ref
from lingen.kernels.ops import resolve_backend, selective_scan, ssd_scan


def _ssd_inputs(b=2, l=37, h=3, p=4, n=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=g, dtype=dtype)
    dt = torch.nn.functional.softplus(torch.randn(b, l, h, generator=g, dtype=dtype))
    A = -torch.rand(h, generator=g, dtype=dtype) * 2 - 0.1
    B = torch.randn(b, l, h, n, generator=g, dtype=dtype)
    C = torch.randn(b, l, h, n, generator=g, dtype=dtype)
    return x, dt, A, B, C


@pytest.mark.parametrize("length,chunk", [(37, 1), (37, 4), (37, 8), (37, 37), (37, 64), (64, 16), (5, 3)])
def test_ssd_chunked_equals_recurrence(length, chunk):
    x, dt, A, B, C = _ssd_inputs(l=length)
    y_seq = ref.ssd_sequential(x, dt, A, B, C)
    y_chk = ref.ssd_chunked(x, dt, A, B, C, chunk)
    assert y_chk.shape == x.shape
    torch.testing.assert_close(y_chk, y_seq, rtol=1e-10, atol=1e-10)


def test_ssd_custom_op_matches_and_backprops():
    x, dt, A, B, C = _ssd_inputs(l=19)
    ins = [t.clone().requires_grad_(True) for t in (x, dt, A, B, C)]
    y = ssd_scan(*ins, 4)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, ins, g)
    ins2 = [t.clone().requires_grad_(True) for t in (x, dt, A, B, C)]
    y2 = ref.ssd_sequential(*ins2)
    grads2 = torch.autograd.grad(y2, ins2, g)
    torch.testing.assert_close(y, y2, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads, grads2):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("length,chunk", [(23, 4), (23, 16), (16, 16), (7, 32)])
def test_selective_chunked_equals_recurrence(length, chunk):
    g = torch.Generator().manual_seed(1)
    b, d, n, groups = 2, 6, 4, 3
    x = torch.randn(b, length, d, generator=g, dtype=torch.float64)
    dt = torch.nn.functional.softplus(torch.randn(b, length, d, generator=g, dtype=torch.float64))
    A = -torch.rand(d, n, generator=g, dtype=torch.float64) - 0.1
    B = torch.randn(b, length, groups, n, generator=g, dtype=torch.float64)
    C = torch.randn(b, length, groups, n, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ref.selective_chunked(x, dt, A, B, C, chunk), ref.selective_sequential(x, dt, A, B, C),
                               rtol=1e-10, atol=1e-10)
    y = selective_scan(x.requires_grad_(True), dt, A, B, C, chunk)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_custom_ops_counted_on_meta():
    b, l, h, p, n, q = 1, 100_000, 32, 64, 64, 256
    with torch.device("meta"):
        x, dt, A, B, C = torch.empty(b, l, h, p), torch.empty(b, l, h), torch.empty(h), torch.empty(b, l, h, n), \
            torch.empty(b, l, h, n)
        with FlopCounterMode(display=False) as fc:
            ssd_scan(x, dt, A, B, C, q)
    assert fc.get_total_flops() == analytic.ssd_scan_flops(b, l, h, p, n, q) > 0
    with torch.device("meta"):
        xs, dts, As = torch.empty(b, l, h * p), torch.empty(b, l, h * p), torch.empty(h * p, n)
        with FlopCounterMode(display=False) as fc:
            selective_scan(xs, dts, As, B, C)
    assert fc.get_total_flops() == analytic.selective_scan_flops(b, l, h * p, n) > 0


@pytest.mark.parametrize("length", [1000, 1024, 8192, 8200, 65536])
def test_ssd_reference_is_linear_in_length(length):
    """The reference itself (not the op's formula) executes exactly the linear-cost matmuls: the per-token count
    is the same at every length (a segsum over all chunks, as in ssd_minimal, would grow with L / chunk)."""
    b, h, p, n, q = 1, 4, 16, 16, 256
    with torch.device("meta"):
        x, dt, A = torch.empty(b, length, h, p), torch.empty(b, length, h), torch.empty(h)
        B, C = torch.empty(b, length, h, n), torch.empty(b, length, h, n)
        with FlopCounterMode(display=False) as fc:
            ref.ssd_chunked(x, dt, A, B, C, q)
    assert fc.get_total_flops() == analytic.ssd_scan_flops(b, length, h, p, n, q)


def test_backend_switch():
    assert resolve_backend("auto", "cpu") == "ref"
    assert resolve_backend("ref", "meta") == "ref"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="gpu"):
            resolve_backend("fused", "cpu")
    with pytest.raises(ValueError, match="Did you mean 'fused'"):
        resolve_backend("fuse", "cpu")


@pytest.mark.gpu
def test_fused_ssd_matches_reference_on_gpu():
    pytest.importorskip("mamba_ssm")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x, dt, A, B, C = (t.float().cuda() for t in _ssd_inputs(b=2, l=1000, h=4, p=64, n=64))
    y_ref = ssd_scan(x, dt, A, B, C, 256, backend="ref")
    y_fused = ssd_scan(x, dt, A, B, C, 256, backend="fused")
    torch.testing.assert_close(y_fused, y_ref, rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
def test_sdpa_backends_match_math_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q, k, v = (torch.randn(1, 8, 4096, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    with sdpa_kernel(SDPBackend.MATH):
        ref_out = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out.float(), ref_out, rtol=2e-2, atol=2e-2)
