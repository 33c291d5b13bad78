"""Jobs: groups of keyed work items, the body every launcher runs, and each job's provenance file.

An *item* has a unique ``key``: a JSON-able dict with a ``"key"`` (a generation shard, a VBench unit), or a typed
object with a ``key`` attribute and ``to_json()`` (a sweep :class:`~evalkit.measure.point.Point`), handed as it
is to an in-process job and as its JSON to a subprocess or SLURM job. The work is a plain importable function
named ``"module:function"`` with the signature
``fn(item, run_dir: Path, job_tag: str | None) -> list[dict] | None`` that writes its own records
(``records.results_file(run_dir, job_tag)``). Items are grouped into jobs (``launch.items_per_job``); a job keeps
its provenance in ``jobs/<tag>.json``: launcher, SLURM/submitit job id, array index, hostname, pid, start/end of
every attempt, and the status of every item (``running`` -> ``done`` | ``error``), written atomically after each
item, so a killed, preempted or timed-out job loses at most the item it was running.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core.errors import FieldError
from evalkit.launch.config import LaunchConfig
from evalkit.core.records import RESULTS_GLOB, atomic_write_text, read_records, results_file, stale_tmp_files
from evalkit.core.hashing import json_sha256
from evalkit.core.runs import new_run_id, now_iso


def item_key(item: Any) -> Any:
    """An item's key: ``item["key"]`` of a dict, ``item.key`` of a typed item."""
    return item.get("key") if isinstance(item, dict) else getattr(item, "key", None)


def item_json(item: Any) -> dict[str, Any]:
    """An item as the JSON a job in another process receives."""
    return item if isinstance(item, dict) else item.to_json()


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One job: the items it runs, the function, where its records and provenance go."""

    tag: str
    fn: str
    run_dir: str
    items: tuple[Any, ...]
    launcher: str = "inline"
    # records file tag: None = the run's results.jsonl (one writer machine), else results.<tag>.jsonl
    results_tag: str | None = None

    @property
    def keys(self) -> list[str]:
        return [item_key(it) for it in self.items]

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "fn": self.fn, "run_dir": self.run_dir, "items": [item_json(it) for it in self.items],
                "launcher": self.launcher, "results_tag": self.results_tag}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls(tag=data["tag"], fn=data["fn"], run_dir=data["run_dir"], items=tuple(data["items"]),
                   launcher=data.get("launcher", "inline"), results_tag=data.get("results_tag"))


def job_file(run_dir: Path | str, job_tag: str) -> Path:
    return Path(run_dir) / "jobs" / f"{job_tag}.json"


def resolve_fn(target: str) -> Callable[..., Any]:
    """Import ``"module:function"``; a malformed or unknown target is a FieldError naming it."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise FieldError("fn", f"expected 'module:function', got {target!r}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise FieldError("fn", f"cannot import {target!r}: {exc}") from exc
    if not callable(fn):
        raise FieldError("fn", f"{target!r} is not callable")
    return fn


def check_items(items: Sequence[Any]) -> None:
    """Every item has a unique non-empty string key and is JSON-serialisable (checked before any job starts)."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = item_key(item)
        if not isinstance(key, str) or not key:
            raise FieldError(f"items[{i}].key", f"every item needs a non-empty string key, got {item!r:.80}")
        if key in seen:
            raise FieldError(f"items[{i}].key", f"duplicate key {key!r}")
        seen.add(key)
        try:
            json.dumps(item_json(item))
        except TypeError as exc:
            raise FieldError(f"items[{i}]", f"must be JSON-serialisable: {exc}") from None


def plan_jobs(items: Sequence[Any], fn: str, cfg: LaunchConfig, run_dir: Path,
              submission: str | None = None, results_tag: str | None = None) -> list[JobSpec]:
    """Group items into jobs of ``cfg.items_per_job``. SLURM jobs (possibly on other machines, on a shared file
    system) write their own ``results.<tag>.jsonl``; inline and process jobs write the run's ``results.jsonl``
    (``results.<results_tag>.jsonl`` when given)."""
    per_job = cfg.items_per_job
    # unique per submission (two submissions in one second from one process must not share job files)
    sub = submission or f"{new_run_id('s')}-{uuid.uuid4().hex[:6]}"
    specs = []
    for i in range(0, len(items), per_job):
        tag = f"{sub}-{i // per_job:04d}"
        specs.append(JobSpec(tag=tag, fn=fn, run_dir=str(run_dir), items=tuple(items[i:i + per_job]),
                             launcher=cfg.launcher, results_tag=tag if cfg.launcher == "submitit" else results_tag))
    return specs


# ---------------------------------------------------------------------------------------------------------------
# provenance files
# ---------------------------------------------------------------------------------------------------------------
def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """``path`` replaced atomically (``records.atomic_write_text``: no temporary file is left on failure)."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def read_job(run_dir: Path | str, job_tag: str) -> dict[str, Any] | None:
    path = job_file(run_dir, job_tag)
    return json.loads(path.read_text()) if path.exists() else None


def read_jobs(run_dir: Path | str) -> dict[str, dict[str, Any]]:
    """Every job provenance file of a run, by tag."""
    folder = Path(run_dir) / "jobs"
    if not folder.is_dir():
        return {}
    stale_tmp_files(folder)          # left by a writer killed between write and rename: never read
    out = {}
    for p in sorted(folder.glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FieldError(str(p), f"not valid JSON ({exc}); it is a job's provenance file: move it aside "
                                     "to resume without it") from None
    return out


def item_sha256(item: Any) -> str:
    """The content hash of an item (``core.hashing.json_sha256`` of its JSON): what a job file says it finished."""
    return json_sha256(item_json(item))


def finished_items(run_dir: Path | str, items: Sequence[Any] | None = None) -> set[str]:
    """Item keys some job of this run finished (status ``done``). With ``items``: only those finished with the
    same content (the job file's ``item_sha256``), so an item whose inputs changed under the same key (a
    command's shard re-run with other flags) is never taken as done."""
    if items is None:
        return {key for job in read_jobs(run_dir).values()
                for key, st in job.get("items", {}).items() if st.get("status") == "done"}
    want = {item_key(it): item_sha256(it) for it in items}
    return {key for job in read_jobs(run_dir).values() for key, st in job.get("items", {}).items()
            if st.get("status") == "done" and key in want and st.get("item_sha256") == want[key]}


def _attempt_env() -> dict[str, Any]:
    """Who runs this attempt: submitit's JobEnvironment inside a submitit job, else SLURM variables, else local."""
    info: dict[str, Any] = {"hostname": platform.node(), "pid": os.getpid(), "start": now_iso()}
    try:
        import submitit

        env = submitit.JobEnvironment()
        # an array task's own SLURM_JOB_ID (raw_job_id) differs from its array's id (SLURM_ARRAY_JOB_ID)
        info.update(job_id=str(env.job_id), array_job_id=str(env.array_job_id or env.raw_job_id),
                    array_index=env.array_task_id if hasattr(env, "array_task_id") else None,
                    cluster=env.cluster)
    except (RuntimeError, ImportError):  # not inside a submitit job
        info.update(job_id=os.environ.get("SLURM_JOB_ID"), array_index=os.environ.get("SLURM_ARRAY_TASK_ID"),
                    cluster="slurm" if "SLURM_JOB_ID" in os.environ else "local")
    if "SLURM_ARRAY_TASK_ID" in os.environ:
        info["array_index"] = int(os.environ["SLURM_ARRAY_TASK_ID"])
    if "SLURM_RESTART_COUNT" in os.environ:
        info["slurm_restart_count"] = int(os.environ["SLURM_RESTART_COUNT"])
    return info


def _new_state(spec: JobSpec) -> dict[str, Any]:
    return {"tag": spec.tag, "fn": spec.fn, "launcher": spec.launcher,
            "results_file": results_file(spec.run_dir, spec.results_tag).name,
            "items": {k: {"status": "pending"} for k in spec.keys}, "attempts": []}


def run_job(spec: JobSpec | dict[str, Any], on_item: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """The body of one job, in whichever process runs it: run every item not yet done, keeping the job file
    up to date. An item that raises is marked ``error`` (with the traceback) and the job goes on.
    ``on_item(key, status)`` is called after each item (the inline launcher's progress)."""
    spec = JobSpec.from_json(spec) if isinstance(spec, dict) else spec
    run_dir = Path(spec.run_dir)
    path = job_file(run_dir, spec.tag)
    state = read_job(run_dir, spec.tag) or _new_state(spec)
    attempt = _attempt_env()
    state["attempts"].append(attempt)
    write_json_atomic(path, state)
    fn = resolve_fn(spec.fn)
    for item in spec.items:
        key = item_key(item)
        st = state["items"].setdefault(key, {"status": "pending"})
        if st.get("status") == "done":  # finished by an earlier attempt (requeue after preemption)
            continue
        st.update(status="running", start=now_iso(), attempt=len(state["attempts"]) - 1,
                  item_sha256=item_sha256(item))
        st.pop("message", None)
        write_json_atomic(path, state)
        try:
            out = fn(dict(item) if isinstance(item, dict) else item, run_dir, spec.results_tag)
            st.update(status="done", end=now_iso(), n_records=len(out) if isinstance(out, list) else None)
        except Exception as exc:  # failures are data: recorded per item, the job goes on
            st.update(status="error", end=now_iso(), message=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=20))
        write_json_atomic(path, state)
        if on_item is not None:
            on_item(key, st["status"])
    attempt["end"] = now_iso()
    write_json_atomic(path, state)
    return {k: v["status"] for k, v in state["items"].items()}


def mark_unfinished(spec: JobSpec, message: str, *, oom: bool = False) -> None:
    """After a job died without finishing (killed, OOM-killed, timed out, node failure): its running/pending
    items -> ``error`` with ``message`` (and ``oom: true`` when the kernel's OOM killer is the likely cause)."""
    state = read_job(spec.run_dir, spec.tag) or _new_state(spec)
    for key in spec.keys:
        st = state["items"].setdefault(key, {"status": "pending"})
        if st.get("status") in ("pending", "running"):
            st.update(status="error", end=now_iso(), message=message, oom=oom)
    write_json_atomic(job_file(spec.run_dir, spec.tag), state)


def record_sacct(spec: JobSpec, rows: Sequence[dict[str, str]]) -> bool:
    """Keep what ``sacct`` reports about the job in its job file: ``sacct`` (one row per run of the job, oldest
    first: a requeued job has a REQUEUED / PREEMPTED / TIMEOUT row before the row of its next run) and
    ``slurm_state`` (the last row's state). Only for a job that has ended: its own process no longer writes the
    file. Returns whether the file changed."""
    state = read_job(spec.run_dir, spec.tag) or _new_state(spec)
    rows = [dict(r) for r in rows]
    if not rows or state.get("sacct") == rows:
        return False
    state.update(sacct=rows, slurm_state=rows[-1]["state"])
    write_json_atomic(job_file(spec.run_dir, spec.tag), state)
    return True


def job_outcomes(run_dir: Path | str, specs: Sequence[JobSpec]) -> tuple[int, list[dict[str, Any]]]:
    """(items done, errors as ``{key, message, oom}``) of these jobs, from their job files."""
    done, errors = 0, []
    for spec in specs:
        state = read_job(run_dir, spec.tag) or {"items": {}}
        for key in spec.keys:
            st = state["items"].get(key, {"status": "error", "message": "job never started"})
            if st.get("status") == "done":
                done += 1
            else:
                errors.append({"key": key, "message": st.get("message", st.get("status")),
                               "oom": bool(st.get("oom"))})
    return done, errors


def read_records_with_provenance(run_dir: Path | str) -> list[dict[str, Any]]:
    """The run's merged records (as ``records.read_records``), each with ``job_tag``, ``job_id``,
    ``job_array_index`` and ``job_hostname`` of the SLURM/submitit job that wrote it (last attempt of
    ``jobs/<tag>.json``; absent for records of the run's own ``results.jsonl``)."""
    run_dir = Path(run_dir)
    jobs = read_jobs(run_dir)

    def provenance(path: Path) -> dict[str, Any]:
        tag = path.name[len("results."):-len(".jsonl")] if path.name != "results.jsonl" else None
        if not (tag and tag in jobs and jobs[tag].get("attempts")):
            return {}
        last = jobs[tag]["attempts"][-1]
        return {"job_tag": tag, "job_id": last.get("job_id"), "job_array_index": last.get("array_index"),
                "job_hostname": last.get("hostname"), "job_attempts": len(jobs[tag]["attempts"])}

    return read_records([run_dir], RESULTS_GLOB, extra=provenance)
