"""What a VBench score depends on, as content: file hashes and the digests that key resume.

A (dimension, video set) record is done only while its inputs are unchanged: the size and sha256 of every video it
scored, the sha256 of every evaluator weight file, and the settings that change a score (mode, prompts, clip
lengths, full-info file, ...). :func:`digest` turns such a description into one sha256; the runner stores it in the
record (``inputs_sha256``) and in each shard folder's name, so a changed video or weight file is scored again and a
stale result is never reused. Video files are hashed on every run; weight files (gigabytes, rarely changed) are
hashed once per (real path, size, mtime, inode) and the hash is kept in ``<user cache>/hashes/``.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from evalkit.core.hashing import file_sha256


def _hash_cache_dir() -> Path:
    from evalkit.vbench.env import user_cache_dir

    return user_cache_dir() / "hashes"


def sha256_cached(path: Path | str) -> str:
    """sha256 of a large, rarely changed file, remembered per (real path, size, mtime_ns, inode)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    stamp = {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    entry = _hash_cache_dir() / (hashlib.sha1(real.encode()).hexdigest() + ".json")
    try:
        old = json.loads(entry.read_text())
        if {k: old.get(k) for k in stamp} == stamp and len(old.get("sha256", "")) == 64:
            return old["sha256"]
    except (OSError, json.JSONDecodeError):
        pass
    value = file_sha256(real)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**stamp, "sha256": value}))
        os.replace(tmp, entry)
    except OSError:  # a read-only cache only costs re-hashing next time
        pass
    return value


def file_entry(path: Path | str, cached: bool = False) -> dict[str, Any]:
    """``{"size", "sha256"}`` of one file (``cached``: through :func:`sha256_cached`)."""
    return {"size": os.path.getsize(path), "sha256": sha256_cached(path) if cached else file_sha256(path)}


def tree_entry(folder: Path | str, pattern: str = "*.py") -> dict[str, Any]:
    """Content of a code folder (a torch.hub repository): digest over its ``pattern`` files, names included."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob(pattern) if p.is_file())
    return {"files": len(files), "sha256": digest({str(p.relative_to(folder)): file_sha256(p) for p in files})}


def digest(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys, no whitespace; paths as strings). Not
    ``core.hashing.json_sha256`` (which keeps json.dumps' default separators): this digest names the shard folders
    and keys the records of existing runs, and a different one would score every finished run again."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def videos_entry(files: Mapping[str, Path | str], shas: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Per video file name: size and sha256 (``shas``: already computed, by file name); plus their digest."""
    per = {name: ({"size": os.path.getsize(p), "sha256": shas[name]} if shas and name in shas else file_entry(p))
           for name, p in sorted(files.items())}
    return {"n": len(per), "sha256": digest(per), "files": per}


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any], parts: Iterable[str]) -> list[str]:
    """Names of the parts whose digest differs between two ``inputs`` descriptions (for the resume message)."""
    if not old:
        return ["no earlier inputs recorded"]
    return [p for p in parts if digest(old.get(p)) != digest(new.get(p))]
