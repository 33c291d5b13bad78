"""What happens to a sweep on a real one-node SLURM cluster when its job is cancelled (``scancel``), requeued
(``scontrol requeue``), runs into its time limit (SLURM's USR2 before the kill, then submitit's requeue) or its
node is drained and resumed: each time, the same command completes the run with every record exactly once and
nothing that was finished is computed again (record lines, their ``created`` stamps, the job files' attempts).

The sweep: the smoke scaling experiment's two tiny LinGen FLOPs points; its second point sleeps the first time it
runs (``faults:slow_once_then``, injected by ``python tests/fixtures/faults.py``), long enough to be interrupted.
Marked ``slurm`` (``python -m pytest -q -m slurm`` as root).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from slurm_fixtures import (job_files, last_json, raw_lines, run_evalkit, start_evalkit, submitted_ids, wait_until,
                            write_faults)

from evalkit.core.records import read_records

pytestmark = pytest.mark.slurm
SWEEP = ("sweep", "scaling", "--smoke", "--set", "measurements=[flops]", "--set", "flops.fvcore=false", "--set",
         "models=[lingen]", "--no-progress", "--no-plots", "--run-dir", "run", "--launcher", "submitit", "--set",
         "launch.submitit_cluster=slurm")


def slow_sweep(tmp_path: Path, sleep_s: float, *sets: str, slow: int = 1) -> tuple[tuple[str, ...], Path, list[str]]:
    """The command (SWEEP plus ``--set`` options), its faults file (point ``slow``, the second by default,
    sleeps ``sleep_s`` once) and the two point keys in job order."""
    args = (*SWEEP, *(a for s in sets for a in ("--set", s)))
    out = run_evalkit(tmp_path, *args, "--dry-run").stdout
    keys = [k for ln in out.splitlines() if ln.startswith("job ") for k in ln.split("keys=")[1].split()[0].split(",")]
    assert len(keys) == 2, out
    faults = write_faults(tmp_path / "faults.json", {keys[slow]: {
        "fn": "faults:slow_once_then", "sleep_s": sleep_s, "slow_once": str(tmp_path / "slow.marker")}})
    return args, faults, keys


def started_slow(tmp_path: Path, proc) -> list[str]:
    """Wait until the slow point sleeps (the points before it are done); the job ids submitted so far."""
    wait_until(lambda: (tmp_path / "slow.marker").exists() or proc.poll() is not None, 600, "the slow point")
    assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    return submitted_ids(tmp_path / "run")


def check_complete(run_dir: Path, keys: list[str], first_created: dict[str, str]) -> None:
    """Both points have one ok record; the ones the first attempt finished were not written again."""
    recs = read_records([run_dir])
    assert sorted(r["key"].rsplit("/", 1)[0] for r in recs) == sorted(keys)
    assert {r["status"] for r in recs} == {"ok"} and all(r["flops"] > 0 for r in recs)
    ok_lines = [r["key"] for r in raw_lines(run_dir) if r["status"] == "ok"]
    assert sorted(ok_lines) == sorted(r["key"] for r in recs)                       # each computed once
    now = {r["key"]: r["created"] for r in recs}
    assert first_created and all(now[k] == c for k, c in first_created.items())    # and kept as it was


def ok_created(run_dir: Path) -> dict[str, str]:
    return {r["key"]: r["created"] for r in read_records([run_dir]) if r["status"] == "ok"}


def rerun_does_nothing(tmp_path: Path, args: tuple[str, ...], faults: Path, jobs_before: list[str]) -> None:
    again = run_evalkit(tmp_path, *args, faults=faults)
    assert last_json(again)["ran"] == 0 and submitted_ids(tmp_path / "run") == jobs_before


def test_cancelled_job_then_rerun_runs_only_the_unfinished_point(slurm_cluster, tmp_path):
    run = tmp_path / "run"
    args, faults, keys = slow_sweep(tmp_path, 600, "launch.items_per_job=2")
    proc = start_evalkit(tmp_path, tmp_path / "first.log", *args, faults=faults)
    (job,) = started_slow(tmp_path, proc)
    slurm_cluster.cmd("scancel", job)
    assert proc.wait(timeout=300) == 1, (tmp_path / "first.log").read_text()[-3000:]   # an error row: exit 1
    first = ok_created(run)
    assert [k.rsplit("/", 1)[0] for k in first] == keys[:1]
    (state,) = job_files(run).values()
    assert state["slurm_state"].startswith("CANCELLED") and state["items"][keys[0]]["status"] == "done"
    assert state["items"][keys[1]]["status"] == "error" and f"job {job} failed" in state["items"][keys[1]]["message"]
    second = run_evalkit(tmp_path, *args, faults=faults)
    assert last_json(second)["ran"] == 1
    jobs = submitted_ids(run)
    assert len(jobs) == 2 and jobs[0] == job
    new = [j for t, j in job_files(run).items() if j["attempts"][-1]["job_id"] == jobs[1]]
    assert len(new) == 1 and list(new[0]["items"]) == [keys[1]] and new[0]["slurm_state"] == "COMPLETED"
    check_complete(run, keys, first)
    rerun_does_nothing(tmp_path, args, faults, jobs)


def test_requeued_job_resumes_after_its_finished_point(slurm_cluster, tmp_path):
    run = tmp_path / "run"
    args, faults, keys = slow_sweep(tmp_path, 600, "launch.items_per_job=2")
    proc = start_evalkit(tmp_path, tmp_path / "first.log", *args, faults=faults)
    (job,) = started_slow(tmp_path, proc)
    first = ok_created(run)
    slurm_cluster.cmd("scontrol", "requeue", job)
    assert proc.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    (state,) = job_files(run).values()
    assert [a["job_id"] for a in state["attempts"]] == [job, job] and state["attempts"][1]["slurm_restart_count"] == 1
    assert state["items"][keys[0]]["attempt"] == 0 and state["items"][keys[1]]["attempt"] == 1
    assert [r["state"] for r in state["sacct"]] == ["REQUEUED", "COMPLETED"] == \
        [r["state"] for r in slurm_cluster.sacct([job])]
    check_complete(run, keys, first)
    rerun_does_nothing(tmp_path, args, faults, [job])


def test_time_limit_signal_requeues_the_job_which_resumes(slurm_cluster, tmp_path):
    """A 3-minute limit (the shortest the launcher accepts): SLURM sends USR2 90 s before it (sbatch --signal, up
    to 60 s early), submitit's handler requeues the job before the kill, the next run skips the finished point."""
    run = tmp_path / "run"
    args, faults, keys = slow_sweep(tmp_path, 900, "launch.items_per_job=2", "launch.time_limit_min=3")
    proc = start_evalkit(tmp_path, tmp_path / "first.log", *args, faults=faults)
    (job,) = started_slow(tmp_path, proc)
    first = ok_created(run)
    assert proc.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    (state,) = job_files(run).values()
    rows = slurm_cluster.sacct([job])
    assert [r["state"] for r in rows] == [r["state"] for r in state["sacct"]]
    assert rows[0]["state"] == "REQUEUED" and rows[-1]["state"] == "COMPLETED"
    log = "".join(p.read_text() for p in (run / "submitit" / job).glob("*_log.out"))
    assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log and f"Requeued job {job}" in log
    assert len(state["attempts"]) == len(rows) >= 2 and state["items"][keys[0]]["attempt"] == 0
    assert state["items"][keys[1]]["attempt"] >= 1
    check_complete(run, keys, first)
    rerun_does_nothing(tmp_path, args, faults, [job])


def test_drained_node_holds_the_pending_task_until_resumed(slurm_cluster, tmp_path):
    """One task at a time (array throttle 1; one point per task): the node is drained while task 0 runs; task 0
    finishes, task 1 stays pending on the drained node (the command keeps waiting) and runs once the node is
    resumed."""
    import time

    run = tmp_path / "run"
    args, faults, keys = slow_sweep(tmp_path, 20, "launch.items_per_job=1", "launch.array_parallelism=1", slow=0)
    proc = start_evalkit(tmp_path, tmp_path / "first.log", *args, faults=faults)
    node = slurm_cluster.node
    try:
        job0, job1 = started_slow(tmp_path, proc)
        slurm_cluster.cmd("scontrol", "update", f"nodename={node}", "state=drain", "reason=evalkit-test")
        assert slurm_cluster.node_state() == "draining"          # task 0 runs on
        wait_until(lambda: slurm_cluster.node_state() == "drained", 300, "task 0 to end and the node to drain")
        for _ in range(10):      # task 1 is held while the node is drained; the command waits for it
            assert slurm_cluster.cmd("squeue", "-h", "-j", job1, "-o", "%T").split() == ["PENDING"]
            assert proc.poll() is None
            time.sleep(1)
        first = ok_created(run)
        assert [k.rsplit("/", 1)[0] for k in first] == keys[:1]
    finally:
        slurm_cluster.cmd("scontrol", "update", f"nodename={node}", "state=resume")
    assert proc.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert {j["slurm_state"] for j in job_files(run).values()} == {"COMPLETED"}
    check_complete(run, keys, first)
    rerun_does_nothing(tmp_path, args, faults, [job0, job1])
