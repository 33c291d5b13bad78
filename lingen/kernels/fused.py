"""The fused Mamba2 SSD of mamba-ssm (``mamba_chunk_scan_combined``, its ``ops/triton/ssd_combined.py``; Dao & Gu
2024, Sec. 6): loading it, where it can run, and, when it cannot, one sentence saying why.

Loading. mamba-ssm 2.3.2.post1's package ``__init__`` imports ``selective_scan_cuda`` (the Mamba-1 CUDA
extension) unguarded, so ``import mamba_ssm.ops.triton.ssd_combined`` fails wherever mamba-ssm was installed
without its CUDA build (``MAMBA_SKIP_CUDA_BUILD=TRUE``, the only way to install it where nothing can be compiled),
although the Triton SSD needs only triton and torch. When, and only when, the normal import fails on that missing
extension, the package is registered without running its ``__init__``, the Triton SSD modules are imported from
it, and the hollow package entry is removed again (``import mamba_ssm`` elsewhere behaves as before).

Where it runs. Triton compiles mamba-ssm's kernels when their modules are imported, either for a GPU or, with
``TRITON_INTERPRET=1`` set before that, for Triton's CPU interpreter (numpy; ~1e4x slower). The rule here is
explicit: GPU-compiled kernels run on CUDA tensors, interpreted kernels on CPU tensors, nothing else. The
interpreter is a correctness tool (the ``triton`` test group checks the real kernels on CPU with it); ``auto``
never picks it, only an explicit ``kernels='fused'`` does. On a CPU-only torch, mamba-ssm 2.3.2.post1 also calls
``torch.cuda.device(t.device.index)`` around each launch and ``torch.cuda.get_device_properties`` in the
backward; tests/fixtures/triton_fixtures.py patches both for CPU tensors (test code only).
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

PACKAGE = "mamba_ssm"
MODULE = "mamba_ssm.ops.triton.ssd_combined"
MISSING_EXTENSION = "selective_scan_cuda"  # imported unguarded by mamba_ssm/__init__.py (2.3.2.post1)
INSTALL = ("MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE pip install --no-deps --no-build-isolation "
           "mamba-ssm==2.3.2.post1 && pip install triton einops (or the `gpu` extra where CUDA can be compiled)")


@dataclass(frozen=True, kw_only=True)
class FusedSSD:
    """The loaded kernel (``fn`` is None when it did not load, ``error`` says why)."""

    fn: Callable | None
    error: str = ""
    version: str = ""
    interpreted: bool = False  # kernels compiled for Triton's CPU interpreter
    package_init_skipped: bool = False  # loaded without running mamba_ssm/__init__.py


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mamba-ssm")
    except PackageNotFoundError:
        return "unknown"


def _import_skipping_package_init():
    """Import MODULE with ``mamba_ssm`` registered as a bare package (its ``__init__`` not executed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not an installed package")
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)  # __path__ set, body not run
    try:
        return importlib.import_module(MODULE)
    finally:
        del sys.modules[PACKAGE]  # the submodules stay imported; the hollow package does not linger


def _interpreted(module) -> bool:
    """Whether the module's kernels were compiled for Triton's interpreter (looked up on a kernel it defines)."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    obj = getattr(module, "_chunk_scan_chunk_state_bwd_dx_kernel", None)
    for _ in range(4):  # Autotuner / Heuristics wrappers -> JITFunction or InterpretedFunction
        if isinstance(obj, InterpretedFunction):
            return True
        if isinstance(obj, JITFunction):
            return False
        obj = getattr(obj, "fn", None)
    raise RuntimeError(f"{MODULE}: cannot tell whether its kernels were compiled for a GPU or for Triton's "
                       "interpreter (a mamba-ssm release renamed `_chunk_scan_chunk_state_bwd_dx_kernel`); "
                       "update lingen/kernels/fused.py")


def _triton_library_interpreted() -> bool:
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(standard.cumsum, InterpretedFunction)


@functools.cache
def load() -> FusedSSD:
    """Import the fused SSD once per process (see the module docstring for the ``selective_scan_cuda`` case)."""
    skipped = False
    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != MISSING_EXTENSION:
            return FusedSSD(fn=None, error=f"mamba-ssm's Triton SSD is not importable ({exc}); install: {INSTALL}")
        try:
            module = _import_skipping_package_init()
            skipped = True
        except Exception as exc2:  # noqa: BLE001 - the reason is the result
            return FusedSSD(fn=None, error=f"mamba-ssm's Triton SSD is not importable without {MISSING_EXTENSION} "
                                           f"({type(exc2).__name__}: {exc2}); install: {INSTALL}")
    except Exception as exc:  # noqa: BLE001 - e.g. a triton that does not match
        return FusedSSD(fn=None, error=f"mamba-ssm's Triton SSD failed to import ({type(exc).__name__}: {exc}); "
                                       f"install: {INSTALL}")
    return FusedSSD(fn=module.mamba_chunk_scan_combined, version=_version(), interpreted=_interpreted(module),
                    package_init_skipped=skipped)


def interpreter_requested() -> bool:
    """TRITON_INTERPRET is set to a true value (Triton's own spelling: 1 / true / on / yes)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def unavailable_reason(device_type: str) -> str | None:
    """None when the fused SSD can run on tensors of ``device_type`` ('cuda', 'cpu', 'meta'), else why not.

    On CPU without TRITON_INTERPRET nothing is imported (so a CPU process never compiles GPU kernels by asking).
    """
    if device_type not in ("cuda", "cpu"):
        return f"the fused SSD runs on CUDA (or on CPU under Triton's interpreter), not on '{device_type}' tensors"
    if device_type == "cpu" and not interpreter_requested() and MODULE not in sys.modules:
        return ("CPU tensors: mamba-ssm's Triton kernels run on CUDA, or on CPU only under Triton's interpreter "
                "(TRITON_INTERPRET=1 before mamba-ssm is imported, and kernels='fused')")
    if device_type == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "CUDA is not available to torch"
    fused = load()
    if fused.fn is None:
        return fused.error
    if device_type == "cpu" and not fused.interpreted:
        return ("CPU tensors: mamba-ssm's kernels were compiled for a GPU in this process (TRITON_INTERPRET was "
                "not set when mamba-ssm was imported)")
    if device_type == "cpu" and not _triton_library_interpreted():
        return ("CPU tensors: TRITON_INTERPRET=1 was set after triton itself was imported, so triton's own "
                "library (tl.cumsum, ...) was compiled for a GPU; set it before anything imports triton "
                "(torch.utils.flop_counter does, when triton is installed)")
    if device_type == "cuda" and fused.interpreted:
        return ("mamba-ssm's kernels were compiled for Triton's CPU interpreter in this process "
                "(TRITON_INTERPRET=1): unset it to run them on the GPU")
    return None
