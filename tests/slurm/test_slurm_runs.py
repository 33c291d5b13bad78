"""The submitit launcher against a real one-node SLURM cluster: the default sweep and a generation run as job
arrays (the array throttle honoured, results equal to an inline run), ``launch.wait: false`` then collecting by
re-running, and the job provenance files (SLURM job ids, sacct's states).

Marked ``slurm``: run with ``python -m pytest -q -m slurm`` as root (the session fixture starts the cluster with
tests/slurm/cluster.sh and fails when it cannot).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from slurm_fixtures import (job_files, last_json, max_overlap, raw_lines, run_evalkit, squeue_sampler, stable,
                            submitted_ids, wait_until, write_faults)

from evalkit.launch.jobs import read_records_with_provenance
from evalkit.launch.slurm import in_flight_items
from evalkit.core.records import read_records

pytestmark = pytest.mark.slurm
SLURM = ("--launcher", "submitit", "--set", "launch.submitit_cluster=slurm")
QUIET = ("--no-progress", "--no-plots")
# the smoke sweep's four tiny FLOPs points (fvcore's jit trace off: seconds per job saved, FLOPs still counted)
SMOKE = ("sweep", "scaling", "--smoke", "--set", "measurements=[flops]", "--set", "flops.fvcore=false", *QUIET)
PROMPTS = ["a red square moving left", "a blue circle moving up", "a green triangle moving down"]


def dry_run_keys(cwd: Path, *args: str) -> list[list[str]]:
    """The item keys of each job, as ``--dry-run`` prints them (``job <tag> items=N keys=a,b ...``)."""
    out = run_evalkit(cwd, *args, "--dry-run").stdout
    return [ln.split("keys=")[1].split()[0].split(",") for ln in out.splitlines() if ln.startswith("job ")]


def check_provenance(run_dir: Path, node: str, states: set[str] = frozenset({"COMPLETED"})) -> dict[str, dict]:
    """Every job file names its SLURM job (array task id, the array's id, this node) and sacct's final state."""
    ids = submitted_ids(run_dir)
    jobs = job_files(run_dir)
    assert len(jobs) == len(ids)
    for job in jobs.values():
        last = job["attempts"][-1]
        assert last["job_id"] in ids and last["cluster"] == "slurm" and last["hostname"] == node
        assert last["array_job_id"] == last["job_id"].split("_")[0]
        assert job["slurm_state"] in states and job["sacct"][-1]["job_id"] == last["job_id"]
        assert job["sacct"][-1]["state"] == job["slurm_state"] and job["sacct"][-1]["node_list"] == node
    return jobs


def test_default_sweep_as_a_throttled_job_array_equals_inline(slurm_cluster, tmp_path):
    """``python -m evalkit sweep`` (62 records: FLOPs counted on meta, latency/memory/max_frames skipped without
    CUDA) inline and as one SLURM array of 3 jobs (8 points each) at most 1 at a time on a 2-CPU node."""
    run_evalkit(tmp_path, "sweep", "--run-dir", "inline/run", *QUIET)
    with squeue_sampler(slurm_cluster) as seen:
        run_evalkit(tmp_path, "sweep", "--run-dir", "slurm/run", *QUIET, *SLURM, "--set", "launch.items_per_job=8",
                    "--set", "launch.array_parallelism=1")
    a, b = read_records([tmp_path / "inline" / "run"]), read_records([tmp_path / "slurm" / "run"])
    assert len(a) == len(b) >= 60 and stable(a) == stable(b)
    assert sum(r["status"] == "ok" and r["flops"] > 0 for r in b) == 20
    ids = submitted_ids(tmp_path / "slurm" / "run")
    assert len(ids) == 3 and len({i.split("_")[0] for i in ids}) == 1     # one array
    rows = slurm_cluster.sacct(ids)
    assert sorted(r["job_id"] for r in rows) == sorted(ids) and {r["state"] for r in rows} == {"COMPLETED"}
    # the throttle, not the node (2 CPUs, 1 per job), kept it to one task at a time
    assert max_overlap(rows) == 1 and seen.running_max == 1 and "JobArrayTaskLimit" in seen.reasons
    check_provenance(tmp_path / "slurm" / "run", slurm_cluster.node)
    prov = read_records_with_provenance(tmp_path / "slurm" / "run")
    assert {r["job_id"] for r in prov} == set(ids)


def _frames(path: Path) -> np.ndarray:
    return np.load(str(path) + ".frames.npy")


def _manifest(out: Path) -> dict[str, dict]:
    """Video records by file, without what differs between two encodes of the same frames (mp4 bytes are not
    reproducible here), where and when."""
    recs = [json.loads(ln) for p in sorted(out.glob("videos*.jsonl")) for ln in p.read_text().splitlines()]
    drop = {"created", "mp4_sha256", "mp4_bytes", "rank", "world_size"}
    return {r["file"]: {k: v for k, v in r.items() if k not in drop and "seconds" not in k} for r in recs}


def test_generate_shards_as_a_job_array_equal_one_process(slurm_cluster, tmp_path, tiny_checkpoint, monkeypatch):
    """``python -m evalkit generate --shards 3`` as a SLURM array (at most 2 at once) writes the frames one
    process writes, every video once; running it again submits nothing."""
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    gen = ("generate", "--checkpoint", str(tiny_checkpoint), "--prompts", "prompts.txt", "--samples", "2",
           "--steps", "3", "--cfg-scale", "2.0", "--batch-size", "1", "--no-progress")
    monkeypatch.setenv("EVALKIT_TEST_SAVE_FRAMES", "1")
    run_evalkit(tmp_path, *gen, "--out", "one", faults=write_faults(tmp_path / "none.json", {}))
    shards = {f"generate/shard{r}of3": {"fn": "faults:saving_frames_then"} for r in range(3)}
    faults = write_faults(tmp_path / "frames.json", shards)
    cmd = (*gen, "--out", "jobs", *SLURM, "--shards", "3", "--set", "launch.array_parallelism=2")
    with squeue_sampler(slurm_cluster) as seen:
        out = last_json(run_evalkit(tmp_path, *cmd, faults=faults))
    assert out["done"] == 3 and not out["errors"] and len(out["job_ids"]) == 3
    rows = slurm_cluster.sacct(out["job_ids"])
    assert {r["state"] for r in rows} == {"COMPLETED"} and max_overlap(rows) <= 2 and seen.running_max <= 2
    one, jobs = _manifest(tmp_path / "one"), _manifest(tmp_path / "jobs")
    assert sorted(one) == sorted(f"{p}-{i}.mp4" for p in PROMPTS for i in range(2)) and one == jobs
    assert sorted(p.name for p in (tmp_path / "jobs").glob("videos*.jsonl")) == [f"videos.{r}.jsonl" for r in range(3)]
    for name in one:
        np.testing.assert_array_equal(_frames(tmp_path / "one" / name), _frames(tmp_path / "jobs" / name), name)
    names = sorted(one)     # different prompts give different videos: the comparison is not vacuous
    assert not np.array_equal(_frames(tmp_path / "one" / names[0]), _frames(tmp_path / "one" / names[2]))
    check_provenance(tmp_path / "jobs.jobs", slurm_cluster.node)
    again = last_json(run_evalkit(tmp_path, *cmd, faults=faults))
    assert again["submitted"] == 0 and again["skipped"] == 3 and not again["job_ids"]


def test_wait_false_submits_and_returns_then_a_rerun_collects(slurm_cluster, tmp_path):
    """``--set launch.wait=false``: the command returns with the jobs still on SLURM; running it again while they
    run submits nothing; once they have ended, running it again collects every record once and the job files
    get sacct's states."""
    args = (*SMOKE, "--run-dir", "run", *SLURM, "--set", "launch.items_per_job=2", "--set", "launch.wait=false")
    jobs = dry_run_keys(tmp_path, *args)
    faults = write_faults(tmp_path / "faults.json", {jobs[0][1]: {"fn": "faults:slow_once_then", "sleep_s": 45,
                                                                  "slow_once": str(tmp_path / "slow.marker")}})
    first = run_evalkit(tmp_path, *args, faults=faults)
    # at once: every item is in flight (sacct learns of new jobs from slurmdbd only a moment later: squeue knows)
    assert set(in_flight_items(tmp_path / "run")) == {k for keys in jobs for k in keys}
    ids = submitted_ids(tmp_path / "run")
    assert len(ids) == 2 and "submitted 2 job(s) (slurm)" in first.stderr
    assert slurm_cluster.cmd("squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i").split() == ids   # not ended
    wait_until(lambda: (tmp_path / "slow.marker").exists(), 300, "the slow item to start")
    second = run_evalkit(tmp_path, *args, faults=faults)
    assert "still pending/running on SLURM" in second.stderr and "not submitted again" in second.stderr
    assert submitted_ids(tmp_path / "run") == ids
    wait_until(lambda: not slurm_cluster.cmd("squeue", "-h", "-j", ",".join(ids)).strip(), 600, "the jobs to end")
    third = run_evalkit(tmp_path, *args, faults=faults)
    assert last_json(first)["ran"] == 0 and last_json(second)["ran"] == 0   # left to the jobs: not run here
    assert last_json(third)["ran"] == 0 and submitted_ids(tmp_path / "run") == ids
    recs = read_records([tmp_path / "run"])
    assert len(recs) == 4 and {r["status"] for r in recs} == {"ok"}
    assert sorted(r["key"] for r in raw_lines(tmp_path / "run")) == sorted(r["key"] for r in recs)  # each once
    check_provenance(tmp_path / "run", slurm_cluster.node)   # recorded by the collecting run
