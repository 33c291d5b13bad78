"""Before a run: every evaluator weight file hashed and checked against the network VBench builds.

A wrong weight file can load silently: human_action loads UMT with ``strict=False`` and scene loads Tag2Text the
same way, so a file with other keys scores with random parameters and no error. Before any video is scored, for
each requested dimension evalkit

1. records each file VBench will read (path, size, sha256; for a code folder such as DINO's hub repository, a digest
   of its ``.py`` files) and, where the released file's sha256 is known (the CLIP models), whether it matches;
2. asks the worker (``_worker_weights.py``, inside the VBench environment) to build the evaluator with VBench's own
   code and compare, at every ``load_state_dict`` call, the module's keys and shapes with the file's: a key the
   architecture has and the file lacks, or a shape mismatch, is an error naming the file; keys the file has and
   the module ignores are listed.

A file whose released checksum is known and differs (random-weight test fixtures, a re-saved or fine-tuned model)
is refused unless ``allow_unofficial`` (``--allow-unofficial-weights``); the records then say
``weights_official: false``. Both the hashes and the check go into every record. The check result is remembered in
``<user cache>/weight-checks/`` per (dimension, file hashes, worker command), so a large evaluator is built once
per weight file, not once per run.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalkit.core.errors import EvalkitError
from evalkit.vbench import weights as W
from evalkit.vbench.inputs import digest, file_entry, tree_entry
from evalkit.vbench.worker_proc import run_worker

CHECK_VERSION = 1  # bump when the worker's check changes (invalidates the remembered results)


def needed(dim: str, slow_fast: bool = False) -> list[tuple[str, W.Weight]]:
    """(role, weight) of what ``dim`` reads: role "evaluator" or "slow-fast" (long --slow-fast)."""
    out = [("evaluator", w) for w in W.WEIGHTS[dim]]
    return out + ([("slow-fast", w) for w in W.SLOW_FAST_WEIGHTS.get(dim, ())] if slow_fast else [])


def file_records(dim: str, cache_dir: Path, slow_fast: bool = False) -> list[dict]:
    """What VBench reads for ``dim``: one entry per file or code folder, with size and sha256."""
    out = []
    for role, w in needed(dim, slow_fast):
        for path in W.resolve(w, cache_dir):
            if path.is_dir():
                entry = {"kind": "code" if w.kind == "git" else "folder",
                         **tree_entry(path, "*.py" if w.kind == "git" else "*")}
            else:
                entry = {"kind": "file", **file_entry(path, cached=True)}
            official = W.matches(w, entry["sha256"]) if entry.get("kind") == "file" or w.kind != "git" else None
            name = w.rel if w.kind != "hf" else f"{w.rel}/{path.name}"
            out.append({"file": name, "role": role, "path": str(path), **entry,
                        "official_sha256": w.official_sha256, "published_sha256": W.published(w),
                        "official": official})
    return out


UNOFFICIAL = "UNOFFICIAL WEIGHTS"


def label(official: bool | None) -> str:
    """What records and tables say about a score's evaluator files."""
    return {True: "official weights", False: UNOFFICIAL}.get(official, "unverified weights (no published sha256)")


def _differs(check: dict) -> list[str]:
    """The weight check's "differs from release" findings (a CLIP file whose network has another size)."""
    return [f"{name}: differs from release: " + ", ".join(f"{k} {a} (release {b})" for k, (a, b) in
                                                           got["differs_from_release"].items())
            for name, got in (check.get("inferred") or {}).items() if got.get("differs_from_release")]


def _cache_dir() -> Path:
    from evalkit.vbench.env import user_cache_dir

    return user_cache_dir() / "weight-checks"


def _key(dim: str, files: list[dict], worker: list[str]) -> str:
    return digest({"dim": dim, "files": [(f["file"], f["sha256"]) for f in files], "v": CHECK_VERSION,
                   "worker": worker})


def _run_check(dims: list[str], cache_dir: Path, worker: list[str], work: Path) -> dict[str, dict]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    spec = work / "spec.json"
    spec.write_text(json.dumps({"action": "check_weights", "dimensions": dims, "cache_dir": str(cache_dir),
                                "output_dir": str(work)}, indent=1))
    print(f"checking the evaluator weights of {', '.join(dims)} against the networks VBench builds", flush=True)
    proc = run_worker(worker + [str(spec)])
    (work / "worker.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    out = work / "check.json"
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise EvalkitError(f"the weight check failed to run (exit {proc.returncode}); log {work / 'worker.log'}:\n"
                           f"{tail}")
    return json.loads(out.read_text())


def verify(dims: Iterable[str], cache_dir: Path, worker: list[str], work: Path, *, allow_unofficial: bool = False,
           slow_fast: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Per dimension: ``{"weights": [...files], "weights_check": {...}, "weights_official": bool | None}``;
    raises :class:`EvalkitError` (naming dimension, file and problem) before any scoring when a file does not fit
    the architecture, or is not the released file and ``allow_unofficial`` is off."""
    sf = set(slow_fast)
    files = {d: file_records(d, cache_dir, d in sf) for d in dims}
    checks: dict[str, dict] = {}
    todo = []
    for d, fs in files.items():
        if not W.WEIGHTS[d]:
            checks[d] = {"ok": True, "architecture": "none (pixel statistics)", "loads": [], "problems": []}
            continue
        hit = _cache_dir() / f"{_key(d, fs, worker)}.json"
        try:
            checks[d] = {**json.loads(hit.read_text()), "remembered": True}
        except (OSError, json.JSONDecodeError):
            todo.append(d)
    if todo:
        got = _run_check(todo, cache_dir, worker, work)
        for d in todo:
            if d not in got:
                raise EvalkitError(f"the weight check returned no result for {d} (log {work / 'worker.log'})")
            checks[d] = got[d]
            if got[d].get("ok"):
                try:
                    hit = _cache_dir() / f"{_key(d, files[d], worker)}.json"
                    hit.parent.mkdir(parents=True, exist_ok=True)
                    tmp = hit.with_name(f"{hit.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(got[d]))
                    os.replace(tmp, hit)
                except OSError:
                    pass
    bad = {d: c["problems"] for d, c in checks.items() if not c.get("ok")}
    if bad:
        lines = ["evaluator weights that do not fit the network VBench builds (nothing was scored):"]
        for d, problems in bad.items():
            lines.append(f"  {d}: {', '.join(f['path'] for f in files[d] if f['kind'] == 'file')}")
            lines += [f"    {p}" for p in problems]
        lines.append(f"Replace the files (python -m evalkit vbench prefetch --dimensions {' '.join(bad)}); the "
                     f"worker log is {work / 'worker.log'}")
        raise EvalkitError("\n".join(lines))
    unofficial = [(d, f) for d, fs in files.items() for f in fs if f["official"] is False]
    resized = {d: _differs(checks[d]) for d in files if _differs(checks[d])}
    if (unofficial or resized) and not allow_unofficial:
        lines = ["evaluator files that are not the released ones (their sha256 differs from the published one, or "
                 "the network built from them has another size than the released model):"]
        lines += [f"  {d}: {f['path']}: sha256 {f['sha256']}, released {f['published_sha256']}" for d, f in unofficial]
        lines += [f"  {d}: {why}" for d, whys in resized.items() for why in whys]
        lines.append("Fetch the released files (python -m evalkit vbench prefetch), or pass "
                     "--allow-unofficial-weights to score with these anyway (records then say weights_official: "
                     "false; such scores are not comparable with published VBench numbers).")
        raise EvalkitError("\n".join(lines))
    out = {}
    for d, fs in files.items():
        flags = [f["official"] for f in fs]
        # a dimension that reads no evaluator file (temporal_flickering) has nothing unofficial: official, vacuously
        official = False if False in flags or d in resized else (True if all(flags) else None)
        c = checks[d]
        out[d] = {"weights": fs, "weights_official": official,
                  "weights_label": label(official) if fs else "no evaluator weights",
                  "weights_unverified": [f["file"] for f in fs if f["official"] is None],
                  "weights_differs_from_release": resized.get(d, []),
                  "weights_check": {"ok": True, "architecture": c.get("architecture"), "inferred": c.get("inferred", {}),
                                    "loads": c.get("loads", []), "remembered": bool(c.get("remembered"))}}
    return out
