"""One way to launch work: :func:`run_items` with a :class:`~evalkit.launch.config.LaunchConfig`.

Not a paper figure: the fan-out behind the cost sweep (Fig. 1b / 6 / 20, Table 2), generation shards and VBench
units. Every verb hands its keyed items and a ``"module:function"`` to :func:`run_items`; the launcher decides
where they run (``inline`` in this process, ``process`` one subprocess per job, ``submitit`` SLURM arrays),
``evalkit.launch.torchrun`` decides which items a ``torchrun`` rank takes. Modules:

* ``config``: the ``launch:`` section, ``--launcher``, sbatch options;
* ``jobs``: job specs, the job body and its provenance file (``jobs/<tag>.json``);
* ``process``: the isolated subprocess launcher (timeouts, OOM classification, children die with the parent);
* ``slurm``: the submitit launcher (arrays, requeue, jobs still in flight);
* ``torchrun``: rank, world size, device and the one rank-splitting rule.

Finished items are not run again, so re-running the same command after a crash, a ``scancel`` or a preemption
finishes only what is missing. The verbs decide what is finished from their records (``skip_done``: the sweep's
record keys; whole-command shards of ``generate`` and ``vbench run`` pass ``set()`` and resume from their own
records inside each job); job files then only say what ran where and what is still in flight. Without
``skip_done`` (library callers, ``python -m evalkit.launch selftest``) an item marked ``done`` with the same
content in a job file is finished.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalkit.core.errors import FieldError
from evalkit.launch.config import LaunchConfig, format_job_line, sbatch_options, sbatch_preview
from evalkit.launch.jobs import (JobSpec, check_items, finished_items, item_key, job_outcomes, plan_jobs,
                                 resolve_fn, run_job)
from evalkit.core.records import append, results_file, stale_tmp_files
from evalkit.core.schema import make_record

SkipDone = set[str] | Callable[[Path], set[str]] | None


def pending_items(items: Sequence[Any], run_dir: Path, skip_done: SkipDone = None) -> list[Any]:
    """The items not finished yet. ``skip_done`` is the caller's notion of done item keys (a set, or a callable
    of the run folder; the sweep passes its records' keys); when None, an item is done when a job file of the
    run marks it ``done`` with the same content (``jobs.item_sha256``: a changed item under an old key runs)."""
    if skip_done is None:
        done = finished_items(run_dir, items)
    elif callable(skip_done):
        done = set(skip_done(run_dir))
    else:
        done = set(skip_done)
    return [it for it in items if item_key(it) not in done]


def dry_run_lines(specs: Sequence[JobSpec], cfg: LaunchConfig, name: str = "evalkit") -> list[str]:
    """What ``--dry-run`` prints: a header, then one line per job with its keys (and sbatch options)."""
    if cfg.launcher == "submitit":
        opts = sbatch_options(cfg, n_jobs=len(specs))
        head = f"submitit ({cfg.submitit_cluster}): {len(specs)} job(s) in one array, requeue={cfg.requeue}"
        per_job = {k: v for k, v in opts.items() if k != "array"}
        lines = [head] + [format_job_line(s.tag, s.keys, {**per_job, "array-index": str(i)})
                          for i, s in enumerate(specs)]
        if specs and cfg.submitit_cluster in ("auto", "slurm"):
            preview = sbatch_preview(cfg, str(Path(specs[0].run_dir) / "submitit" / "%j"), len(specs), name)
            if preview:
                lines += ["sbatch header (rendered by submitit):"] + ["  " + ln for ln in preview.splitlines()]
        return lines
    mode = ("in this process" if cfg.launcher == "inline" else
            f"one subprocess per job, {cfg.workers} at once"
            f"{f', timeout {cfg.timeout_s:g} s' if cfg.timeout_s else ''}")
    return [f"{cfg.launcher}: {len(specs)} job(s), {mode}"] + [format_job_line(s.tag, s.keys, {}) for s in specs]


def run_items(items: Sequence[Any], fn: str, *, launch: LaunchConfig, run_dir: Path | str,
              skip_done: SkipDone = None, name: str = "evalkit", dry_run: bool = False,
              echo: Callable[[str], None] = print, on_item: Callable[[str, str], None] | None = None,
              results_tag: str | None = None) -> dict[str, Any]:
    """Run ``fn`` on every item not finished yet and return a summary.

    The summary: ``launcher``, ``total``, ``skipped`` (already done), ``in_flight`` (submitted to SLURM by an
    earlier command and still pending/running), ``submitted``, ``done``, ``errors`` (list of
    ``{key, message, oom}``), ``in_flight_keys``, ``submitted_keys``, ``unknown`` (items of jobs left running
    with ``wait: false``), ``jobs`` (tags) and ``job_ids``. Bad items or an unimportable ``fn`` fail before any
    job starts. ``on_item(key, status)`` is called as each item ends; ``results_tag`` makes inline and process
    jobs write ``results.<tag>.jsonl``.
    """
    cfg, run_dir = launch, Path(run_dir)
    items = list(items)
    check_items(items)
    resolve_fn(fn)
    if not dry_run:      # temporaries of writers killed between write and rename: removed, never read
        for folder in (run_dir, run_dir / "jobs", run_dir / "jobs" / "specs", run_dir / "jobs" / "submitted"):
            stale_tmp_files(folder)
    # what is in flight is asked first, what is finished after: a job that ends between the two questions has
    # its items finished by the second (asked the other way round, they would be neither, and run again)
    busy: dict[str, str] = {}
    if (run_dir / "jobs" / "submitted").is_dir():   # an earlier command submitted submitit jobs
        from evalkit.launch.slurm import in_flight_items

        busy = in_flight_items(run_dir)
    todo = pending_items(items, run_dir, skip_done)
    if busy:
        slurm_jobs = sorted({j for j in busy.values() if not j.startswith("pid ")})
        local_jobs = sorted({j for j in busy.values() if j.startswith("pid ")})
        where = ([f"on SLURM (jobs {', '.join(slurm_jobs[:5])}{' ...' if len(slurm_jobs) > 5 else ''})"]
                 if slurm_jobs else []) + (
            [f"in local submitit jobs of an earlier command ({', '.join(local_jobs[:5])}"
             f"{' ...' if len(local_jobs) > 5 else ''}; they write their own records)"] if local_jobs else [])
        echo(f"{sum(1 for it in todo if item_key(it) in busy)} item(s) still pending/running "
             f"{' and '.join(where)}: not submitted again")
    in_flight_keys = [item_key(it) for it in todo if item_key(it) in busy]
    in_flight = len(in_flight_keys)
    todo = [it for it in todo if item_key(it) not in busy]
    specs = plan_jobs(todo, fn, cfg, run_dir, results_tag=results_tag)
    summary: dict[str, Any] = {"launcher": cfg.launcher, "total": len(items),
                               "skipped": len(items) - len(todo) - in_flight, "in_flight": in_flight,
                               "in_flight_keys": in_flight_keys, "submitted_keys": [item_key(it) for it in todo],
                               "submitted": len(todo), "jobs": [s.tag for s in specs], "job_ids": [],
                               "done": 0, "errors": [], "unknown": 0}
    if dry_run:
        for line in dry_run_lines(specs, cfg, name):
            echo(line)
        summary.update(submitted=0, dry_run=True)
        return summary
    if not specs:
        return summary
    if cfg.launcher == "inline":
        for spec in specs:
            run_job(spec, on_item)
    elif cfg.launcher == "process":
        from evalkit.launch.process import run_jobs

        run_jobs(specs, cfg, on_item)
    elif cfg.launcher == "submitit":
        from evalkit.launch.slurm import run_jobs

        out = run_jobs(specs, cfg, run_dir, name, echo, on_item)
        summary.update(job_ids=out["job_ids"], unknown=out["unknown"])
        if out["unknown"]:
            return summary
    else:  # LaunchConfig's Literal already refuses this; kept for direct callers
        raise FieldError("launch.launcher", f"unknown launcher {cfg.launcher!r}")
    summary["done"], summary["errors"] = job_outcomes(run_dir, specs)
    return summary


# ---------------------------------------------------------------------------------------------------------------
# whole-command shards: `generate --shards N`, `vbench run --jobs N`
# ---------------------------------------------------------------------------------------------------------------
def cli_shard_items(argv: Sequence[str], shards: int) -> list[dict[str, Any]]:
    """``shards`` items that together run ``python -m evalkit <argv>`` as ranks 0..shards-1 (each rank takes its
    share of the verb's items, ``torchrun.shard``, and writes its own output shard)."""
    if shards < 1:
        raise FieldError("--shards", f"must be >= 1, got {shards}")
    return [{"key": f"{argv[0]}/shard{r}of{shards}", "rank": r, "world_size": shards, "argv": list(argv)}
            for r in range(shards)]


def cli_shard_item(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> list[dict[str, Any]]:
    """Run one shard of an evalkit verb that reads ``torchrun.dist_info``: sets RANK/WORLD_SIZE (and
    LOCAL_RANK=0: one process per job) to the item's ``rank``/``world_size`` and calls ``python -m evalkit
    <item['argv']...>`` in this process. A non-zero exit status is an error of the item."""
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


def selftest_item(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> list[dict[str, Any]]:
    """A deterministic item for checking a cluster set-up (``python -m evalkit.launch selftest``): writes
    ``item['n_records']`` (default 1) records whose values depend only on the item."""
    x = int(item.get("x", 0))
    recs = []
    for j in range(int(item.get("n_records", 1))):
        rec = make_record("selftest", key=f"{item['key']}/m{j}", x=x, m=j, value=x * x + j)
        append(results_file(run_dir, job_tag), rec)
        recs.append(rec)
    return recs


__all__ = ["LaunchConfig", "run_items", "pending_items", "dry_run_lines", "cli_shard_items", "cli_shard_item",
           "selftest_item"]
