"""Scan kernels of the MA-branch: the Mamba2 SSD scan and the Mamba-1 selective scan.

Each has a plain-PyTorch reference that is linear in sequence length (CPU and meta), exposed as a
``torch.library.custom_op`` (``lingen::ssd_scan``, ``lingen::selective_scan``) with a fake kernel and a FLOP
formula so ``FlopCounterMode`` on the meta device counts it; on CUDA the fused mamba-ssm Triton kernel is used
when importable (switch ``auto | ref | fused``).
"""
from __future__ import annotations

from lingen.kernels.ops import resolve_backend, selective_scan, ssd_scan

__all__ = ["resolve_backend", "selective_scan", "ssd_scan"]
