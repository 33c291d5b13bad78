"""Fixtures of the ``triton`` test group (test_triton_ssd.py, test_triton_mate.py): mamba-ssm's real fused SSD
(Triton kernels) run on CPU by Triton's interpreter. tests/conftest.py imports them (a second conftest.py would
shadow the module name ``conftest`` that other tests import from; a folder named ``triton`` would be found by
``import triton`` where triton is not installed).

Run the group in its own process: ``python -m pytest -q -m triton`` (CI does, after installing mamba-ssm and
triton); tests/conftest.py then sets ``TRITON_INTERPRET=1`` before anything imports triton. The session fixture
below also sets ``MAMBA_DETERMINISTIC=1`` (one autotune config: the autotuner cannot benchmark without a GPU
driver) before it loads mamba-ssm, and fails if the kernels are not compiled for the interpreter. Importing this
file has no side effects, so the quick suite is untouched. A missing mamba-ssm or triton is a failure with the
install recipe, never a skip.

Two shims for mamba-ssm 2.3.2.post1 on CPU tensors live here (test code only), each limited to CPU tensors and
each with a test (test_triton_ssd.py) that fails once a mamba-ssm release makes it unnecessary:
- every launch runs inside ``with torch.cuda.device(t.device.index)``; a CPU tensor's index is None and
  ``torch.cuda.device(None)`` raises on a CPU-only torch. Shim: a no-op context for index None.
- the backward reads ``torch.cuda.get_device_properties(t.device).multi_processor_count`` to split heads over
  programs; with ngroups == nheads (one B/C per head, as MATE uses it) the split is 1 whatever the count.
  Shim: for CPU devices an object with only that field (132, an H100 SXM's SMs), so reading any other property
  fails loudly.
bfloat16 is not tested: Triton's interpreter computes it wrongly (numpy has no bfloat16); float32 and float16 only.
(The third obstacle, ``import mamba_ssm`` failing on the missing ``selective_scan_cuda``, is handled by the
production loader lingen/kernels/fused.py, because a GPU machine without a compiler has the same package.)
"""
from __future__ import annotations

import contextlib
import os
import sys
import types

import pytest
import torch

SM_COUNT = 132


@pytest.fixture(scope="session")
def cpu_shims():
    """Patch the two torch.cuda calls mamba-ssm makes on CPU tensors; ``used`` counts how often each was hit,
    ``real_device`` / ``real_properties`` are the unpatched functions (the necessity tests put them back)."""
    shims = types.SimpleNamespace(used={"device": 0, "properties": 0}, real_device=torch.cuda.device,
                                  real_properties=torch.cuda.get_device_properties)

    def device(index):
        if index is None:  # a CPU tensor's device index
            shims.used["device"] += 1
            return contextlib.nullcontext()
        return shims.real_device(index)

    def properties(dev):
        if torch.device(dev).type == "cpu":
            shims.used["properties"] += 1
            return types.SimpleNamespace(multi_processor_count=SM_COUNT)
        return shims.real_properties(dev)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "device", device)
        mp.setattr(torch.cuda, "get_device_properties", properties)
        yield shims


@pytest.fixture(scope="session")
def fused_ssd(cpu_shims):
    """The loaded fused SSD (lingen.kernels.fused.FusedSSD), compiled for Triton's interpreter."""
    from lingen.kernels import fused

    if fused.MODULE in sys.modules and not fused.load().interpreted:
        pytest.fail("mamba-ssm's Triton SSD was already imported in this process compiled for a GPU: run the "
                    "triton group in its own process (python -m pytest -q -m triton)")
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ["MAMBA_DETERMINISTIC"] = "1"
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"the triton test group needs triton ({exc}); install: {fused.INSTALL}")
    loaded = fused.load()
    if loaded.fn is None:
        pytest.fail(f"the triton test group needs mamba-ssm's Triton SSD: {loaded.error}")
    if not loaded.interpreted:
        pytest.fail("mamba-ssm's kernels were compiled for a GPU although TRITON_INTERPRET=1 was set: something "
                    "imported them earlier in this process; run python -m pytest -q -m triton on its own")
    reason = fused.unavailable_reason("cpu")
    assert reason is None, reason
    return loaded


_MEASURED: dict[tuple[str, str], float] = {}  # (case, quantity) -> largest relative error seen in this run


@pytest.fixture(scope="session")
def measured():
    """Record ``measured[(case, quantity)] = error`` (the largest one is kept); printed after the run, so CI logs
    show the errors the tolerances are set against."""
    class Max(dict):
        def __setitem__(self, key, value):
            _MEASURED[key] = max(value, _MEASURED.get(key, 0.0))
    return Max()


def pytest_terminal_summary(terminalreporter):
    if not _MEASURED:
        return
    terminalreporter.section("fused vs reference: largest relative error max|a-b|/max|b| measured")
    for (case, quantity), value in sorted(_MEASURED.items()):
        terminalreporter.write_line(f"{case:<28} {quantity:<6} {value:.2e}")
