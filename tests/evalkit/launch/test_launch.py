"""Launchers with real processes: inline, one subprocess per job, and submitit's LocalExecutor.

The work item is ``faults:flaky_item`` (deterministic records; can fail, sleep or SIGKILL itself once).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.core.errors import FieldError
from evalkit.launch import run_items, selftest_item
from evalkit.launch.config import LaunchConfig
from evalkit.launch.jobs import finished_items, read_jobs, read_records_with_provenance
from evalkit.core.records import iter_file, read_records

FN = "faults:flaky_item"
pytestmark = pytest.mark.usefixtures("faults_on_path")
VOLATILE = ("created",)


def _items(n: int = 5, **extra) -> list[dict]:
    return [{"key": f"p{i}", "x": i, "n_records": 2, **extra} for i in range(n)]


def _stable(records: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in records), key=lambda r: r["key"])


def _raw_lines(run_dir: Path) -> list[dict]:
    return [rec for p in sorted(run_dir.glob("results*.jsonl")) for rec in iter_file(p)]


def test_submitit_local_gives_same_records_as_local(tmp_path):
    items = _items(5)
    local = run_items(items, FN, launch=LaunchConfig(), run_dir=tmp_path / "local")
    sub = run_items(items, FN, launch=LaunchConfig(launcher="submitit", submitit_cluster="local",
                                                   items_per_job=2), run_dir=tmp_path / "sub")
    assert local["done"] == sub["done"] == 5 and not local["errors"] and not sub["errors"]
    assert len(sub["job_ids"]) == 3  # 5 items, 2 per job
    a, b = read_records([tmp_path / "local"]), read_records([tmp_path / "sub"])
    assert len(a) == 10 and _stable(a) == _stable(b)
    # one results file per job, each job's provenance kept
    assert len(list((tmp_path / "sub").glob("results.*.jsonl"))) == 3
    prov = read_records_with_provenance(tmp_path / "sub")
    assert {r["job_id"] for r in prov} == set(sub["job_ids"])
    assert all(r["job_hostname"] and r["job_tag"] for r in prov)
    # per-job submitit logs under the run dir
    assert all((tmp_path / "sub" / "submitit" / jid).is_dir() for jid in sub["job_ids"])


def test_resubmission_skips_finished_items(tmp_path):
    cfg = LaunchConfig()
    first = run_items(_items(3), FN, launch=cfg, run_dir=tmp_path)
    again = run_items(_items(5), FN, launch=cfg, run_dir=tmp_path)
    assert first["submitted"] == 3 and again["skipped"] == 3 and again["submitted"] == 2
    assert len(_raw_lines(tmp_path)) == 10  # nothing recomputed
    assert finished_items(tmp_path) == {f"p{i}" for i in range(5)}
    # a caller's own notion of done (e.g. record keys) replaces the job files'
    extra = run_items(_items(6), FN, launch=cfg, run_dir=tmp_path, skip_done=lambda d: {"p0", "p5"})
    assert extra["submitted"] == 4 and extra["skipped"] == 2


@pytest.mark.parametrize("cfg", [LaunchConfig(launcher="process"),
                                 LaunchConfig(launcher="submitit", submitit_cluster="local", items_per_job=2)],
                         ids=["process", "submitit-local"])
def test_killed_job_resubmitted_finishes_only_what_was_missing(tmp_path, cfg):
    marker = tmp_path / "killed.marker"
    run_dir = tmp_path / "run"
    items = _items(4)
    items[1]["kill_once"] = str(marker)  # SIGKILLs its own process after writing its first record
    reference = run_items(_items(4), FN, launch=LaunchConfig(), run_dir=tmp_path / "ref")
    assert reference["done"] == 4

    first = run_items(items, FN, launch=cfg, run_dir=run_dir)
    assert marker.exists()
    failed = {e["key"] for e in first["errors"]}
    assert "p1" in failed and "p0" not in failed and first["done"] == 4 - len(failed)
    assert any("SIGKILL" in e["message"] or "failed" in e["message"] for e in first["errors"])
    before = {tag: job for tag, job in read_jobs(run_dir).items()}

    second = run_items(items, FN, launch=cfg, run_dir=run_dir)
    assert second["submitted"] == len(failed) and second["skipped"] == 4 - len(failed)
    assert second["done"] == len(failed) and not second["errors"]
    # jobs of the first submission that finished were not touched again
    after = read_jobs(run_dir)
    for tag, job in before.items():
        if all(st["status"] == "done" for st in job["items"].values()):
            assert after[tag] == job
    # no lost and no duplicated record in the merged set; the killed item's partial record is de-duplicated
    merged = read_records([run_dir])
    assert _stable(merged) == _stable(read_records([tmp_path / "ref"]))
    assert len({r["key"] for r in merged}) == len(merged) == 8
    assert len(_raw_lines(run_dir)) == 8 + 1  # exactly one partial line from the killed attempt


def test_failing_item_is_an_error_and_others_finish(tmp_path):
    items = _items(3)
    items[0]["fail"] = True
    out = run_items(items, FN, launch=LaunchConfig(), run_dir=tmp_path)
    assert out["done"] == 2 and [e["key"] for e in out["errors"]] == ["p0"]
    assert "asked to fail" in out["errors"][0]["message"]
    job = next(iter(read_jobs(tmp_path).values()))
    assert "RuntimeError" in job["items"]["p0"]["traceback"]
    # the failed item is retried on the next run
    items[0]["fail"] = False
    assert run_items(items, FN, launch=LaunchConfig(), run_dir=tmp_path)["submitted"] == 1


def test_dry_run_prints_one_line_per_job_and_runs_nothing(tmp_path):
    lines: list[str] = []
    cfg = LaunchConfig(launcher="submitit", partition="gpu", gpus_per_job=1, time_limit_min=90,
                       array_parallelism=2)
    out = run_items(_items(3), FN, launch=cfg, run_dir=tmp_path / "run", dry_run=True, echo=lines.append)
    jobs = [ln for ln in lines if ln.startswith("job ")]
    assert len(jobs) == 3 and out["submitted"] == 0
    assert all("--partition=gpu" in ln and "--gpus-per-node=1" in ln and "--time=90" in ln for ln in jobs)
    assert "keys=p0" in jobs[0] and "keys=p2" in jobs[2]
    assert any("#SBATCH --array=0-2%2" in ln for ln in lines)
    assert not (tmp_path / "run").exists()


def test_bad_items_fail_before_any_work(tmp_path):
    with pytest.raises(FieldError, match="duplicate key"):
        run_items([{"key": "a"}, {"key": "a"}], FN, launch=LaunchConfig(), run_dir=tmp_path)
    with pytest.raises(FieldError, match="non-empty string key"):
        run_items([{"x": 1}], FN, launch=LaunchConfig(), run_dir=tmp_path)
    with pytest.raises(FieldError, match="cannot import"):
        run_items([{"key": "a"}], "evalkit.launch:nope", launch=LaunchConfig(), run_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_selftest_item_is_deterministic(tmp_path):
    a = selftest_item({"key": "k", "x": 3, "n_records": 2}, tmp_path, "t")
    assert [r["value"] for r in a] == [9, 10]
    assert json.loads((tmp_path / "results.t.jsonl").read_text().splitlines()[0])["key"] == "k/m0"


def test_items_of_jobs_still_on_slurm_are_not_resubmitted(tmp_path, monkeypatch):
    """``wait: false`` then the same command again (with any launcher): items whose SLURM job is pending/running
    are left alone."""
    from evalkit.launch import slurm
    from evalkit.launch.jobs import plan_jobs

    specs = plan_jobs(_items(3), FN, LaunchConfig(launcher="submitit"), tmp_path)
    slurm.record_submission(tmp_path, specs, ["101", "102", "103"], "slurm")
    states = {"101": "RUNNING", "102": "COMPLETED", "103": "PENDING"}
    monkeypatch.setattr(slurm, "slurm_state", lambda folder, job_id: states[job_id])
    monkeypatch.setattr(slurm, "sacct_history", lambda ids: {j: [{"job_id": j, "state": states[j]}] for j in ids})
    assert slurm.in_flight_items(tmp_path) == {"p0": "101", "p2": "103"}
    # the ended job (it never ran p1 here) gets sacct's state, and its unfinished item an error that names it
    jobs = read_jobs(tmp_path)
    assert set(jobs) == {specs[1].tag} and jobs[specs[1].tag]["slurm_state"] == "COMPLETED"
    assert jobs[specs[1].tag]["items"]["p1"]["status"] == "error"
    assert "job 102 ended COMPLETED" in jobs[specs[1].tag]["items"]["p1"]["message"]
    lines: list[str] = []
    out = run_items(_items(3), FN, launch=LaunchConfig(), run_dir=tmp_path, echo=lines.append)
    assert out["in_flight"] == 2 and out["submitted"] == 1 and out["done"] == 1   # only p1 (its job ended)
    assert "not submitted again" in lines[0]
    states.update({"101": "CANCELLED by 0", "103": "PREEMPTED"})   # ended without finishing: submitted again
    again = run_items(_items(3), FN, launch=LaunchConfig(), run_dir=tmp_path)
    assert again["in_flight"] == 0 and again["submitted"] == 2 and again["skipped"] == 1
    assert read_jobs(tmp_path)[specs[0].tag]["sacct"] == [{"job_id": "101", "state": "CANCELLED by 0"}]


@pytest.mark.parametrize("skip_done", [None, "records"])
def test_a_job_that_ends_while_in_flight_is_asked_is_not_run_again(tmp_path, monkeypatch, skip_done):
    """An earlier ``wait: false`` job finishes its items just while a re-run asks SLURM what is in flight (squeue
    no longer lists it): its items are finished, not submitted a second time (the in-flight question comes
    first, the done question after)."""
    from evalkit.launch import slurm
    from evalkit.launch.jobs import plan_jobs, run_job

    items = _items(2)
    (spec,) = plan_jobs(items, FN, LaunchConfig(launcher="submitit", items_per_job=2), tmp_path)
    slurm.record_submission(tmp_path, [spec], ["201"], "slurm")

    def job_ends_meanwhile(run_dir):
        run_job(spec)          # the job writes its records and job file, then leaves the queue
        return {}

    monkeypatch.setattr(slurm, "in_flight_items", job_ends_meanwhile)
    done = (None if skip_done is None else
            lambda folder: {r["key"].rsplit("/m", 1)[0] for r in read_records([folder])})
    out = run_items(items, FN, launch=LaunchConfig(), run_dir=tmp_path, skip_done=done)
    assert out["submitted"] == 0 and out["skipped"] == 2 and out["submitted_keys"] == []
    assert sorted(r["key"] for r in _raw_lines(tmp_path)) == ["p0/m0", "p0/m1", "p1/m0", "p1/m1"]   # each once


def test_sacct_rows_of_arrays_requeues_and_pending_tasks(monkeypatch):
    """sacct --duplicates output as SLURM 22.05 printed it for a requeued array task, a task killed by a signal and
    an array's pending tasks, read back per job id (oldest run first)."""
    from evalkit.launch import slurm

    out = ("2_0|3|REQUEUED|0:0|2026-12-07T01:45:29|2026-12-07T01:45:44|00:00:15|vm\n"
           "2_1|2|FAILED|12:0|2026-12-07T01:45:29|2026-12-07T01:45:44|00:00:15|vm\n"
           "2_0|3|COMPLETED|0:0|2026-12-07T01:46:13|2026-12-07T01:46:24|00:00:11|vm\n"
           "9_[2-3,5%1]|9|PENDING|0:0|Unknown|Unknown|00:00:00|None assigned\n")
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")

    monkeypatch.setattr(slurm.subprocess, "run", fake_run)
    rows = slurm.sacct_history(["2_0", "2_1", "9_3", "9_5", "9_4"])
    assert [r["state"] for r in rows["2_0"]] == ["REQUEUED", "COMPLETED"] and rows["2_0"][0]["job_id_raw"] == "3"
    assert rows["2_1"][0]["exit_code"] == "12:0" and rows["9_3"][0]["state"] == rows["9_5"][0]["state"] == "PENDING"
    assert "9_4" not in rows and calls[0][calls[0].index("--jobs") + 1] == "2,9"
    monkeypatch.setattr(slurm.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("sacct")))
    assert slurm.sacct_history(["2_0"]) is None


@pytest.mark.slow
def test_timed_out_job_is_requeued_and_resumes_its_unfinished_items(tmp_path, monkeypatch):
    """submitit's LocalExecutor sends the time-limit signal (as SLURM does before a timeout or preemption); the
    job's checkpoint() requeues it and the new attempt skips the items the first attempt finished. The signal
    comes 20 s after the start, long after the quick item p0 is done even on a loaded machine (a 2 s margin
    flaked), while p1 sleeps for 60 s."""
    from evalkit.launch import slurm

    make = slurm.make_executor

    def short_limit(cfg, run_dir, name):   # a 30 s time limit, signal 10 s before it (minutes are ints in cfg)
        e = make(cfg, run_dir, name)
        e._executor.update_parameters(timeout_min=30 / 60, signal_delay_s=10)
        return e

    monkeypatch.setattr(slurm, "make_executor", short_limit)
    items = [{"key": "p0", "x": 0}, {"key": "p1", "x": 1, "sleep_once": str(tmp_path / "slept"), "sleep_s": 60},
             {"key": "p2", "x": 2}]
    cfg = LaunchConfig(launcher="submitit", submitit_cluster="local", items_per_job=3)
    out = run_items(items, FN, launch=cfg, run_dir=tmp_path / "run")
    assert out["done"] == 3 and not out["errors"] and len(out["job_ids"]) == 1
    (job,) = read_jobs(tmp_path / "run").values()
    assert len(job["attempts"]) == 2 and job["attempts"][0]["job_id"] == job["attempts"][1]["job_id"]
    assert job["items"]["p0"]["attempt"] == 0                       # not redone by the requeued attempt
    assert job["items"]["p1"]["attempt"] == job["items"]["p2"]["attempt"] == 1
    assert sorted(r["key"] for r in read_records([tmp_path / "run"])) == ["p0/m0", "p1/m0", "p2/m0"]


@pytest.mark.slow   # a few seconds of subprocesses: in the slow group, kept out of the quick run
def test_process_launcher_kills_a_job_past_its_timeout(tmp_path):
    items = [{"key": "slow", "pid_file": str(tmp_path / "pid")}]
    out = run_items(items, "faults:sleep_forever", launch=LaunchConfig(launcher="process", timeout_s=3),
                    run_dir=tmp_path / "run")
    (err,) = out["errors"]
    assert err["key"] == "slow" and "launch.timeout_s=3" in err["message"] and err["oom"] is False
    pid = int((tmp_path / "pid").read_text())
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:        # a zombie (exited, not yet reaped) is not alive
        return fh.read().split(")")[-1].split()[0] != "Z"


PARENT = """
import sys
from pathlib import Path
from evalkit.launch import run_items
from evalkit.launch.config import LaunchConfig
run_items([{"key": "w", "pid_file": sys.argv[2]}], "faults:sleep_forever",
          launch=LaunchConfig(launcher="process"), run_dir=Path(sys.argv[1]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_process_workers_die_with_their_parent(tmp_path):
    """kill -9 of the launching command: its worker must not go on running (and writing into the run)."""
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "run"), str(pid_file)])
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), "the worker never started"
    child = int(pid_file.read_text())
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), f"worker {child} outlived its killed parent"


def test_attempt_of_a_slurm_array_task_names_its_array(monkeypatch):
    """Inside SLURM array task 29_0 (whose own SLURM_JOB_ID is 30, as sbatch numbers array tasks), the job file
    records job 29_0 of array 29 (a real one-node cluster recorded array 30 for task 29_0 and 29 for 29_1)."""
    from evalkit.launch.jobs import _attempt_env

    for var, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "30", "SLURM_ARRAY_JOB_ID": "29",
                       "SLURM_ARRAY_TASK_ID": "0", "SLURM_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(var, value)
    info = _attempt_env()
    assert (info["job_id"], info["array_job_id"], info["array_index"]) == ("29_0", "29", 0)
    assert info["cluster"] == "slurm" and info["slurm_restart_count"] == 1


def test_a_job_squeue_lists_is_in_flight_before_sacct_knows_it(monkeypatch):
    """Right after sbatch, sacct (through slurmdbd) does not know the job yet (submitit reads UNKNOWN) while squeue
    lists it: the state comes from squeue, so a re-run then does not submit the same items again."""
    from evalkit.launch import slurm

    class NotInSacct:
        def __init__(self, folder, job_id):
            self.state = "UNKNOWN"

    squeue = {"5_1": (0, "PENDING\n"), "5_0": (0, ""), "9": (1, "")}   # queued, ended, purged (unknown id)
    monkeypatch.setattr(slurm.submitit, "SlurmJob", NotInSacct)
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, squeue[cmd[cmd.index("--jobs") + 1]][0], stdout=squeue[cmd[cmd.index("--jobs") + 1]][1], stderr=""))
    assert slurm.slurm_state("f/%j", "5_1") == "PENDING"
    assert slurm.slurm_state("f/%j", "5_0") == slurm.slurm_state("f/%j", "9") == "UNKNOWN"   # sacct's answer


ORPHANING_PARENT = """
import sys
from pathlib import Path
from evalkit.launch import run_items
from evalkit.launch.config import LaunchConfig
items = [{"key": f"p{i}", "x": i, "n_records": 2, "wrapped_fn": "faults:flaky_item", "slow_once": sys.argv[2],
          "sleep_s": 12} for i in range(2)]
run_items(items, "faults:slow_once_then", launch=LaunchConfig(launcher="submitit", submitit_cluster="local",
          items_per_job=2), run_dir=Path(sys.argv[1]))
"""


@pytest.mark.slow
def test_local_submitit_jobs_that_outlive_their_killed_parent_are_in_flight(tmp_path):
    """kill -9 of a command whose submitit local job is mid-item: the job goes on (submitit's design) and writes
    its records later; a re-run meanwhile names it and submits none of its items again (no duplicate records),
    and once it has ended a re-run finds everything done."""
    from evalkit.launch.slurm import in_flight_items, local_job_alive

    run, marker = tmp_path / "run", tmp_path / "slow.marker"
    parent = subprocess.Popen([sys.executable, "-c", ORPHANING_PARENT, str(run), str(marker)])
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the job never started its item"
    parent.kill()
    parent.wait()
    (sub,) = [json.loads(p.read_text()) for p in (run / "jobs" / "submitted").glob("*.json")]
    assert sub["cluster"] == "local" and local_job_alive(sub), "the local job died with its parent"
    items = [{"key": f"p{i}", "x": i, "n_records": 2, "wrapped_fn": "faults:flaky_item", "slow_once": str(marker),
              "sleep_s": 12} for i in range(2)]
    cfg = LaunchConfig(launcher="submitit", submitit_cluster="local", items_per_job=2)
    said: list[str] = []
    again = run_items(items, "faults:slow_once_then", launch=cfg, run_dir=run, echo=said.append)
    assert again["submitted"] == 0 and sorted(again["in_flight_keys"]) == ["p0", "p1"]
    assert any(f"pid {sub['job_id']}" in s and "not submitted again" in s for s in said), said
    assert in_flight_items(run) == {"p0": f"pid {sub['job_id']}", "p1": f"pid {sub['job_id']}"}
    deadline = time.monotonic() + 90
    while local_job_alive(sub) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not local_job_alive(sub)
    last = run_items(items, "faults:slow_once_then", launch=cfg, run_dir=run)
    assert last["submitted"] == 0 and last["skipped"] == 2 and last["in_flight"] == 0
    lines = _raw_lines(run)
    assert len(lines) == 4 and len({r["key"] for r in lines}) == 4      # 2 items x 2 records, none twice


def test_a_reused_pid_is_not_a_local_job_in_flight(tmp_path):
    from evalkit.launch.slurm import local_job_alive, proc_start
    me = os.getpid()
    assert local_job_alive({"job_id": str(me), "proc_start": proc_start(me)})
    assert not local_job_alive({"job_id": str(me), "proc_start": "1"})          # same pid, another process
    assert not local_job_alive({"job_id": "999999999"}) and not local_job_alive({"job_id": "x"})


def test_a_changed_item_under_a_finished_key_runs_again(tmp_path):
    """A job file's ``done`` is for the item's content: `generate --shards 2` re-run with other flags has the same
    shard keys, and must not be taken as done (the stale reuse of a finished shard)."""
    cfg = LaunchConfig()
    first = run_items(_items(2), FN, launch=cfg, run_dir=tmp_path)
    same = run_items(_items(2), FN, launch=cfg, run_dir=tmp_path)
    changed = run_items(_items(2, n_records=3), FN, launch=cfg, run_dir=tmp_path)
    assert first["submitted"] == 2 and same["submitted"] == 0 and same["skipped"] == 2
    assert changed["submitted"] == 2 and changed["done"] == 2
    assert {r["key"] for r in read_records([tmp_path])} == {f"p{i}/m{j}" for i in range(2) for j in range(3)}
