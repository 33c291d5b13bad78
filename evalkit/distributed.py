"""Multi-process helpers for one node (``torchrun``) and the VBench sharding policy.

Not a paper figure: this is the plumbing that lets the cost sweep (Fig. 1b/6/20), generation of VBench's prompt
suite and VBench scoring (Table 1/2) fan out over several GPUs. The pattern is the one MLPerf's text-to-video
reference and VBench itself use: ``torchrun`` starts N processes, each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
from its environment, takes the items ``items[rank::world_size]`` and writes its own output shard
(``videos.<rank>.jsonl``, ``results.<tag>.jsonl``), and nothing is exchanged between ranks: there are no
collectives, so results do not depend on the number of processes. A process group (gloo on CPU, nccl on CUDA) is
created only on request (e.g. for a barrier before a merge).

VBench's own multi-GPU mode all-gathers per-video results and re-aggregates them, which changes the score of some
dimensions (subject_consistency becomes a plain mean of per-video means, appearance_style keeps each video's last
frame: see shared/reference/vbench.md section 4.8). evalkit therefore runs VBench single-process per shard and
merges itself (``plan_vbench_shards`` / ``merge_video_shards``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from evalkit.errors import ChoiceError, FieldError

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


def init_process_group(info: DistInfo | None = None, backend: Literal["auto", "gloo", "nccl"] = "auto") -> bool:
    """Create the default process group when launched with several processes (idempotent).

    ``auto``: nccl when CUDA is available, else gloo. Returns True when a group exists afterwards. Needs the
    rendezvous variables torchrun sets (MASTER_ADDR, MASTER_PORT).
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
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
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
# VBench sharding policy
# ---------------------------------------------------------------------------------------------------------------

# Dimensions whose VBench aggregate is the plain mean of the per-video ``video_results`` (single-process code, read
# from vbench/<dim>.py; see shared/reference/vbench.md section 3 table): a video-list shard can be merged exactly
# by taking the mean over the union of per-video results. The value is the divisor VBench applies to that mean.
VIDEO_MEAN_DIMENSIONS: dict[str, float] = {
    "temporal_flickering": 1.0,   # mean (over static-filtered videos)
    "motion_smoothness": 1.0,     # mean
    "dynamic_degree": 1.0,        # fraction of videos judged dynamic (mean of bools)
    "aesthetic_quality": 1.0,     # mean
    "imaging_quality": 100.0,     # per-video MUSIQ 0-100, aggregate = mean / 100
    "temporal_style": 1.0,        # mean
    "overall_consistency": 1.0,   # mean
}
# Every other dimension (subject/background consistency, object_class, multiple_objects, scene, appearance_style
# are frame-weighted; color skips videos; human_action, spatial_relationship) is sharded by dimension only: one
# single-process VBench run per dimension gives VBench's own single-GPU number.


@dataclass(frozen=True, kw_only=True)
class VBenchShard:
    """One single-process VBench job: one dimension over a list of videos (all videos when ``videos`` is None)."""

    dimension: str
    index: int = 0
    count: int = 1
    videos: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.dimension}/shard{self.index}of{self.count}"


def plan_vbench_shards(dimensions: Sequence[str], videos: Sequence[str] | None = None, *,
                       shards_per_dimension: int = 1,
                       policy: Literal["dimension", "videos"] = "dimension") -> list[VBenchShard]:
    """The jobs of a VBench evaluation.

    ``dimension`` (default, exact): one job per dimension over every video. ``videos``: dimensions listed in
    ``VIDEO_MEAN_DIMENSIONS`` are additionally split into ``shards_per_dimension`` strided video lists (merged with
    ``merge_video_shards``); the other dimensions stay one job each, because splitting them would change their
    score. Dimensions are evaluated in the given order; duplicates are an error.
    """
    if policy not in ("dimension", "videos"):
        raise ChoiceError("shard_policy", policy, ("dimension", "videos"))
    if len(set(dimensions)) != len(dimensions):
        dup = sorted({d for d in dimensions if list(dimensions).count(d) > 1})
        raise FieldError("dimensions", f"listed more than once: {dup}")
    if shards_per_dimension < 1:
        raise FieldError("shards_per_dimension", f"must be >= 1, got {shards_per_dimension}")
    out: list[VBenchShard] = []
    for dim in dimensions:
        n = shards_per_dimension if policy == "videos" and dim in VIDEO_MEAN_DIMENSIONS else 1
        if n > 1:
            if videos is None:
                raise FieldError("videos", f"splitting {dim!r} by video list needs the list of videos")
            n = min(n, max(len(videos), 1))
            out += [VBenchShard(dimension=dim, index=i, count=n, videos=tuple(shard(list(videos), i, n)))
                    for i in range(n)]
        else:
            out.append(VBenchShard(dimension=dim, videos=None if videos is None else tuple(videos)))
    return out


def merge_video_shards(dimension: str, shard_video_results: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge the per-video results (VBench's ``[aggregate, [per_video_dict, ...]]`` second element) of the video
    shards of one dimension into the score VBench gives for all videos in one process.

    Each per-video dict needs ``video_path`` and ``video_results``. A video present in two shards is an error
    (shards must be disjoint); returns ``{"dimension", "score", "n_evaluated"}``.
    """
    if dimension not in VIDEO_MEAN_DIMENSIONS:
        raise ChoiceError("dimension", dimension, VIDEO_MEAN_DIMENSIONS,
                          what="dimension that can be merged from video shards (others: shard by dimension)")
    values: dict[str, float] = {}
    for i, per_video in enumerate(shard_video_results):
        for entry in per_video:
            path = str(entry["video_path"])
            if path in values:
                raise FieldError(f"shard {i}", f"video {path} appears in more than one shard of {dimension}")
            values[path] = float(entry["video_results"])
    if not values:
        raise FieldError(dimension, "no per-video results in any shard")
    score = sum(values.values()) / len(values) / VIDEO_MEAN_DIMENSIONS[dimension]
    return {"dimension": dimension, "score": score, "n_evaluated": len(values)}
