"""evalkit: the measurement harness for LinGen-style video denoisers.

Verbs (``python -m evalkit <verb>``): ls, validate, sweep, report, vbench, generate, train.
This package never imports torch at import time; model code is reached through the registry.
"""
from __future__ import annotations

__version__ = "0.1.0"
