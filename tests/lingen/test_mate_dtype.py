"""MATE's SSM parameters (A_log, dt_bias, D) stay float32 when the model is cast to bf16/fp16 or run under
autocast, and the scan gets A, dt in float32, as Mamba2 does (``A = -torch.exp(self.A_log.float())``)."""
from __future__ import annotations

import pytest
import torch

import lingen.mate as mate_mod
from evalkit import models as M
from lingen.mate import FP32_PARAMS, MATE

GRID = (2, 2, 4)


def _build(name="lingen", dtype=torch.float32):
    torch.manual_seed(0)
    return M.build(M.resolve(name, "tiny"), device="cpu", dtype=dtype, kernels="ref")


def _mates(model):
    return [m for m in model.modules() if isinstance(m, MATE)]


@pytest.mark.parametrize("name", ["lingen", "lingen-mamba1"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cast_keeps_ssm_parameters_float32(name, dtype):
    ref, half = _build(name), _build(name, dtype)
    for m32, m16 in zip(_mates(ref), _mates(half)):
        for pname in FP32_PARAMS:
            p = getattr(m16, pname)
            assert isinstance(p, torch.nn.Parameter) and p.dtype == torch.float32, pname
            assert torch.equal(p, getattr(m32, pname)), f"{pname} was rounded through {dtype}"
        assert m16.qkv.weight.dtype == dtype and m16.norm_w.dtype == dtype  # the rest is cast as usual
    # the same holds for casts after construction and for float64 (kept float64: exactness tests)
    m = _mates(_build(name))[1]
    m.half()
    assert all(getattr(m, p).dtype == torch.float32 for p in FP32_PARAMS)
    m.double()
    assert all(getattr(m, p).dtype == torch.float64 for p in FP32_PARAMS)


def _scan_inputs(model, x, t, ctx, monkeypatch, autocast=False):
    seen = []
    real = mate_mod.ssd_scan

    def spy(xh, dt, A, B, C, chunk, backend):
        seen.append((xh.dtype, dt.dtype, A.dtype, A.detach().clone()))
        return real(xh, dt, A, B, C, chunk, backend)
    monkeypatch.setattr(mate_mod, "ssd_scan", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x, t, ctx)
    return out, seen


@pytest.mark.parametrize("mode", ["cast", "autocast"])
def test_scan_runs_with_float32_A_and_dt(mode, monkeypatch):
    cfg = M.resolve("lingen", "tiny")
    point = M.VideoPoint(height=32, width=64, duration_s=1.0)
    model = _build(dtype=torch.bfloat16 if mode == "cast" else torch.float32)
    x, t, ctx = M.dummy_inputs(cfg, point, batch=1, device="cpu", dtype=torch.bfloat16)
    out, seen = _scan_inputs(model, x, t, ctx, monkeypatch, autocast=mode == "autocast")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert seen and all(xd == torch.bfloat16 and dd == torch.float32 and ad == torch.float32
                        for xd, dd, ad, _ in seen)
    a_log = [m.A_log for m in _mates(_build())]  # float32 reference parameters
    for i, (*_, A) in enumerate(seen):  # two directions per layer
        assert torch.equal(A, -torch.exp(a_log[i // 2][i % 2]))
