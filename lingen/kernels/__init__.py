"""Scan kernels of the MA-branch: the Mamba2 SSD scan and the Mamba-1 selective scan.

Each has a plain-PyTorch reference that is linear in sequence length (CPU and meta), exposed as a
``torch.library.custom_op`` (``lingen::ssd_scan``, ``lingen::selective_scan``) with a fake kernel and a FLOP
formula so ``FlopCounterMode`` on the meta device counts it. The switch ``auto | ref | fused`` picks mamba-ssm's
fused Triton SSD (``lingen.kernels.fused``) on CUDA wherever it can run and says why when it cannot.
"""
from __future__ import annotations

from lingen.kernels.ops import (fused_unavailable_reason, resolve_backend, select_backend, selective_scan,
                                ssd_scan)

__all__ = ["fused_unavailable_reason", "resolve_backend", "select_backend", "selective_scan", "ssd_scan"]
