"""SSD (Mamba2) and selective-scan (Mamba-1) references: chunked == step-by-step recurrence; custom ops count
on meta with their formulas; autograd through the custom ops; the backend switch (reasons, errors, loading a
mamba-ssm without its CUDA extension). The real fused kernel is checked on CPU by test_triton_*.py (marker triton)."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lingen import spec as analytic
from lingen.kernels import reference as ref
from lingen.kernels import fused, ops
from lingen.kernels.ops import fused_unavailable_reason, resolve_backend, select_backend, selective_scan, ssd_scan


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
    for device in ("cpu", "meta"):
        if device == "cpu" and (torch.cuda.is_available() or fused.interpreter_requested()):
            continue
        with pytest.raises(RuntimeError, match=f"kernels='fused' cannot run on {device}"):
            resolve_backend("fused", device)
    with pytest.raises(ValueError, match="Did you mean 'fused'"):
        resolve_backend("fuse", "cpu")


def test_backend_reasons_and_variants():
    backend, reason = select_backend("auto", "meta")
    assert backend == "ref" and "meta" in reason
    assert select_backend("ref", "cpu") == ("ref", "kernels='ref' requested")
    assert select_backend("fused", "cpu", None)[0] == "none"  # no MA-branch: nothing to fuse, nothing faked
    backend, reason = select_backend("auto", "meta", "mamba1")
    assert backend == "ref" and "selective scan" in reason
    with pytest.raises(RuntimeError, match="mamba1 selective scan has only the plain-PyTorch reference"):
        select_backend("fused", "meta", "mamba1")


def test_fallback_reason_printed_once(capsys, monkeypatch):
    monkeypatch.setattr(ops, "_REPORTED", set())
    for _ in range(3):
        backend, reason = select_backend("auto", "cpu")
    assert backend == "ref" and reason
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("lingen:")]
    assert lines == [f"lingen: the MA-branch scan uses the reference kernels on cpu: {reason}"]
    select_backend("auto", "meta")  # the meta device (FLOP counting) is never a surprise: not printed
    assert "lingen:" not in capsys.readouterr().err


@pytest.mark.skipif(fused.interpreter_requested(), reason="TRITON_INTERPRET is set: fused runs on CPU here")
def test_fused_on_cpu_is_an_error_not_a_reference_run():
    x, dt, A, B, C = (t.float() for t in _ssd_inputs(l=9))
    with pytest.raises(RuntimeError, match=r"ssd_scan\(backend='fused'\) on cpu tensors: CPU tensors"):
        ssd_scan(x, dt, A, B, C, 4, backend="fused")
    with pytest.raises(ValueError, match="Did you mean 'ref'"):
        ssd_scan(x, dt, A, B, C, 4, backend="reff")


# A mamba-ssm built without its CUDA extension, as 2.3.2.post1 installs with MAMBA_SKIP_CUDA_BUILD=TRUE: the
# package __init__ imports selective_scan_cuda unguarded, the Triton SSD module itself does not need it.
_FAKE = {
    "mamba_ssm/__init__.py": "import selective_scan_cuda\n",
    "mamba_ssm/ops/__init__.py": "",
    "mamba_ssm/ops/triton/__init__.py": "",
    "mamba_ssm/ops/triton/ssd_combined.py": "def mamba_chunk_scan_combined(*args, **kwargs):\n    return 'fused'\n",
}


@pytest.fixture
def fake_mamba(tmp_path, monkeypatch):
    for rel, text in _FAKE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    saved = {k: v for k, v in sys.modules.items() if k == "mamba_ssm" or k.startswith("mamba_ssm.")}
    for k in saved:
        del sys.modules[k]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fused, "_interpreted", lambda module: False)  # no triton in the fake; real: test_triton_ssd.py
    fused.load.cache_clear()
    yield
    for k in [k for k in sys.modules if k == "mamba_ssm" or k.startswith("mamba_ssm.")]:
        del sys.modules[k]
    sys.modules.update(saved)
    fused.load.cache_clear()


def test_fused_loads_without_the_cuda_extension(fake_mamba, monkeypatch):
    with pytest.raises(ModuleNotFoundError, match="selective_scan_cuda"):
        importlib.import_module("mamba_ssm")
    loaded = fused.load()
    assert loaded.error == "" and loaded.package_init_skipped and loaded.fn() == "fused"
    assert "mamba_ssm" not in sys.modules  # the bare package entry is not left behind
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert fused_unavailable_reason("cuda") is None
    assert select_backend("auto", "cuda") == ("fused", "")  # auto picks it, as on a GPU box without a compiler


def test_fused_unavailable_reason_names_the_import_error(fake_mamba, tmp_path, monkeypatch):
    (tmp_path / "mamba_ssm/ops/triton/ssd_combined.py").write_text("import no_such_triton_module\n")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reason = fused_unavailable_reason("cuda")
    assert "no_such_triton_module" in reason and "pip install" in reason
    with pytest.raises(RuntimeError, match="no_such_triton_module"):
        resolve_backend("fused", "cuda")


# Relative errors below are max |fused - ref| / max |ref| (ref: float64). On CPU under Triton's interpreter
# (test_triton_ssd.py) float32 measured <= 2.7e-6 and float16 <= 1.5e-3 (y, all gradients). On a GPU, Triton's tl.dot
# takes float32 inputs as TF32 (10-bit mantissa, as float16; mamba-ssm sets no input_precision), so float32 gets
# a float16-like tolerance; bfloat16 has 3 fewer mantissa bits than float16, hence 8x. Not yet measured on a GPU.
GPU_TOL = {torch.float32: 6e-3, torch.bfloat16: 5e-2}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_fused_ssd_matches_reference_on_gpu(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    assert fused_unavailable_reason("cuda") is None, fused_unavailable_reason("cuda")
    x, dt, A, B, C = _ssd_inputs(b=2, l=1000, h=4, p=64, n=64)
    ins = [t.to("cuda", dtype).requires_grad_(True) for t in (x, B, C)]
    dtf, Af = (t.to("cuda", torch.float32).requires_grad_(True) for t in (dt, A))  # as MATE passes them
    y = ssd_scan(ins[0], dtf, Af, ins[1], ins[2], 256, backend="fused")
    assert y.dtype == dtype
    gy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [ins[0], dtf, Af, ins[1], ins[2]], gy)
    ref_in = [t.detach().double().requires_grad_(True) for t in (ins[0], dtf, Af, ins[1], ins[2])]
    y_ref = ref.ssd_chunked(*ref_in, 256)
    grads_ref = torch.autograd.grad(y_ref, ref_in, gy.double())
    for name, a, b in zip(["y", "dx", "ddt", "dA", "dB", "dC"], [y, *grads], [y_ref, *grads_ref]):
        rel = ((a.double() - b).abs().max() / b.abs().max()).item()
        assert rel < GPU_TOL[dtype], f"{name}: relative error {rel:.3g}"


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
