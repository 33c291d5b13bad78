"""torchrun helpers: rank/world from the environment, rank-strided sharding, device choice, gloo on CPU with
two real processes, and the VBench sharding policy (shard by dimension; split video lists only where the merge is
exact)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from evalkit.distributed import (VIDEO_MEAN_DIMENSIONS, DistInfo, dist_info, merge_video_shards,
                                 plan_vbench_shards, select_device, shard)
from evalkit.errors import ChoiceError, FieldError


def test_dist_info_from_torchrun_slurm_and_plain_env():
    assert dist_info({}) == DistInfo()
    info = dist_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (3, 4, 1, 2)
    assert info.is_distributed and not info.is_main and info.shard_name == "3"
    slurm = dist_info({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1"})
    assert (slurm.rank, slurm.world_size, slurm.local_rank) == (1, 2, 1)
    with pytest.raises(FieldError, match="RANK"):
        dist_info({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(FieldError, match="integer"):
        dist_info({"RANK": "x", "WORLD_SIZE": "2"})


@pytest.mark.parametrize("n,world", [(0, 1), (1, 3), (10, 3), (7, 7), (4720, 8)])
def test_shards_are_disjoint_and_cover_every_item(n, world):
    items = list(range(n))
    parts = [shard(items, r, world) for r in range(world)]
    assert sorted(x for p in parts for x in p) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1      # balanced
    assert parts[0] == items[0::world]                            # MLPerf/VBench rank-strided order


def test_shard_bad_rank():
    with pytest.raises(FieldError, match="rank"):
        shard([1, 2], 2, 2)
    with pytest.raises(FieldError, match="world_size"):
        shard([1, 2], 0, 0)


def test_select_device_cpu():
    assert select_device(DistInfo(), "cpu") == "cpu"
    with pytest.raises(ChoiceError, match="cuda"):
        select_device(DistInfo(), "gpu")
    import torch

    if not torch.cuda.is_available():
        assert select_device(DistInfo(), "auto") == "cpu"
        with pytest.raises(FieldError, match="cuda"):
            select_device(DistInfo(), "cuda")


SCRIPT = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    from evalkit.distributed import dist_info, init_process_group, shard, barrier, destroy_process_group
    info = dist_info()
    assert init_process_group(info, "gloo")
    mine = shard(list(range(11)), info.rank, info.world_size)
    got = [None] * info.world_size
    dist.all_gather_object(got, {"rank": info.rank, "local_rank": info.local_rank, "items": mine})
    barrier()
    if info.is_main:
        print("RESULT " + json.dumps(got))
    destroy_process_group()
""")


def test_torchrun_two_processes_gloo_cpu(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    got = json.loads(line[len("RESULT "):])
    assert [g["rank"] for g in got] == [0, 1] and [g["local_rank"] for g in got] == [0, 1]
    assert got[0]["items"] == list(range(0, 11, 2)) and got[1]["items"] == list(range(1, 11, 2))


# --- VBench sharding policy -------------------------------------------------------------------------------------

VIDEOS = [f"a cat-{i}.mp4" for i in range(5)] + [f"a dog-{i}.mp4" for i in range(5)]


def test_vbench_default_policy_is_one_job_per_dimension():
    jobs = plan_vbench_shards(["subject_consistency", "temporal_flickering"], VIDEOS)
    assert [j.key for j in jobs] == ["subject_consistency/shard0of1", "temporal_flickering/shard0of1"]
    assert all(j.videos == tuple(VIDEOS) for j in jobs)


def test_vbench_video_policy_splits_only_exactly_mergeable_dimensions():
    jobs = plan_vbench_shards(["subject_consistency", "imaging_quality", "dynamic_degree"], VIDEOS,
                              shards_per_dimension=3, policy="videos")
    by_dim: dict[str, list] = {}
    for j in jobs:
        by_dim.setdefault(j.dimension, []).append(j)
    assert len(by_dim["subject_consistency"]) == 1          # frame-weighted: splitting would change the score
    assert len(by_dim["imaging_quality"]) == len(by_dim["dynamic_degree"]) == 3
    vids = [v for j in by_dim["imaging_quality"] for v in j.videos]
    assert sorted(vids) == sorted(VIDEOS) and len(set(vids)) == len(VIDEOS)
    assert "subject_consistency" not in VIDEO_MEAN_DIMENSIONS and "appearance_style" not in VIDEO_MEAN_DIMENSIONS
    with pytest.raises(FieldError, match="more than once"):
        plan_vbench_shards(["color", "color"])
    with pytest.raises(ChoiceError, match="shard_policy"):
        plan_vbench_shards(["color"], policy="video")


def test_merge_video_shards_equals_single_process_mean():
    vals = {v: (i * 7 % 10) / 10 for i, v in enumerate(VIDEOS)}
    per_video = [{"video_path": v, "video_results": s} for v, s in vals.items()]
    shards = [shard(per_video, r, 3) for r in range(3)]
    merged = merge_video_shards("aesthetic_quality", shards)
    assert merged["n_evaluated"] == 10
    assert merged["score"] == pytest.approx(sum(vals.values()) / 10, abs=1e-15)
    # imaging_quality: per-video MUSIQ 0-100, VBench's aggregate divides the mean by 100
    iq = merge_video_shards("imaging_quality", [[{"video_path": "a", "video_results": 50.0}],
                                                [{"video_path": "b", "video_results": 70.0}]])
    assert iq["score"] == pytest.approx(0.6)
    # dynamic_degree per-video results are booleans: the score is the fraction True
    dd = merge_video_shards("dynamic_degree", [[{"video_path": "a", "video_results": True}],
                                               [{"video_path": "b", "video_results": False}]])
    assert dd["score"] == 0.5
    with pytest.raises(ChoiceError, match="subject_consistency"):
        merge_video_shards("subject_consistency", shards)
    with pytest.raises(FieldError, match="more than one shard"):
        merge_video_shards("aesthetic_quality", [per_video, per_video[:1]])
