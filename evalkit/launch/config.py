"""Launch options: the ``launch:`` section of an experiment file and the ``--launcher`` / ``--dry-run`` flags.

Not a paper figure: a 4B sweep with latency up to 68 s videos, generation of VBench's 4,720 videos and 16 VBench
dimensions outgrow one process or one GPU, so every verb that fans out work (sweep points, generation shards,
VBench dimension shards) reads the same typed options here and hands them to :func:`evalkit.launch.run_items`.
There is one choice of *how* work runs, ``launcher``:

* ``inline`` (default): in this process, one item after the other (models stay cached between points);
* ``process``: each job in a fresh Python subprocess (an OOM kill, a segfault or a CUDA error costs that job
  only), at most ``workers`` at once, killed after ``timeout_s``; children die with their parent;
* ``submitit``: SLURM job arrays through submitit (or its local subprocess executor without SLURM), with
  per-job logs, time limits, GPU requests and requeue on preemption.

Example section (every key optional; ``--set launch.partition=gpu`` overrides one)::

    launch:
      launcher: submitit        # inline (default) | process | submitit
      submitit_cluster: auto    # auto (slurm if sbatch exists, else local) | slurm | local | debug
      partition: gpu
      gpus_per_job: 1
      cpus_per_job: 8
      mem_gb: 64
      time_limit_min: 120
      array_parallelism: 16     # at most 16 array tasks run at once (sbatch --array=0-N%16)
      items_per_job: 1          # group several small items into one job (avoid thousands of tiny jobs)
      requeue: true             # preempted/timed-out jobs are requeued and resume their unfinished items
"""
from __future__ import annotations

import argparse
import copy
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evalkit.core.errors import FieldError
from evalkit.core.typed import apply_overrides, from_dict, to_dict

LAUNCHERS = ("inline", "process", "submitit")
SUBMITIT_CLUSTERS = ("auto", "slurm", "local", "debug")
# submitit asks SLURM for USR2 this long before the time limit (its SlurmExecutor's signal_delay_s); sbatch(1)
# --signal: "the signal may be sent up to 60 seconds earlier than specified"; and a signal that comes before the
# job's Python has installed submitit's handler kills the job: a SLURM time limit must leave room for all three
SIGNAL_DELAY_S = 90
SIGNAL_EARLY_S = 60
JOB_START_S = 30
MIN_SLURM_TIME_LIMIT_MIN = -(-(SIGNAL_DELAY_S + SIGNAL_EARLY_S + JOB_START_S) // 60)


@dataclass(frozen=True, kw_only=True)
class LaunchConfig:
    """How the jobs of one verb run. Only ``submitit`` reads the SLURM fields; only ``process`` reads
    ``timeout_s`` and ``workers``."""

    launcher: Literal["inline", "process", "submitit"] = "inline"
    # process: a job running longer than this is killed and its unfinished items recorded as errors (0: no limit)
    timeout_s: float = 0.0
    # process: jobs running at once (CPU-only work such as FLOPs on meta; anything timed on a GPU needs 1)
    workers: int = 1
    # submitit: "auto" lets submitit pick SLURM when sbatch exists, else its LocalExecutor (subprocesses here);
    # "local" forces the LocalExecutor, "debug" runs in this process (pdb works)
    submitit_cluster: Literal["auto", "slurm", "local", "debug"] = "auto"
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem_gb: float | None = None
    time_limit_min: int = 60
    array_parallelism: int = 64
    items_per_job: int = 1
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    requeue: bool = True
    # max times submitit requeues one job after a preemption/timeout (submitit's own default is 3)
    max_requeues: int = 3
    # shell lines run before each SLURM job (e.g. "module load cuda/12.4", "source .venv/bin/activate")
    setup: tuple[str, ...] = ()
    # block until all jobs end (False: submit, print the job ids and return; re-run later to collect/resume)
    wait: bool = True

    def __post_init__(self) -> None:
        for name in ("cpus_per_job", "time_limit_min", "array_parallelism", "items_per_job", "workers"):
            if getattr(self, name) < 1:
                raise FieldError(f"launch.{name}", f"must be >= 1, got {getattr(self, name)}")
        if self.timeout_s < 0:
            raise FieldError("launch.timeout_s", f"must be >= 0 (0: no limit), got {self.timeout_s}")
        if self.gpus_per_job < 0:
            raise FieldError("launch.gpus_per_job", f"must be >= 0, got {self.gpus_per_job}")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise FieldError("launch.mem_gb", f"must be > 0 or null, got {self.mem_gb}")
        if self.max_requeues < 0:
            raise FieldError("launch.max_requeues", f"must be >= 0, got {self.max_requeues}")
        if (self.launcher == "submitit" and self.submitit_cluster in ("auto", "slurm")
                and self.time_limit_min < MIN_SLURM_TIME_LIMIT_MIN):
            raise FieldError("launch.time_limit_min", (
                f"must be >= {MIN_SLURM_TIME_LIMIT_MIN} for SLURM jobs, got {self.time_limit_min}: submitit asks "
                f"for USR2 {SIGNAL_DELAY_S} s before the limit and SLURM may send it up to {SIGNAL_EARLY_S} s "
                f"earlier, i.e. as the job starts, which requeues the job at once or kills it before Python is up "
                f"(submitit_cluster local or debug have no such limit)"))


def default_section() -> dict[str, Any]:
    """The ``launch:`` section with every key at its default (so ``--set launch.x=...`` always finds the key)."""
    return to_dict(LaunchConfig())


def resolve_launch(section: Mapping[str, Any] | None = None, sets: Sequence[str] = (), *,
                   launcher: str | None = None, where: str = "launch") -> LaunchConfig:
    """Typed options from a ``launch:`` section, ``--set launch.key=value`` overrides (other ``--set`` keys are
    ignored here) and a ``--launcher`` flag (wins over the file). Unknown keys or choices raise ChoiceError
    naming the field, the valid keys and the closest match."""
    data = {"launch": {**default_section(), **copy.deepcopy(dict(section or {}))}}
    ours = [s for s in sets if s.split("=", 1)[0].strip().startswith("launch.")]
    apply_overrides(data, ours)
    if launcher is not None:
        data["launch"]["launcher"] = launcher
    return from_dict(LaunchConfig, data["launch"], where)


def add_launch_args(parser: argparse.ArgumentParser, *, dry_run: bool = True) -> None:
    """The flags every fan-out verb shares: ``--launcher`` and ``--dry-run`` (pass ``dry_run=False`` when the verb
    already has one); ``--set launch.*`` is the verb's own ``--set``."""
    group = parser.add_argument_group("launching (README: Running on a SLURM cluster)")
    group.add_argument("--launcher", choices=LAUNCHERS, default=None,
                       help="inline (default): in this process; process: each job in a fresh subprocess "
                            "(--set launch.timeout_s=..., launch.workers=N); submitit: SLURM job arrays (or "
                            "submitit's local subprocesses without SLURM). Overrides launch.launcher of the file")
    if not dry_run:
        return
    group.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=False,
                       help="print the jobs that would run (one line per job: keys and sbatch options) "
                            "and exit without running anything")


def strip_launch_flags(argv: Sequence[str], count_flag: str) -> list[str]:
    """``argv`` without ``--launcher``, ``count_flag`` (e.g. ``--shards``), ``--set launch.*`` and ``--dry-run``:
    the plain command each job runs."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("--launcher", count_flag):
            i += 2
            continue
        if a == "--set" and i + 1 < len(argv) and argv[i + 1].startswith("launch."):
            i += 2
            continue
        if a.startswith(("--launcher=", f"{count_flag}=", "--set=launch.")) or a in ("--dry-run", "--no-dry-run"):
            i += 1
            continue
        out.append(a)
        i += 1
    return out


def sbatch_options(cfg: LaunchConfig, n_jobs: int = 1) -> dict[str, str]:
    """The sbatch options submitit will write for these settings (shown by ``--dry-run``)."""
    opts: dict[str, str] = {}
    if cfg.partition:
        opts["partition"] = cfg.partition
    if cfg.account:
        opts["account"] = cfg.account
    if cfg.qos:
        opts["qos"] = cfg.qos
    if cfg.constraint:
        opts["constraint"] = cfg.constraint
    opts["time"] = str(cfg.time_limit_min)
    opts["cpus-per-task"] = str(cfg.cpus_per_job)
    if cfg.gpus_per_job:
        opts["gpus-per-node"] = str(cfg.gpus_per_job)
    if cfg.mem_gb is not None:
        opts["mem"] = f"{int(cfg.mem_gb)}GB"
    if n_jobs > 1:
        opts["array"] = f"0-{n_jobs - 1}%{min(cfg.array_parallelism, n_jobs)}"
    if cfg.requeue:
        # submitit asks SLURM for a USR2 signal before the time limit and requeues the job itself
        opts["signal"] = f"USR2@{SIGNAL_DELAY_S}"
    return opts


def submitit_parameters(cfg: LaunchConfig, name: str) -> dict[str, Any]:
    """Keyword arguments for ``AutoExecutor.update_parameters`` (slurm_* keys are ignored by the local one)."""
    params: dict[str, Any] = {"name": name, "timeout_min": cfg.time_limit_min, "cpus_per_task": cfg.cpus_per_job,
                              "gpus_per_node": cfg.gpus_per_job, "nodes": 1, "tasks_per_node": 1,
                              "slurm_array_parallelism": cfg.array_parallelism}
    if cfg.mem_gb is not None:
        params["mem_gb"] = cfg.mem_gb
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(cfg, key):
            params[f"slurm_{key}"] = getattr(cfg, key)
    if cfg.setup:
        params["slurm_setup"] = list(cfg.setup)
    return params


def format_job_line(tag: str, keys: Sequence[str], opts: Mapping[str, str], max_keys: int = 3) -> str:
    """One dry-run line: the job tag, its item keys and the sbatch options."""
    shown = ",".join(keys[:max_keys]) + (f",...(+{len(keys) - max_keys})" if len(keys) > max_keys else "")
    flags = " ".join(f"--{k}={shlex.quote(v)}" for k, v in opts.items())
    return f"job {tag}  items={len(keys)}  keys={shown}  {flags}".rstrip()


def sbatch_preview(cfg: LaunchConfig, folder: str, n_jobs: int, name: str = "evalkit") -> str | None:
    """The ``#SBATCH`` header submitit would write for the array (rendered by submitit's own template, so the
    dry run shows what SLURM will receive); None when this submitit version does not expose the template."""
    try:
        from submitit.slurm.slurm import _make_sbatch_string
    except ImportError:
        return None
    kwargs: dict[str, Any] = {"job_name": name, "time": cfg.time_limit_min, "cpus_per_task": cfg.cpus_per_job,
                              "nodes": 1, "ntasks_per_node": 1, "array_parallelism": cfg.array_parallelism,
                              "map_count": n_jobs if n_jobs > 1 else None}
    if cfg.gpus_per_job:
        kwargs["gpus_per_node"] = cfg.gpus_per_job
    if cfg.mem_gb is not None:
        kwargs["mem"] = f"{int(cfg.mem_gb)}GB"
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(cfg, key):
            kwargs[key] = getattr(cfg, key)
    if cfg.setup:
        kwargs["setup"] = list(cfg.setup)
    try:
        text = _make_sbatch_string(command="python -u -m submitit.core._submit <folder>", folder=folder, **kwargs)
    except TypeError:  # the private template changed its signature
        return None
    return "\n".join(line for line in text.splitlines() if line.startswith("#SBATCH") or line in cfg.setup)
