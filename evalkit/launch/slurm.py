"""The ``submitit`` launcher: jobs as one SLURM job array (or submitit's local subprocess executor).

Each job runs :func:`evalkit.launch.jobs.run_job` and writes its own ``results.<tag>.jsonl`` (so there is no
lock contention on a shared file system and no duplicate after a retry). On SLURM a preempted or timed-out job is
requeued by submitit (``helpers.Checkpointable``) and skips the items it finished. With ``launch.wait: false``
the submission is recorded in ``jobs/submitted/`` and the command returns; running it again leaves the items of
jobs still pending or running on SLURM alone and submits only what ended without finishing. Once a SLURM job has
ended, its job file gets what ``sacct`` reports about it (every run of it: requeues, cancellation, time limit).
"""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import submitit

from evalkit.launch.config import LaunchConfig, submitit_parameters
from evalkit.launch.jobs import (JobSpec, finished_items, mark_unfinished, read_job, record_sacct, run_job,
                                 write_json_atomic)
from evalkit.core.runs import now_iso


class JobRunner(submitit.helpers.Checkpointable):
    """The callable submitit pickles; on preemption or timeout ``checkpoint()`` (inherited) requeues the same
    spec, and ``run_job`` skips the items the job file marks done."""

    def __call__(self, spec: dict[str, Any]) -> dict[str, Any]:
        return run_job(spec)


# sacct(1) job state codes of a job that has not ended yet
ACTIVE_SLURM_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                                 "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"})


def squeue_state(job_id: str) -> str | None:
    """The job's state while slurmctld lists it (pending, running, completing); None once it has ended or when
    squeue cannot answer."""
    try:
        proc = subprocess.run(["squeue", "--noheader", "--array", "--jobs", job_id, "--format", "%T"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    states = proc.stdout.split() if proc.returncode == 0 else []
    return states[0] if states else None


def slurm_state(folder: str, job_id: str) -> str:
    """SLURM state of one submitted job: squeue's while slurmctld lists it (sacct learns of a job from slurmdbd
    some time after sbatch returns: a job submitted a moment ago is unknown to it), else sacct's as submitit
    reads it; UNKNOWN when neither can tell."""
    queued = squeue_state(job_id)
    if queued:
        return queued
    try:
        return str(submitit.SlurmJob(folder, job_id).state)
    except (OSError, subprocess.SubprocessError):  # no sacct here: cannot tell
        return "UNKNOWN"


# what the job files keep of sacct(1): one row per run of a job (sacct --duplicates --allocations)
SACCT_FIELDS = {"JobID": "job_id", "JobIDRaw": "job_id_raw", "State": "state", "ExitCode": "exit_code",
                "Start": "start", "End": "end", "Elapsed": "elapsed", "NodeList": "node_list"}


def _array_ids(job_id: str) -> list[str]:
    """sacct's JobID as the ids of the jobs it stands for: ``7``, ``7_3``, or ``7_[0-2,5%1]`` (pending tasks)."""
    base, sep, tasks = job_id.partition("_")
    if not sep or not tasks.startswith("["):
        return [job_id]
    out = []
    for part in tasks.strip("[]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def sacct_history(job_ids: Sequence[str]) -> dict[str, list[dict[str, str]]] | None:
    """What ``sacct`` reports about these jobs (``<array>_<index>`` or plain ids) as {job id: rows}, one row per
    run of the job, oldest first; a job sacct does not know yet is absent. None when sacct cannot answer (not
    installed, or no accounting storage on this cluster)."""
    if not job_ids:
        return {}
    cmd = ["sacct", "--duplicates", "--allocations", "--parsable2", "--noheader",
           "--format", ",".join(SACCT_FIELDS), "--jobs", ",".join(sorted({j.split("_")[0] for j in job_ids}))]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    wanted, rows = set(job_ids), {}
    for line in out.splitlines():
        values = line.split("|")
        if len(values) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS.values(), values))
        for job_id in _array_ids(row["job_id"]):
            if job_id in wanted:
                rows.setdefault(job_id, []).append({**row, "job_id": job_id})
    return rows


def _ended(rows: Sequence[dict[str, str]] | None) -> bool:
    return bool(rows) and rows[-1]["state"].split()[0].upper() not in ACTIVE_SLURM_STATES


def record_final_states(specs: Sequence[JobSpec], job_ids: Sequence[str], wait_s: float = 60.0) -> None:
    """sacct's rows of each ended job into its job file. A job whose result is written can still be RUNNING or
    COMPLETING for a moment (and slurmdbd learns of it a moment later): sacct is asked again every 2 s, for up
    to ``wait_s``, until every job's last row is final."""
    deadline = time.monotonic() + wait_s
    while True:
        history = sacct_history(job_ids)
        if history is None:
            return
        if all(_ended(history.get(j)) for j in job_ids) or time.monotonic() > deadline:
            break
        time.sleep(2)
    for spec, job_id in zip(specs, job_ids):
        if history.get(job_id):
            record_sacct(spec, history[job_id])


def proc_start(pid: int) -> str | None:
    """The start time (clock ticks since boot, ``/proc/<pid>/stat`` field 22) of a live process, None when no
    such process runs (or it is a zombie). With the pid it names one process: a pid reused later has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if not fields or fields[0] in ("Z", "X") else fields[19]


def local_job_alive(sub: dict[str, Any]) -> bool:
    """Whether the process of a local submitit job (its job id is its pid) still runs: the same pid with the
    start time recorded at submission (so a reused pid is not mistaken for it)."""
    try:
        pid = int(sub["job_id"])
    except (KeyError, TypeError, ValueError):
        return False
    start = proc_start(pid)
    return start is not None and sub.get("proc_start") in (None, start)


def record_submission(run_dir: Path, specs: Sequence[JobSpec], job_ids: Sequence[str], cluster: str) -> None:
    """``jobs/submitted/<tag>.json`` per job: what a later command needs to tell whether the job still runs
    (SLURM: its job id; submitit's local executor: its pid and that process's start time)."""
    for spec, job_id in zip(specs, job_ids):
        extra = {}
        if cluster == "local" and str(job_id).isdigit():
            extra["proc_start"] = proc_start(int(job_id))
        write_json_atomic(run_dir / "jobs" / "submitted" / f"{spec.tag}.json",
                          {"tag": spec.tag, "job_id": job_id, "keys": spec.keys, "cluster": cluster,
                           "fn": spec.fn, "results_tag": spec.results_tag,
                           "folder": str(run_dir / "submitit" / "%j"), "submitted": now_iso(), **extra})


def _submitted_spec(run_dir: Path, sub: dict[str, Any]) -> JobSpec:
    return JobSpec(tag=sub["tag"], fn=sub.get("fn", ""), run_dir=str(run_dir),
                   items=tuple({"key": k} for k in sub["keys"]), launcher="submitit",
                   results_tag=sub.get("results_tag", sub["tag"]))


def in_flight_items(run_dir: Path | str) -> dict[str, str]:
    """Items an earlier command submitted whose job still runs and that no job file marks done, as {key: job}
    (a SLURM job id, or ``pid <pid>`` of a local job); they are not submitted again. SLURM jobs (``wait:
    false``) are asked of squeue / sacct; submitit's local jobs (subprocesses of this machine, which outlive a
    ``kill -9`` of the command that started them and go on writing their records) by their pid and its start
    time. SLURM jobs that have ended get sacct's rows in their job file, and their unfinished items become errors naming the
    job's final state."""
    run_dir = Path(run_dir)
    folder = run_dir / "jobs" / "submitted"
    if not folder.is_dir():
        return {}
    done, out, ended = finished_items(run_dir), {}, []
    for path in sorted(folder.glob("*.json")):
        try:
            sub = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue            # a torn submission file (its writer killed): its job, if any, ran inline
        keys = [k for k in sub["keys"] if k not in done]
        if sub.get("cluster") == "local":
            if keys and local_job_alive(sub):
                out.update({k: f"pid {sub['job_id']}" for k in keys})
            continue
        if sub.get("cluster") != "slurm" or not (keys or "sacct" not in (read_job(run_dir, sub["tag"]) or {})):
            continue
        state = slurm_state(sub["folder"], sub["job_id"]).split()[0].upper()
        if state in ACTIVE_SLURM_STATES:
            out.update({k: sub["job_id"] for k in keys})
        elif state != "UNKNOWN":
            ended.append(sub)
    history = sacct_history([sub["job_id"] for sub in ended]) or {}
    for sub in ended:
        rows = history.get(sub["job_id"])
        if not _ended(rows):
            continue
        spec = _submitted_spec(run_dir, sub)
        mark_unfinished(spec, f"job {sub['job_id']} ended {rows[-1]['state']} before this item finished")
        record_sacct(spec, rows)
    return out


def make_executor(cfg: LaunchConfig, run_dir: Path, name: str) -> submitit.AutoExecutor:
    cluster = None if cfg.submitit_cluster == "auto" else cfg.submitit_cluster
    kwargs: dict[str, Any] = {}
    if cluster in (None, "slurm", "local"):
        kwargs.update(slurm_max_num_timeout=cfg.max_requeues if cfg.requeue else 0)
    ex = submitit.AutoExecutor(folder=run_dir / "submitit" / "%j", cluster=cluster, **kwargs)
    ex.update_parameters(**submitit_parameters(cfg, name))
    return ex


def run_jobs(specs: Sequence[JobSpec], cfg: LaunchConfig, run_dir: Path, name: str,
             echo: Callable[[str], None], on_item: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Submit the jobs as one array; wait for them unless ``wait: false``. Returns ``job_ids`` and
    ``unknown`` (items of jobs left running)."""
    ex = make_executor(cfg, run_dir, name)
    jobs = ex.map_array(JobRunner(), [s.to_json() for s in specs])
    job_ids = [j.job_id for j in jobs]
    record_submission(run_dir, specs, job_ids, ex.cluster)
    echo(f"submitted {len(jobs)} job(s) ({ex.cluster}): {', '.join(job_ids[:5])}"
         f"{' ...' if len(jobs) > 5 else ''}; logs under {run_dir / 'submitit'}")
    if not cfg.wait:
        return {"job_ids": job_ids, "unknown": sum(len(s.items) for s in specs)}
    for spec, job in zip(specs, jobs):
        if ex.cluster == "local":
            # submitit waits up to 15 s for the result file of a dead job (slow network file systems);
            # the local executor writes to a local disk
            job._results_timeout_s = 1
        try:
            job.result()
        except Exception as exc:  # a killed/failed job: its unfinished items become errors, retried next run
            mark_unfinished(spec, f"job {job.job_id} failed: {type(exc).__name__}: {str(exc)[-400:]}")
        if on_item is not None:
            state = read_job(run_dir, spec.tag) or {"items": {}}
            for key in spec.keys:
                on_item(key, state["items"].get(key, {}).get("status", "error"))
    if ex.cluster == "slurm":
        record_final_states(specs, job_ids)
    stray = run_dir / "submitit" / "%j"   # submitit makes its folder pattern literally; jobs use <job id>/
    if stray.is_dir() and not any(stray.iterdir()):
        stray.rmdir()
    return {"job_ids": job_ids, "unknown": 0}
