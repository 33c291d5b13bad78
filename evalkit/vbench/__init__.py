"""VBench, VBench-Long and custom-prompt evaluation through the real ``vbench`` package (see README).

``evalkit.vbench.aggregate(scores, partial=False)`` is VBench's Quality / Semantic / Total from per-dimension scores.
"""
from __future__ import annotations

from evalkit.vbench.aggregate import aggregate

__all__ = ["aggregate"]
