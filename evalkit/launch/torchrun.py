"""Rank splitting for ``torchrun`` / ``srun`` launches: who am I, which items are mine, which device.

Not a paper figure: this is the plumbing that lets the cost sweep (Fig. 1b/6/20), generation of VBench's prompt
suite and VBench scoring (Table 1/2) fan out over several GPUs. The pattern is the one MLPerf's text-to-video
reference and VBench itself use: ``torchrun`` starts N processes, each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
from its environment, takes the items ``items[rank::world_size]`` and writes its own output shard
(``videos.<rank>.jsonl``, ``results.<tag>.jsonl``), and nothing is exchanged between ranks: there are no
collectives, so results do not depend on the number of processes. A process group (gloo on CPU, nccl on CUDA) is
created only on request (e.g. for a barrier before a merge).

VBench's own multi-GPU mode all-gathers per-video results and re-aggregates them, which changes the score of some
dimensions (subject_consistency becomes a plain mean of per-video means, appearance_style keeps each video's last
frame: VBench's ``vbench/__init__.py`` and the per-dimension ``compute_*`` functions under ``--ngpus``). evalkit
therefore runs VBench single-process per (dimension, shard) unit and merges itself (evalkit.vbench.runner); ranks
and jobs only split whole units (``rank_units``). This module is the one place work is split over ranks:
``generate`` and ``vbench`` both call :func:`shard`.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from evalkit.core.errors import ChoiceError, FieldError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """Where this process sits in a ``torchrun`` (or SLURM ``srun``) launch; rank 0 of 1 when launched plainly."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard_name(self) -> str:
        """File-name tag of this rank's output shard (``"0"`` for a single process, so names stay stable)."""
        return str(self.rank)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise FieldError(name, f"environment variable must be an integer, got {raw!r}") from None


def dist_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read the launcher's environment: torchrun's RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE, else SLURM's
    SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID (an ``srun`` with several tasks), else a single process."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env or "RANK" in env:
        world = _env_int(env, "WORLD_SIZE", 1)
        rank = _env_int(env, "RANK", 0)
        local = _env_int(env, "LOCAL_RANK", rank)
        local_world = _env_int(env, "LOCAL_WORLD_SIZE", world)
    elif _env_int(env, "SLURM_NTASKS", 1) > 1:
        world = _env_int(env, "SLURM_NTASKS", 1)
        rank = _env_int(env, "SLURM_PROCID", 0)
        local = _env_int(env, "SLURM_LOCALID", 0)
        local_world = _env_int(env, "SLURM_NTASKS_PER_NODE", world) if "SLURM_NTASKS_PER_NODE" in env and \
            env["SLURM_NTASKS_PER_NODE"].isdigit() else world
    else:
        return DistInfo()
    if world < 1 or not 0 <= rank < world:
        raise FieldError("RANK", f"rank {rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    if not 0 <= local < max(local_world, 1):
        raise FieldError("LOCAL_RANK", f"local rank {local} is outside 0..{local_world - 1}")
    return DistInfo(rank=rank, world_size=world, local_rank=local, local_world_size=local_world)


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items of ``rank``: ``items[rank::world_size]`` (rank-strided, as MLPerf T2V and VBench do).

    Strided rather than contiguous so that each rank gets a mix of prompts (similar run time per rank) and the
    shards of all ranks are disjoint and together cover every item exactly once.
    """
    if world_size < 1:
        raise FieldError("world_size", f"must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise FieldError("rank", f"must be in 0..{world_size - 1}, got {rank}")
    return list(items[rank::world_size])


def select_device(info: DistInfo | None = None, prefer: Literal["auto", "cpu", "cuda"] = "auto") -> str:
    """The device string for this process: ``cuda:<local_rank>`` when CUDA is used, else ``cpu``.

    ``auto`` picks CUDA when available. With several processes per node each takes the GPU of its local rank;
    asking for CUDA with fewer visible GPUs than local processes is an error (two ranks on one GPU would share
    its memory and distort latency and memory records).
    """
    info = info or dist_info()
    if prefer not in ("auto", "cpu", "cuda"):
        raise ChoiceError("device", prefer, ("auto", "cpu", "cuda"))
    if prefer == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        if prefer == "cuda":
            raise FieldError("device", "cuda was requested but torch.cuda.is_available() is False")
        return "cpu"
    count = torch.cuda.device_count()
    if info.local_rank >= count:
        raise FieldError("LOCAL_RANK", f"local rank {info.local_rank} has no GPU: only {count} visible "
                                       f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    torch.cuda.set_device(info.local_rank)
    return f"cuda:{info.local_rank}"


def init_process_group(info: DistInfo | None = None, backend: Literal["auto", "gloo", "nccl"] = "auto", *,
                       timeout_s: float | None = None) -> bool:
    """Create the default process group when launched with several processes (idempotent).

    ``auto``: nccl when CUDA is available, else gloo. Returns True when a group exists afterwards. Needs the
    rendezvous variables torchrun sets (MASTER_ADDR, MASTER_PORT). ``timeout_s`` bounds every collective,
    ``barrier()`` included (torch's default is 30 min for gloo: too short to wait for another rank's VBench
    dimensions).
    """
    info = info or dist_info()
    if not info.is_distributed:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ChoiceError("backend", backend, ("auto", "gloo", "nccl"))
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise FieldError("MASTER_ADDR", f"{', '.join(missing)} not set: launch with torchrun")
    kwargs = {} if timeout_s is None else {"timeout": datetime.timedelta(seconds=timeout_s)}
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, **kwargs)
    return True


def barrier() -> None:
    """Wait for every rank when a process group exists; a no-op otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------------------
# VBench: which work units may be spread over ranks / jobs
# ---------------------------------------------------------------------------------------------------------------
# The policy (implemented once, in evalkit.vbench.runner: validate/_shards/_merge): the unit of work is one
# (dimension, shard) single-process VBench run. By default a dimension is one shard (VBench's exact single-GPU
# number). Video-list shards (--shard-size N) are allowed only for the dimensions whose aggregate is the plain mean
# of per-video results (runner.MEAN_OF_VIDEOS); frame-weighted ones (subject/background consistency, object_class,
# multiple_objects, scene, appearance_style, ...) are refused, because merging them would change the score, which
# is exactly what VBench's own --ngpus mode does. Ranks (torchrun) or jobs (executors) take whole units:
# ``shard(units, rank, world_size)``; nothing is exchanged, and the merge runs once all unit files exist.


def rank_units(units: Sequence[T], info: DistInfo | None = None) -> list[T]:
    """This process's share of independent work units (``units[rank::world_size]``) under torchrun/srun."""
    info = info or dist_info()
    return shard(units, info.rank, info.world_size)
