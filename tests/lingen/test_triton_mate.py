"""The whole MATE block (lingen/mate.py, LinGen Fig. 2) through mamba-ssm's fused SSD vs through lingen's
reference scan, on CPU under Triton's interpreter, forward and backward (input and every parameter).

Both paths share every line of MATE except ``ssd_scan``'s mapping onto ``mamba_chunk_scan_combined``
(x <- v, B <- k, C <- q per head, ngroups = heads, dt after softplus, D and the z gate outside the kernel), so
agreement proves that mapping. A control shows the comparison detects a wrong mapping (B and C swapped).
Measured (tiny preset: d 64, 4 SSD heads of 16, chunk 8, 24 video + 2 review tokens, float32, layers 0 and 1):
relative error max|fused - ref| / max|ref| 1.7e-7 for the output, 1.3e-6 for the worst gradient; tolerance 5e-6.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from evalkit import models as M
from lingen.kernels import fused
from lingen.mate import MATE

pytestmark = pytest.mark.triton

GRID = (2, 3, 4)  # 24 video tokens + ceil(24 / 16) = 2 review tokens: 26, not a multiple of the chunk (8)
TOL = 5e-6


def _pair(layer: int):
    cfg = M.resolve("lingen", "tiny")
    torch.manual_seed(layer)
    ref = MATE(cfg, layer, "ref")
    with torch.no_grad():  # move every parameter off its init (D = 1, review_type = 0, ...) so each one matters
        for p in ref.parameters():
            p.add_(0.3 * torch.randn_like(p))
    fused_mate = MATE(cfg, layer, "fused")
    fused_mate.load_state_dict(ref.state_dict())
    return ref, fused_mate


def _forward_backward(mixer, x):
    x = x.clone().requires_grad_(True)
    y = mixer(x, GRID)
    params = dict(mixer.named_parameters())
    grads = torch.autograd.grad(y, [x, *params.values()], torch.ones_like(y) + y.detach())
    return y.detach(), dict(zip(["input", *params], grads))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture
def fused_calls(fused_ssd, monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return fused_ssd.fn(*args, **kwargs)
    monkeypatch.setattr(fused, "load", lambda: dataclasses.replace(fused_ssd, fn=spy))
    return calls


@pytest.mark.parametrize("layer", [0, 1])  # two scan orders of RMS; layer 1 also shifts the TESA windows
def test_mate_fused_equals_reference(layer, fused_calls, measured):
    ref, fz = _pair(layer)
    x = torch.randn(1, 24, ref.d, generator=torch.Generator().manual_seed(10 + layer))
    y_ref, g_ref = _forward_backward(ref, x)
    y_fused, g_fused = _forward_backward(fz, x)
    assert [tuple(s) for s in fused_calls] == [(1, 26, 4, 16)] * 2  # both directions ran the fused kernel
    measured[("mate float32", "y")] = err = _rel(y_fused, y_ref)
    assert err <= TOL, f"output: relative error {err:.3g}"
    worst = max(g_ref, key=lambda k: _rel(g_fused[k], g_ref[k]))
    measured[("mate float32", "grads")] = err = _rel(g_fused[worst], g_ref[worst])
    assert err <= TOL, f"grad of {worst}: relative error {err:.3g}"
    assert all(g.abs().max() > 0 for g in g_ref.values()), "a parameter does not reach the output"


def test_control_a_swapped_mapping_is_detected(fused_ssd, monkeypatch):
    """The same comparison with B and C exchanged on the way into the kernel fails by orders of magnitude."""
    def swapped(x, dt, A, B, C, **kwargs):
        return fused_ssd.fn(x, dt, A, C, B, **kwargs)
    monkeypatch.setattr(fused, "load", lambda: dataclasses.replace(fused_ssd, fn=swapped))
    ref, fz = _pair(0)
    x = torch.randn(1, 24, ref.d, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert _rel(fz(x, GRID), ref(x, GRID)) > 1e3 * TOL
