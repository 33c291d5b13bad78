"""Records: the one writer and reader of what every verb writes, and the run folder's file names.

Not a paper figure: the layer every number in ``reports/`` passes through. A record is one flat JSON object on
one line of a ``.jsonl`` file; what each kind holds, its builder and its check are ``evalkit.core.schema``
(every append is checked against it).

Guarantees, in the order a crash would test them:

* **Whole lines.** :func:`append` writes one record with a single ``write`` on an ``O_APPEND`` descriptor under
  an exclusive ``flock`` of that file, then ``fsync``: concurrent writers (torchrun ranks, array jobs, a resumed
  run) never interleave, and a record is either on disk whole or not there.
* **Torn lines are repaired, never glued.** A writer killed mid-``write`` (or a full disk) can leave a last line
  without its newline. The next :func:`append` to that file moves the torn bytes to ``<file>.torn`` (kept, not
  deleted), truncates the file to its last whole line and warns, naming the file and line; only then does it
  write. A reader meeting a torn last line warns the same way and skips it (``strict=True``: refuses, naming the
  command that repairs it, which is what ``report`` and ``report --publish`` do); any other line that is not a
  JSON object is an error naming file and line.
* **Last write wins, by time.** :func:`read_records` merges every ``results*.jsonl`` of a run folder (one per job
  or rank) and keeps one record per ``key``: the latest ``created`` time; within the same second a finished
  record beats an ``error`` one, then the later line. A retried point therefore replaces its error row, and an
  old error row of one job file never hides a newer ``ok`` of another.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from evalkit.core.errors import EvalkitError
from evalkit.core.schema import FINISHED, check_record

__all__ = ["FINISHED", "RESULTS_GLOB", "VIDEOS_GLOB", "RecordsError", "append", "atomic_write_text", "done_keys",
           "iter_file", "read_records", "repair", "results_file", "stale_tmp_files", "videos_file"]

# ---------------------------------------------------------------------------------------------------------------
# file names of a run folder
# ---------------------------------------------------------------------------------------------------------------
RESULTS_GLOB = "results*.jsonl"
VIDEOS_GLOB = "videos*.jsonl"
TORN_SUFFIX = ".torn"


def results_file(run_dir: Path | str, job_tag: str | None = None) -> Path:
    """Where records of a run go: ``results.jsonl``, or ``results.<job_tag>.jsonl`` for one job of several."""
    return Path(run_dir) / (f"results.{job_tag}.jsonl" if job_tag else "results.jsonl")


def videos_file(out_dir: Path | str, rank: int = 0, world_size: int = 1) -> Path:
    """The ``generate`` manifest of one shard: ``videos.jsonl`` (one process) or ``videos.<rank>.jsonl``."""
    return Path(out_dir) / ("videos.jsonl" if world_size == 1 else f"videos.{rank}.jsonl")


# ---------------------------------------------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------------------------------------------
class RecordsError(EvalkitError):
    """A records file that cannot be read as whole JSON lines."""


class TornLineWarning(UserWarning):
    """A records file ends in a line a killed writer left unfinished."""


def repair_command(path: Path | str) -> str:
    return f"python -m evalkit records repair {path}"


def _last_newline(fd: int, size: int) -> int:
    """Offset just past the last ``\\n`` in the file (0 when there is none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        block = os.pread(fd, pos - start, start)
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def _repair_tail(fd: int, path: Path) -> None:
    """Under the writer's lock: if the file does not end with a newline, finish or move aside its last line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    cut = _last_newline(fd, size)
    tail = os.pread(fd, size - cut, cut)
    line_no = os.pread(fd, cut, 0).count(b"\n") + 1 if cut else 1
    try:
        if isinstance(json.loads(tail), dict):      # a whole record that only lacks its newline
            os.write(fd, b"\n")
            return
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    sidecar = path.with_name(path.name + TORN_SUFFIX)
    with open(sidecar, "ab") as fh:
        fh.write(tail + b"\n")
    os.ftruncate(fd, cut)
    warnings.warn(f"{path}:{line_no}: torn last line ({len(tail)} bytes, a writer was killed mid-write) moved to "
                  f"{sidecar}; its record will be recomputed", TornLineWarning, stacklevel=3)


def append(path: Path | str, record: dict[str, Any]) -> None:
    """Append one record as one whole line (see the module docstring), creating the file and its folder."""
    check_record(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_tail(fd, path)
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):    # a regular file takes the whole buffer unless the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)  # no partial record left behind (the next append would move it aside)
            except OSError:
                pass
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
            raise
    finally:
        os.close(fd)   # closing releases the flock


TMP_SUFFIX = ".tmp"


def atomic_write_text(path: Path | str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: written to ``<name>.<pid>.<rand>.tmp`` beside it, fsynced, then
    renamed over it. On any failure (a full or read-only disk) the temporary file is removed and the old ``path``
    is left as it was; the error propagates."""
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}{TMP_SUFFIX}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):   # name the file, not its temporary
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_tmp_files(folder: Path | str, *, remove: bool = True) -> list[Path]:
    """The temporary files of :func:`atomic_write_text` under ``folder`` (not recursive) whose writer (the pid
    in the name) is no longer alive: left by a writer killed between write and rename. Removed with
    ``remove``; never read (the file they were to replace is intact)."""
    out = []
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for p in folder.glob(f"*{TMP_SUFFIX}"):
        parts = p.name[:-len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            out.append(p)
            if remove:
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass
    return out


# ---------------------------------------------------------------------------------------------------------------
# reader
# ---------------------------------------------------------------------------------------------------------------
def iter_file(path: Path | str, *, strict: bool = False) -> Iterator[dict[str, Any]]:
    """The records of one file, in order. A torn last line warns and is skipped (``strict``: RecordsError);
    any other line that is not a JSON object is a RecordsError naming file and line."""
    path = Path(path)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    torn_possible = not raw.endswith(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            last = i == len(lines) - 1 and torn_possible
            if last and not strict:
                warnings.warn(f"{path}:{i + 1}: torn last line (a writer was killed mid-write) ignored; the next "
                              f"append to this file moves it to {path.name}{TORN_SUFFIX}, or run "
                              f"`{repair_command(path)}`", TornLineWarning, stacklevel=2)
                continue
            what = "torn last line (a writer was killed mid-write)" if last else f"not a JSON record ({exc})"
            raise RecordsError(f"{path}:{i + 1}: {what}; `{repair_command(path)}` moves it to "
                               f"{path.name}{TORN_SUFFIX} (resume the run to recompute it)") from None
        yield rec


def read_records(run_dirs: Iterable[Path | str], pattern: str = RESULTS_GLOB, *,
                 extra: Callable[[Path], dict[str, Any]] | None = None, strict: bool = False) -> list[dict[str, Any]]:
    """All records of the given run folders (each merged over its job files), in a stable order, one per key
    (see the module docstring for which one). ``extra(path)`` gives fields added to every record of that file
    (e.g. the provenance of the job that wrote it)."""
    out: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        seen: dict[str, int] = {}
        for path in sorted(Path(run_dir).glob(pattern)):
            fields = extra(path) if extra else {}
            for rec in iter_file(path, strict=strict):
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


def done_keys(run_dir: Path | str, statuses: tuple[str, ...] = FINISHED) -> set[str]:
    """Keys of records already finished in ``run_dir`` (errors are retried on resume)."""
    if not Path(run_dir).exists():
        return set()
    return {r["key"] for r in read_records([run_dir]) if "key" in r and r.get("status") in statuses}


def repair(path: Path | str) -> int:
    """Move every line of ``path`` that is not a JSON object to ``<path>.torn`` and rewrite the file with the
    rest (atomically, under the writers' lock). Returns the number of lines moved."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = path.read_bytes()
        good, bad = [], []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                ok = isinstance(json.loads(line), dict)
            except (ValueError, UnicodeDecodeError):
                ok = False
            (good if ok else bad).append(line)
        if bad:
            with open(path.with_name(path.name + TORN_SUFFIX), "ab") as fh:
                fh.write(b"".join(b + b"\n" for b in bad))
            tmp = path.with_name(f".{path.name}.{os.getpid()}.repair")
            tmp.write_bytes(b"".join(g + b"\n" for g in good))
            os.replace(tmp, path)
        return len(bad)
    finally:
        os.close(fd)


def records_main(argv: list[str]) -> int:
    """``python -m evalkit records check|repair FILE_OR_RUN_DIR...``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="python -m evalkit records", description="Check or repair records files (results*.jsonl, "
        "videos*.jsonl). `repair` moves lines that are not whole JSON records (a writer killed mid-write) to "
        "<file>.torn; resuming the run recomputes them.", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m evalkit records check runs/scaling/*/\n"
               "  python -m evalkit records repair runs/scaling/20261201-101500-4242/results.jsonl\n")
    p.add_argument("cmd", choices=("check", "repair"))
    p.add_argument("paths", nargs="+", type=Path, help="records files, or run folders (every *.jsonl in them)")
    args = p.parse_args(argv)
    files = []
    for path in args.paths:
        if path.is_dir():
            files += sorted(path.glob("*.jsonl"))
        elif path.is_file():
            files.append(path)
        else:
            raise EvalkitError(f"paths: {path} is neither a file nor a folder")
    bad = 0
    for f in files:
        if args.cmd == "repair":
            n = repair(f)
            print(f"{f}: {n} line(s) moved to {f.name}{TORN_SUFFIX}" if n else f"{f}: ok")
        else:
            try:
                n = sum(1 for _ in iter_file(f, strict=True))
                print(f"{f}: {n} record(s), ok")
            except RecordsError as exc:
                bad += 1
                print(f"{exc}", file=sys.stderr)
    return 1 if bad else 0
