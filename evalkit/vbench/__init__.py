"""VBench, VBench-Long and custom-prompt evaluation through the real ``vbench`` package (see README)."""
from __future__ import annotations
