"""The project's one rule for content hashes: sha256 of a file's bytes, and of canonical JSON.

Not a paper figure: what "the same input" means wherever work is resumed by content (``generate`` keys each video
by the hash of its inputs and checks the mp4's; ``vbench`` keys each score by its videos' and evaluator files';
sweep and train runs resume by the hash of their config; checkpoints are identified by their weights file).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def json_sha256(obj: Any) -> str:
    """Hex sha256 of ``obj`` as canonical JSON (keys sorted; values JSON cannot hold written with ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
