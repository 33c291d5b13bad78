"""``python -m evalkit report``: tables and figures from records and the paper's numbers (pure functions of data)."""
from __future__ import annotations
