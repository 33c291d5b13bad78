"""Records: what every verb writes, the one writer and reader, the key builders and the run folder's file names.

Not a paper figure: the layer every number in ``reports/`` passes through. A record is one flat JSON object on
one line of a ``.jsonl`` file. Kinds (the schemas below): ``cost`` (sweep: FLOPs / latency / memory / max
frames, Fig. 1b / 6 / 20, Table 2), ``vbench`` (Tables 1 / 2 quality), ``alignment`` and ``train_loss`` (the
small trainable suite), ``video`` (one line of a ``generate`` manifest), ``selftest`` (the launcher's check),
``humaneval_vote`` (one effective vote of a human preference study, Figs. 8 / 9 / 10b / 12 / 19).

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
from typing import Any, Literal, TypedDict

from evalkit.errors import EvalkitError

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
# schemas (every field a reader relies on; measurements add their own fields to cost records)
# ---------------------------------------------------------------------------------------------------------------
Kind = Literal["cost", "vbench", "alignment", "train_loss", "video", "selftest", "humaneval_vote", "figure_fit"]
KINDS: tuple[str, ...] = ("cost", "vbench", "alignment", "train_loss", "video", "selftest", "humaneval_vote",
                          "figure_fit")   # figure_fit: evalkit.figure.results
Status = Literal["ok", "flagged", "oom", "skipped", "error"]
STATUSES: tuple[str, ...] = ("ok", "flagged", "oom", "skipped", "error")
# statuses that count as done on resume (an error is retried)
FINISHED: tuple[str, ...] = ("ok", "flagged", "oom", "skipped")


class Record(TypedDict, total=False):
    key: str                 # unique within a run folder; the key builders below make them
    kind: Kind
    status: Status           # failures are rows: "oom" / "error" / "skipped" with a message, never absent
    message: str
    created: str             # ISO 8601 UTC, one-second resolution (runs.now_iso)
    run_id: str
    experiment: str


class CostRecord(Record, total=False):
    """``sweep``: one (point, measurement). ``measurement`` in flops | latency | memory | max_frames."""
    measurement: str
    measurement_version: int
    model: str
    flavor: str
    variant: str             # "default", or the ablation name for lingen-<variant>
    resolution: str
    height: int
    width: int
    duration_s: float | None  # None for max_frames
    fps: int
    num_frames: int | None
    latent_frames: int | None
    num_tokens: int | None
    params: int
    batch: int
    model_overrides: dict[str, Any]
    seconds: float           # wall time of the measurement
    # only in a sweep with variations (evalkit.variations, experiments/sensitivity.yaml)
    variation: str           # the expanded variation's name, e.g. "width[d_model=3072,heads=24,ffn_dim=8448]"
    variation_axis: str      # the assumed quantity it varies
    variation_value: str     # its value on that axis ("" for a variation without a grid)
    # only in a sweep with parts (experiments/paper_latency.yaml): which point set, rendered with which others
    part: str                # the part's name; the key starts with "<part>:"
    part_group: str          # parts with one group are rendered together (default: the part's name)
    part_index: int          # its place in the file's priority order
    claim: str               # the paper's claim the part measures
    # only under `sweep --budget-s` (evalkit.sweep.budget): the plan behind the record
    budget_s: float          # the sweep's budget
    predicted_s: float       # the planner's prediction for this (point, measurement)
    skip_reason: str         # "budget" on a `skipped` row the budget did not reach (retried on resume)


class VBenchRecord(Record, total=False):
    """``vbench run``: one (model name, mode, dimension)."""
    model: str
    mode: str                # standard | custom | long
    dimension: str
    score: float
    n_expected: int
    n_evaluated: int


class AlignmentRecord(Record, total=False):
    """``train``: one weights-free alignment metric of one trained model's videos."""
    label: str
    model: str
    metric: str
    value: float
    n_videos: int


class TrainLossRecord(Record, total=False):
    label: str
    model: str
    step: int
    loss: float


class VideoRecord(Record, total=False):
    """One line of a ``generate`` manifest (``videos*.jsonl``): which settings made which file."""
    file: str
    prompt: str
    index: int
    seed: int
    inputs_sha256: str       # hash of every input that changes the frames (generate.core.video_inputs)
    mp4_sha256: str
    mp4_bytes: int
    frames_sha256: str
    checkpoint_sha256: str


class HumanEvalVoteRecord(Record, total=False):
    """``humaneval report``: the effective (latest) vote of one rater on one question of one item."""
    study: str
    rater: str               # pseudonym r1, r2 ... (names stay in the study database)
    item: str                # opaque item id
    prompt: str
    index: int
    x: str                   # the compared arms; x is the reference side whose wins are counted
    y: str
    question: str
    answer: str              # A (the left video as shown) | B (right) | tie
    left: str                # the arms in the order this rater saw them
    right: str
    winner: str              # an arm, or "tie"
    outcome: int             # +1 x won, 0 tie, -1 y won
    shown_at: str | None
    cast_at: str
    client_ms: int | None
    revisions: int           # how often the rater changed this answer


# ---------------------------------------------------------------------------------------------------------------
# key builders
# ---------------------------------------------------------------------------------------------------------------
def cost_key(spec: dict[str, Any], measurement: str, version: int) -> str:
    """``[part:]model/flavor[overrides]{variation}/res=HxW/duration@fps/b<batch>/measurement.v<version>`` (the
    ``{variation}`` part only in a sweep with variations, ``part:`` only in a sweep with parts: two of them may
    share a point)."""
    dur = "max" if spec["duration_s"] is None else f"{spec['duration_s']:g}s"
    over = ",".join(f"{k}={v}" for k, v in sorted((spec.get("model_overrides") or {}).items()))
    var = f"{{{spec['variation']}}}" if spec.get("variation") else ""
    part = f"{spec['part']}:" if spec.get("part") else ""
    return (f"{part}{spec['model']}/{spec['flavor']}{'[' + over + ']' if over else ''}{var}/{spec['resolution']}="
            f"{spec['height']}x{spec['width']}/{dur}@{spec['fps']}fps/b{spec['batch']}/{measurement}.v{version}")


def variant_of(model: str) -> str:
    """The ``variant`` field: registry name minus ``lingen-`` for the ablation variants, ``default`` otherwise."""
    return model[len("lingen-"):] if model.startswith("lingen-") else "default"


def alignment_key(label: str, metric: str) -> str:
    return f"alignment/{label}/{metric}"


def train_loss_key(label: str, step: int) -> str:
    return f"train_loss/{label}/{step}"


def humaneval_vote_key(rater: str, item: str, question: str) -> str:
    return f"humaneval/{rater}/{item}/{question}"


# ---------------------------------------------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------------------------------------------
class RecordsError(EvalkitError):
    """A records file that cannot be read as whole JSON lines."""


class TornLineWarning(UserWarning):
    """A records file ends in a line a killed writer left unfinished."""


def repair_command(path: Path | str) -> str:
    return f"python -m evalkit records repair {path}"


def check_record(record: dict[str, Any]) -> None:
    """The fields every record carries (raises ValueError: a programming error, not a user error)."""
    missing = [f for f in ("key", "kind", "status") if f not in record]
    if missing:
        raise ValueError(f"record without {', '.join(missing)}: {str(record)[:200]}")
    if record["kind"] not in KINDS:
        raise ValueError(f"record kind {record['kind']!r} is not one of {KINDS} (add new kinds to evalkit.records)")
    if record["status"] not in STATUSES:
        raise ValueError(f"record status {record['status']!r} is not one of {STATUSES}")


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
        written = os.write(fd, data)
        if written != len(data):    # a regular file takes the whole buffer unless the disk is full
            raise OSError(errno.ENOSPC, f"{path}: wrote {written} of {len(data)} bytes of a record")
        os.fsync(fd)
    finally:
        os.close(fd)   # closing releases the flock


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
