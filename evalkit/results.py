"""Run folders and records: ``runs/<experiment>/<run_id>/{manifest.json, results*.jsonl}``.

One flat JSON object per line. Writers append under a file lock and flush each record as it finishes, so an
interrupted run loses nothing and a re-run can skip what is done. Several jobs of one run may each write their
own ``results.<job>.jsonl``; readers merge every ``results*.jsonl`` of a run folder and drop exact duplicates
(same ``key`` field), so a merged set has no lost or duplicated record.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_sha(root: Path = REPO_ROOT) -> str:
    """The commit of the working tree, with ``-dirty`` when it has uncommitted changes; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of the packages that change numbers (imported lazily; absent ones are 'absent')."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "numpy", "mamba-ssm", "flash-attn", "fvcore", "matplotlib", "av", "submitit"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def hardware() -> dict[str, Any]:
    """CPU/GPU description of this machine; imports torch only if it is already imported."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count(), "hostname": platform.node()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_bytes=props.total_memory, cuda=torch.version.cuda)
    else:
        info.update(gpu=None, gpu_count=0)
    return info


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(prefix: str = "") -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{os.getpid()}"


def new_run_dir(root: Path | str, prefix: str = "") -> Path:
    """Create and return a fresh ``root/<run_id>`` folder. Run ids have one-second resolution, so a second run
    started by the same process within that second gets a ``-2``, ``-3`` suffix; the folder is claimed with an
    exclusive mkdir, so no two runs ever share it."""
    base = Path(root) / new_run_id(prefix)
    base.parent.mkdir(parents=True, exist_ok=True)
    run_dir, n = base, 1
    while True:
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")


def write_manifest(run_dir: Path, **fields: Any) -> Path:
    """Write ``manifest.json`` (git sha, versions, hardware, plus ``fields``); never overwrites an existing one
    with different config: an existing manifest is kept and a ``manifest.<n>.json`` is added for the new job."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"created": now_iso(), "git_sha": git_sha(), "versions": versions(), "hardware": hardware(), **fields}
    # written to a private temp file, then claimed with os.link (fails if the name exists): concurrent jobs
    # (torchrun ranks, array tasks) each get their own manifest, none overwritten, no shared temp file
    tmp = run_dir / f".manifest.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    try:
        n = 0
        while True:
            path = run_dir / ("manifest.json" if n == 0 else f"manifest.{n}.json")
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                n += 1
    finally:
        tmp.unlink(missing_ok=True)


def read_manifests(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(run_dir).glob("manifest*.json"))]


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line under a file lock and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str)
    with FileLock(str(path) + ".lock"):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of one file; a torn last line (a killed writer) is ignored, any other bad line is an error."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                continue
            raise ValueError(f"{path}:{i + 1}: not a JSON record: {exc}") from exc


def read_records(run_dirs: Iterable[Path | str], pattern: str = "results*.jsonl",
                 extra: Callable[[Path], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """All records of the given run folders (each merged over its job files), in a stable order.

    Records with a ``key`` field are de-duplicated on (run folder, key): the one written last wins, by its
    ``created`` time (files are read in name order, so file order alone would let an old ``error`` row in
    ``results.jsonl`` hide a newer ``ok`` row of ``results.<job>.jsonl``); within one second a finished record
    beats an ``error`` one, then the later line wins.
    ``extra(path)`` gives fields added to every record of that file (e.g. the provenance of the job that wrote it).
    """
    out: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        seen: dict[str, int] = {}
        for path in sorted(run_dir.glob(pattern)):
            fields = extra(path) if extra else {}
            for rec in iter_jsonl(path):
                rec = {**rec, **fields} if fields else rec
                key = rec.get("key")
                if key is None:
                    out.append(rec)
                elif key in seen:
                    if _write_rank(rec) >= _write_rank(out[seen[key]]):
                        out[seen[key]] = rec
                else:
                    seen[key] = len(out)
                    out.append(rec)
    return out


def _write_rank(rec: dict[str, Any]) -> tuple[str, bool]:
    """Order of two records of one key: creation time (ISO, one-second resolution), then finished over error."""
    return str(rec.get("created") or ""), rec.get("status") != "error"


def done_keys(run_dir: Path, statuses: tuple[str, ...] = ("ok", "oom", "skipped")) -> set[str]:
    """Keys of records already finished in ``run_dir`` (errors are retried on resume)."""
    if not Path(run_dir).exists():
        return set()
    return {r["key"] for r in read_records([run_dir]) if "key" in r and r.get("status") in statuses}
