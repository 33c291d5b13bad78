"""The ``submitit`` launcher: jobs as one SLURM job array (or submitit's local subprocess executor).

Each job runs :func:`evalkit.launch.jobs.run_job` and writes its own ``results.<tag>.jsonl`` (so there is no
lock contention on a shared file system and no duplicate after a retry). On SLURM a preempted or timed-out job is
requeued by submitit (``helpers.Checkpointable``) and skips the items it finished. With ``launch.wait: false``
the submission is recorded in ``jobs/submitted/`` and the command returns; running it again leaves the items of
jobs still pending or running on SLURM alone and submits only what ended without finishing.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import submitit

from evalkit.launch.config import LaunchConfig, submitit_parameters
from evalkit.launch.jobs import JobSpec, finished_items, mark_unfinished, read_job, run_job, write_json_atomic
from evalkit.core.runs import now_iso


class JobRunner(submitit.helpers.Checkpointable):
    """The callable submitit pickles; on preemption or timeout ``checkpoint()`` (inherited) requeues the same
    spec, and ``run_job`` skips the items the job file marks done."""

    def __call__(self, spec: dict[str, Any]) -> dict[str, Any]:
        return run_job(spec)


# sacct(1) job state codes of a job that has not ended yet
ACTIVE_SLURM_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                                 "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"})


def slurm_state(folder: str, job_id: str) -> str:
    """SLURM state of one submitted job as submitit reads it (sacct); UNKNOWN when it cannot tell."""
    try:
        return str(submitit.SlurmJob(folder, job_id).state)
    except (OSError, subprocess.SubprocessError):  # no sacct here: cannot tell
        return "UNKNOWN"


def record_submission(run_dir: Path, specs: Sequence[JobSpec], job_ids: Sequence[str], cluster: str) -> None:
    for spec, job_id in zip(specs, job_ids):
        write_json_atomic(run_dir / "jobs" / "submitted" / f"{spec.tag}.json",
                          {"tag": spec.tag, "job_id": job_id, "keys": spec.keys, "cluster": cluster,
                           "folder": str(run_dir / "submitit" / "%j"), "submitted": now_iso()})


def in_flight_items(run_dir: Path | str) -> dict[str, str]:
    """Items an earlier command submitted to SLURM (``wait: false``) whose job is still pending or running and
    that no job file marks done, as {key: job id}; they are not submitted again."""
    run_dir = Path(run_dir)
    folder = run_dir / "jobs" / "submitted"
    if not folder.is_dir():
        return {}
    done, out = finished_items(run_dir), {}
    for path in sorted(folder.glob("*.json")):
        sub = json.loads(path.read_text())
        keys = [k for k in sub["keys"] if k not in done]
        if sub.get("cluster") != "slurm" or not keys:
            continue
        state = slurm_state(sub["folder"], sub["job_id"]).split()[0].upper()
        if state in ACTIVE_SLURM_STATES:
            out.update({k: sub["job_id"] for k in keys})
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
    stray = run_dir / "submitit" / "%j"   # submitit makes its folder pattern literally; jobs use <job id>/
    if stray.is_dir() and not any(stray.iterdir()):
        stray.rmdir()
    return {"job_ids": job_ids, "unknown": 0}
