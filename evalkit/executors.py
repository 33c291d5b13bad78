"""Executors: run a list of keyed work items in-process, one subprocess per item, or as submitit/SLURM job arrays.

Not a paper figure: the fan-out behind the sweep (Fig. 1b/6/20, Table 2 cost side), generation shards and VBench
dimension shards. One item is a JSON-able dict with a unique ``key`` (a sweep point, a generation shard, a VBench
dimension shard); the work is a plain importable function named ``"module:function"`` with the signature
``fn(item: dict, run_dir: Path, job_tag: str) -> list[dict] | None`` that appends its own records to
``results_path(run_dir, job_tag)``. Items are grouped into jobs (``cluster.items_per_job``); each job

* writes its records to its own ``results.<job_tag>.jsonl`` (merged on read by ``evalkit.results.read_records``,
  so there is no lock contention between jobs and no duplicate after a retry), and
* keeps its provenance in ``jobs/<job_tag>.json``: SLURM/submitit job id, array index, hostname, pid, start/end
  of every attempt, and the status of every item (``running`` -> ``done`` | ``error``), written atomically after
  each item, so a killed, preempted or timed-out job loses at most the item it was running.

Finished items (``done`` in any job file of the run, or in the caller's ``skip_done``) are not submitted again, so
re-running the same command after a crash, a ``scancel`` or a preemption finishes only what is missing. On SLURM a
preempted or timed-out job is requeued by submitit (``helpers.Checkpointable``) and skips the items it finished.
``read_records_with_provenance`` returns the merged records, each carrying the provenance of the job that wrote it.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from evalkit.cluster import ClusterConfig, format_job_line, sbatch_options, sbatch_preview, submitit_parameters
from evalkit.errors import FieldError
from evalkit.results import append_record, new_run_id, now_iso, read_records

SkipDone = set[str] | Callable[[Path], set[str]] | None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One job: the items it runs, the function and where its records and provenance go."""

    tag: str
    fn: str
    run_dir: str
    items: tuple[dict[str, Any], ...]
    executor: str = "local"

    @property
    def keys(self) -> list[str]:
        return [it["key"] for it in self.items]

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "fn": self.fn, "run_dir": self.run_dir, "items": list(self.items),
                "executor": self.executor}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls(tag=data["tag"], fn=data["fn"], run_dir=data["run_dir"], items=tuple(data["items"]),
                   executor=data.get("executor", "local"))


def results_path(run_dir: Path | str, job_tag: str) -> Path:
    """Where one job appends its records: ``<run_dir>/results.<job_tag>.jsonl``."""
    return Path(run_dir) / f"results.{job_tag}.jsonl"


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


# ---------------------------------------------------------------------------------------------------------------
# provenance files
# ---------------------------------------------------------------------------------------------------------------

def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def read_job(run_dir: Path | str, job_tag: str) -> dict[str, Any] | None:
    path = job_file(run_dir, job_tag)
    return json.loads(path.read_text()) if path.exists() else None


def read_jobs(run_dir: Path | str) -> dict[str, dict[str, Any]]:
    """Every job provenance file of a run, by tag."""
    folder = Path(run_dir) / "jobs"
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def finished_items(run_dir: Path | str) -> set[str]:
    """Item keys some job of this run finished (status ``done``)."""
    return {key for job in read_jobs(run_dir).values()
            for key, st in job.get("items", {}).items() if st.get("status") == "done"}


def _attempt_env() -> dict[str, Any]:
    """Who runs this attempt: submitit's JobEnvironment inside a submitit job, else SLURM variables, else local."""
    info: dict[str, Any] = {"hostname": platform.node(), "pid": os.getpid(), "start": now_iso()}
    try:
        env = submitit.JobEnvironment()
        info.update(job_id=str(env.job_id), array_job_id=str(env.raw_job_id).split("_")[0],
                    array_index=env.array_task_id if hasattr(env, "array_task_id") else None,
                    cluster=env.cluster)
    except RuntimeError:  # not inside a submitit job
        info.update(job_id=os.environ.get("SLURM_JOB_ID"), array_index=os.environ.get("SLURM_ARRAY_TASK_ID"),
                    cluster="slurm" if "SLURM_JOB_ID" in os.environ else "local")
    if "SLURM_ARRAY_TASK_ID" in os.environ:
        info["array_index"] = int(os.environ["SLURM_ARRAY_TASK_ID"])
    if "SLURM_RESTART_COUNT" in os.environ:
        info["slurm_restart_count"] = int(os.environ["SLURM_RESTART_COUNT"])
    return info


def run_job(spec: JobSpec | dict[str, Any]) -> dict[str, Any]:
    """The body of one job, in whichever process runs it: run every item not yet done, keeping the job file
    up to date. An item that raises is marked ``error`` (with the traceback) and the job goes on."""
    spec = JobSpec.from_json(spec) if isinstance(spec, dict) else spec
    run_dir = Path(spec.run_dir)
    path = job_file(run_dir, spec.tag)
    state = read_job(run_dir, spec.tag) or {
        "tag": spec.tag, "fn": spec.fn, "executor": spec.executor, "results_file": results_path(run_dir, spec.tag).name,
        "items": {k: {"status": "pending"} for k in spec.keys}, "attempts": []}
    attempt = _attempt_env()
    state["attempts"].append(attempt)
    _write_json_atomic(path, state)
    fn = resolve_fn(spec.fn)
    for item in spec.items:
        key = item["key"]
        st = state["items"].setdefault(key, {"status": "pending"})
        if st.get("status") == "done":  # finished by an earlier attempt (requeue after preemption)
            continue
        st.update(status="running", start=now_iso(), attempt=len(state["attempts"]) - 1)
        st.pop("message", None)
        _write_json_atomic(path, state)
        try:
            out = fn(dict(item), run_dir, spec.tag)
            st.update(status="done", end=now_iso(), n_records=len(out) if isinstance(out, list) else None)
        except Exception as exc:  # failures are data: recorded per item, the job goes on
            st.update(status="error", end=now_iso(), message=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=20))
        _write_json_atomic(path, state)
    attempt["end"] = now_iso()
    _write_json_atomic(path, state)
    return {k: v["status"] for k, v in state["items"].items()}


class JobRunner(submitit.helpers.Checkpointable):
    """The callable submitit pickles; on preemption or timeout ``checkpoint()`` (inherited) requeues the same
    spec, and ``run_job`` skips the items the job file marks done."""

    def __call__(self, spec: dict[str, Any]) -> dict[str, Any]:
        return run_job(spec)


# ---------------------------------------------------------------------------------------------------------------
# planning and submission
# ---------------------------------------------------------------------------------------------------------------

def _check_items(items: Sequence[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key:
            raise FieldError(f"items[{i}].key", f"every item needs a non-empty string key, got {item!r:.80}")
        if key in seen:
            raise FieldError(f"items[{i}].key", f"duplicate key {key!r}")
        seen.add(key)
        try:
            json.dumps(item)
        except TypeError as exc:
            raise FieldError(f"items[{i}]", f"must be JSON-serialisable: {exc}") from None


# sacct(1) job state codes of a job that has not ended yet
ACTIVE_SLURM_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                                 "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"})


def _slurm_state(folder: str, job_id: str) -> str:
    """SLURM state of one submitted job as submitit reads it (sacct); UNKNOWN when it cannot tell."""
    try:
        return str(submitit.SlurmJob(folder, job_id).state)
    except (OSError, subprocess.SubprocessError):  # no sacct here: cannot tell
        return "UNKNOWN"


def _record_submission(run_dir: Path, specs: Sequence[JobSpec], job_ids: Sequence[str], cluster: str) -> None:
    for spec, job_id in zip(specs, job_ids):
        _write_json_atomic(run_dir / "jobs" / "submitted" / f"{spec.tag}.json",
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
        state = _slurm_state(sub["folder"], sub["job_id"]).split()[0].upper()
        if state in ACTIVE_SLURM_STATES:
            out.update({k: sub["job_id"] for k in keys})
    return out


def pending_items(items: Sequence[dict[str, Any]], run_dir: Path, skip_done: SkipDone = None) -> list[dict]:
    """The items not finished yet. ``skip_done`` is the caller's notion of done item keys (a set, or a callable
    of the run folder); when None, an item is done when a job file of the run marks it ``done``."""
    if skip_done is None:
        done = finished_items(run_dir)
    elif callable(skip_done):
        done = set(skip_done(run_dir))
    else:
        done = set(skip_done)
    return [it for it in items if it["key"] not in done]


def plan_jobs(items: Sequence[dict[str, Any]], fn: str, cfg: ClusterConfig, run_dir: Path,
              submission: str | None = None) -> list[JobSpec]:
    """Group items into jobs of ``cfg.items_per_job`` (1 for the isolated local executor)."""
    per_job = 1 if (cfg.executor == "local" and cfg.isolate) else cfg.items_per_job
    # unique per submission (two submissions in one second from one process must not share job files)
    sub = submission or f"{new_run_id('s')}-{uuid.uuid4().hex[:6]}"
    return [JobSpec(tag=f"{sub}-{i // per_job:04d}", fn=fn, run_dir=str(run_dir),
                    items=tuple(items[i:i + per_job]), executor=cfg.executor)
            for i in range(0, len(items), per_job)]


def dry_run_lines(specs: Sequence[JobSpec], cfg: ClusterConfig) -> list[str]:
    """What ``--dry-run`` prints: a header, then one line per job with its keys and sbatch-like options."""
    if cfg.executor == "submitit":
        opts = sbatch_options(cfg, n_jobs=len(specs))
        head = f"submitit ({cfg.submitit_cluster}): {len(specs)} job(s) in one array, requeue={cfg.requeue}"
        per_job = {k: v for k, v in opts.items() if k != "array"}
        lines = [head] + [format_job_line(s.tag, s.keys, {**per_job, "array-index": str(i)})
                          for i, s in enumerate(specs)]
        if specs and cfg.submitit_cluster in ("auto", "slurm"):
            preview = sbatch_preview(cfg, str(Path(specs[0].run_dir) / "submitit" / "%j"), len(specs))
            if preview:
                lines += ["sbatch header (rendered by submitit):"] + ["  " + ln for ln in preview.splitlines()]
    else:
        mode = "a fresh subprocess per item" if cfg.isolate else "in this process"
        lines = [f"local: {len(specs)} job(s), {mode}"] + [format_job_line(s.tag, s.keys, {}) for s in specs]
    return lines


def _mark_unfinished(spec: JobSpec, message: str) -> None:
    """After a job died without finishing (killed, OOM-killed, node failure): its running/pending items -> error."""
    state = read_job(spec.run_dir, spec.tag) or {"tag": spec.tag, "fn": spec.fn, "executor": spec.executor,
                                                 "items": {k: {"status": "pending"} for k in spec.keys},
                                                 "attempts": []}
    for key in spec.keys:
        st = state["items"].setdefault(key, {"status": "pending"})
        if st.get("status") in ("pending", "running"):
            st.update(status="error", end=now_iso(), message=message)
    _write_json_atomic(job_file(spec.run_dir, spec.tag), state)


def _run_isolated(spec: JobSpec) -> None:
    spec_path = Path(spec.run_dir) / "jobs" / "specs" / f"{spec.tag}.json"
    _write_json_atomic(spec_path, spec.to_json())
    log = Path(spec.run_dir) / "logs" / f"{spec.tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.run([sys.executable, "-m", "evalkit.executors", "run-job", str(spec_path)],
                              stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        why = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        _mark_unfinished(spec, f"subprocess {why}; log: {log}")


def _submitit_executor(cfg: ClusterConfig, run_dir: Path, name: str) -> submitit.AutoExecutor:
    cluster = None if cfg.submitit_cluster == "auto" else cfg.submitit_cluster
    kwargs: dict[str, Any] = {}
    if cluster in (None, "slurm", "local"):
        kwargs.update(slurm_max_num_timeout=cfg.max_requeues if cfg.requeue else 0)
    ex = submitit.AutoExecutor(folder=run_dir / "submitit" / "%j", cluster=cluster, **kwargs)
    ex.update_parameters(**submitit_parameters(cfg, name))
    return ex


def run_items(items: Sequence[dict[str, Any]], fn: str, *, executor: ClusterConfig, run_dir: Path | str,
              skip_done: SkipDone = None, name: str = "evalkit", dry_run: bool = False,
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``fn`` on every item not finished yet and return a summary.

    The summary: ``executor``, ``total``, ``skipped`` (already done), ``in_flight`` (submitted to SLURM by an
    earlier command and still pending/running), ``submitted``, ``done``, ``errors`` (list of ``{key, message}``),
    ``unknown`` (items of jobs left running with ``wait: false``), ``jobs`` (tags) and ``job_ids``. Bad items or
    an unimportable ``fn`` fail before any job starts.
    """
    cfg, run_dir = executor, Path(run_dir)
    items = list(items)
    _check_items(items)
    resolve_fn(fn)
    todo = pending_items(items, run_dir, skip_done)
    busy = in_flight_items(run_dir)
    if busy:
        echo(f"{sum(1 for it in todo if it['key'] in busy)} item(s) still pending/running on SLURM (jobs "
             f"{', '.join(sorted(set(busy.values()))[:5])}): not submitted again")
    in_flight = sum(1 for it in todo if it["key"] in busy)
    todo = [it for it in todo if it["key"] not in busy]
    specs = plan_jobs(todo, fn, cfg, run_dir)
    summary: dict[str, Any] = {"executor": cfg.executor, "total": len(items),
                               "skipped": len(items) - len(todo) - in_flight, "in_flight": in_flight,
                               "submitted": len(todo), "jobs": [s.tag for s in specs], "job_ids": [],
                               "done": 0, "errors": [], "unknown": 0}
    if dry_run:
        for line in dry_run_lines(specs, cfg):
            echo(line)
        summary.update(submitted=0, dry_run=True)
        return summary
    if not specs:
        return summary
    if cfg.executor == "local":
        for spec in specs:
            _run_isolated(spec) if cfg.isolate else run_job(spec)
    elif cfg.executor == "submitit":
        ex = _submitit_executor(cfg, run_dir, name)
        jobs = ex.map_array(JobRunner(), [s.to_json() for s in specs])
        summary["job_ids"] = [j.job_id for j in jobs]
        _record_submission(run_dir, specs, summary["job_ids"], ex.cluster)
        echo(f"submitted {len(jobs)} job(s) ({ex.cluster}): {', '.join(summary['job_ids'][:5])}"
             f"{' ...' if len(jobs) > 5 else ''}; logs under {run_dir / 'submitit'}")
        if not cfg.wait:
            summary["unknown"] = len(todo)
            return summary
        for spec, job in zip(specs, jobs):
            if ex.cluster == "local":
                # submitit waits up to 15 s for the result file of a dead job (slow network file systems);
                # the local executor writes to a local disk
                job._results_timeout_s = 1
            try:
                job.result()
            except Exception as exc:  # a killed/failed job: its unfinished items become errors, retried next run
                _mark_unfinished(spec, f"job {job.job_id} failed: {type(exc).__name__}: {str(exc)[-400:]}")
        stray = run_dir / "submitit" / "%j"   # submitit makes its folder pattern literally; jobs use <job id>/
        if stray.is_dir() and not any(stray.iterdir()):
            stray.rmdir()
    else:  # ClusterConfig's Literal already refuses this; kept for direct callers
        raise FieldError("cluster.executor", f"unknown executor {cfg.executor!r}")
    for spec in specs:
        state = read_job(run_dir, spec.tag) or {"items": {}}
        for key in spec.keys:
            st = state["items"].get(key, {"status": "error", "message": "job never started"})
            if st.get("status") == "done":
                summary["done"] += 1
            else:
                summary["errors"].append({"key": key, "message": st.get("message", st.get("status"))})
    return summary


def read_records_with_provenance(run_dir: Path | str) -> list[dict[str, Any]]:
    """The run's merged records (same order and de-duplication on ``key`` as ``results.read_records``), each
    with ``job_tag``, ``job_id``, ``job_array_index`` and ``job_hostname`` of the job that wrote it (taken from the
    last attempt of ``jobs/<tag>.json``; absent for records written outside a job)."""
    run_dir = Path(run_dir)
    jobs = read_jobs(run_dir)

    def provenance(path: Path) -> dict[str, Any]:
        tag = path.name[len("results."):-len(".jsonl")] if path.name != "results.jsonl" else None
        if not (tag and tag in jobs and jobs[tag].get("attempts")):
            return {}
        last = jobs[tag]["attempts"][-1]
        return {"job_tag": tag, "job_id": last.get("job_id"), "job_array_index": last.get("array_index"),
                "job_hostname": last.get("hostname"), "job_attempts": len(jobs[tag]["attempts"])}

    return read_records([run_dir], extra=provenance)


def point_items(specs: Sequence[dict[str, Any]], done_record_keys: set[str]) -> list[dict[str, Any]]:
    """Sweep point specs (``evalkit.sweep.plan.plan_points``) as executor items for
    ``fn="evalkit.sweep.runner:run_point"``: each keeps only its measurements whose record key is not done, and
    gets ``key`` = the point's record-key prefix. Fully done points are left out, so a re-submission runs exactly
    the missing (point, measurement) records; pass ``skip_done=set()`` to ``run_items`` with these items."""
    out = []
    for spec in specs:
        todo = [m for m in spec["measurements"] if spec["keys"][m] not in done_record_keys]
        if todo:
            first = spec["keys"][spec["measurements"][0]]
            out.append({**spec, "measurements": todo, "key": first.rsplit("/", 1)[0]})
    return out


# ---------------------------------------------------------------------------------------------------------------
# self-test item (used by the tests and by `python -m evalkit.executors selftest` to check a cluster)
# ---------------------------------------------------------------------------------------------------------------

def selftest_item(item: dict[str, Any], run_dir: Path, job_tag: str) -> list[dict[str, Any]]:
    """A deterministic item: writes ``item['n_records']`` (default 1) records whose values depend only on the item.

    ``kill_once``: a marker file path; the first call creates it and then kills its own process with SIGKILL
    after writing its first record (a job killed mid-item), later calls run normally. ``sleep_once``: a marker
    file path; the first call sleeps ``sleep_s`` seconds after its records. ``fail``: raise.
    """
    x = int(item.get("x", 0))
    recs = []
    for j in range(int(item.get("n_records", 1))):
        rec = {"key": f"{item['key']}/m{j}", "kind": "selftest", "status": "ok", "message": "", "x": x, "m": j,
               "value": x * x + j, "created": now_iso()}
        append_record(results_path(run_dir, job_tag), rec)
        recs.append(rec)
        marker = item.get("kill_once")
        if marker and not Path(marker).exists():
            Path(marker).write_text(f"killed pid {os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)
    marker = item.get("sleep_once")   # a long first attempt (the job times out / is preempted meanwhile)
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"slept in pid {os.getpid()}\n")
        time.sleep(float(item.get("sleep_s", 60)))
    if item.get("fail"):
        raise RuntimeError(f"item {item['key']} asked to fail")
    return recs


def cli_shard_item(item: dict[str, Any], run_dir: Path, job_tag: str) -> list[dict[str, Any]]:
    """Run one shard of an evalkit verb that reads ``evalkit.distributed.dist_info`` (e.g. ``generate``): sets
    RANK/WORLD_SIZE (and LOCAL_RANK=0: one process per job) to the item's ``rank``/``world_size`` and calls
    ``python -m evalkit <item['argv']...>`` in this process. A non-zero exit status is an error of the item."""
    from evalkit.cli import main as evalkit_main

    env = {"RANK": str(item["rank"]), "WORLD_SIZE": str(item["world_size"]), "LOCAL_RANK": "0",
           "LOCAL_WORLD_SIZE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        rc = evalkit_main(list(item["argv"]))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if rc != 0:
        raise RuntimeError(f"python -m evalkit {' '.join(item['argv'][:1])} shard {item['rank']}/"
                           f"{item['world_size']} exited with status {rc}")
    return []


def cli_shard_items(argv: Sequence[str], shards: int) -> list[dict[str, Any]]:
    """``shards`` items that together run ``python -m evalkit <argv>`` as ranks 0..shards-1 (each rank takes
    ``items[rank::shards]`` inside the verb and writes its own output shard)."""
    if shards < 1:
        raise FieldError("shards", f"must be >= 1, got {shards}")
    return [{"key": f"{argv[0]}/shard{r}of{shards}", "rank": r, "world_size": shards, "argv": list(argv)}
            for r in range(shards)]


def kill_once_then(item: dict[str, Any], run_dir: Path, job_tag: str) -> Any:
    """Fault injection for tests and cluster checks: the first call (marker file ``item['kill_once']`` absent)
    creates the marker and SIGKILLs its own process before doing anything, as a preempted or OOM-killed job would
    be; every other call runs ``item['wrapped_fn']`` (``"module:function"``) on the item."""
    marker = item.get("kill_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"killed pid {os.getpid()} before {item['key']}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return resolve_fn(item["wrapped_fn"])(item, run_dir, job_tag)


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m evalkit.executors run-job SPEC.json`` (internal: one isolated job) or
    ``python -m evalkit.executors selftest RUN_DIR [--executor submitit] [--set cluster.partition=gpu]``."""
    import argparse

    from evalkit.cluster import add_cluster_args, resolve_cluster

    parser = argparse.ArgumentParser(prog="python -m evalkit.executors", description=main.__doc__,
                                     epilog="examples:\n  python -m evalkit.executors selftest runs/selftest "
                                            "--executor submitit --set cluster.partition=debug\n",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    rj = sub.add_parser("run-job")
    rj.add_argument("spec")
    st = sub.add_parser("selftest")
    st.add_argument("run_dir")
    st.add_argument("--items", type=int, default=4)
    st.add_argument("--set", action="append", default=[], metavar="cluster.KEY=VALUE")
    add_cluster_args(st)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.cmd == "run-job":
        run_job(json.loads(Path(args.spec).read_text()))
        return 0
    cfg = resolve_cluster(None, args.set, executor=args.executor)
    items = [{"key": f"item{i}", "x": i} for i in range(args.items)]
    summary = run_items(items, "evalkit.executors:selftest_item", executor=cfg, run_dir=Path(args.run_dir),
                        dry_run=args.dry_run, name="evalkit-selftest")
    print(json.dumps(summary, sort_keys=True))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
