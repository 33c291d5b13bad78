"""torchrun helpers: rank/world from the environment, rank-strided sharding, device choice, gloo on CPU with
two real processes, and splitting whole VBench (dimension, shard) units over ranks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from evalkit.launch.torchrun import DistInfo, dist_info, rank_units, select_device, shard
from evalkit.core.errors import ChoiceError, FieldError


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
    from evalkit.launch.torchrun import dist_info, init_process_group, shard, barrier, destroy_process_group
    info = dist_info()
    assert init_process_group(info, "gloo", timeout_s=60)
    mine = shard(list(range(11)), info.rank, info.world_size)
    got = [None] * info.world_size
    dist.all_gather_object(got, {"rank": info.rank, "local_rank": info.local_rank, "items": mine})
    barrier()
    if info.is_main:
        print("RESULT " + json.dumps(got))
    destroy_process_group()
""")


@pytest.mark.slow   # a few seconds of subprocesses: in the slow group, kept out of the quick run
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


def test_rank_units_split_whole_vbench_units():
    units = [("subject_consistency", 0), ("imaging_quality", 0), ("imaging_quality", 1), ("color", 0)]
    env = {"RANK": "1", "WORLD_SIZE": "2"}
    assert rank_units(units, dist_info(env)) == [("imaging_quality", 0), ("color", 0)]
    assert rank_units(units, DistInfo()) == units
