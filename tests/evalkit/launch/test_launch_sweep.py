"""The launchers with a real sweep: tiny LinGen/DiT FLOPs points (counted on meta) through ``run_point``."""
from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.sweep.config import load_experiment
from evalkit.launch import run_items
from evalkit.launch.config import LaunchConfig
from evalkit.launch.jobs import read_records_with_provenance
from evalkit.core.records import done_keys, read_records
from evalkit.sweep.plan import plan_points, due_points

FN = "evalkit.sweep.runner:run_point"
VOLATILE = ("created", "traceback")  # and every *seconds field (timings)
SUBMITIT = LaunchConfig(launcher="submitit", submitit_cluster="local", items_per_job=2)


def _specs(durations: str = "[8.5, 17]") -> list:
    exp = load_experiment("scaling", smoke=True, sets=["measurements=[flops]", f"durations_s={durations}"])
    return plan_points(exp)  # lingen, dit (tiny) x 64p x durations


def _stable(records: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE and not k.endswith("seconds")}
                   for r in records), key=lambda r: r["key"])


def _run(run_dir: Path, cfg: LaunchConfig, specs: list[dict], wrap: dict | None = None) -> dict:
    """One submission the way the sweep CLI does it: items = points with measurements not yet recorded."""
    items = due_points(specs, done_keys(run_dir))
    fn = FN
    if wrap:
        items = [{**it.to_json(), **wrap.get(it.key, {}), "wrapped_fn": FN} for it in items]
        fn = "faults:kill_once_then"
    return run_items(items, fn, launch=cfg, run_dir=run_dir, skip_done=set())


@pytest.mark.slow
def test_sweep_through_submitit_local_equals_local(tmp_path):
    specs = _specs("[8.5]")
    # same run folder name: run_id is the folder name
    local = _run(tmp_path / "a" / "run", LaunchConfig(), specs)
    sub = _run(tmp_path / "b" / "run", LaunchConfig(launcher="submitit", submitit_cluster="local"), specs)
    assert local["done"] == sub["done"] == len(specs) == 2 and not sub["errors"] and len(sub["job_ids"]) == 2
    a, b = read_records([tmp_path / "a" / "run"]), read_records([tmp_path / "b" / "run"])
    assert len(a) == 2 and all(r["status"] == "ok" and r["flops"] > 0 for r in a)
    assert _stable(a) == _stable(b)
    assert {r["job_id"] for r in read_records_with_provenance(tmp_path / "b" / "run")} == set(sub["job_ids"])


@pytest.mark.slow
def test_sweep_killed_job_resubmitted_finishes_only_missing_points(tmp_path, faults_on_path):
    specs = _specs()
    run_dir = tmp_path / "run"
    marker = tmp_path / "kill.marker"
    # job 0 = [lingen 8.5 s, lingen 17 s]; it is SIGKILLed when it reaches its second point
    second = due_points(specs, set())[1].key
    first = _run(run_dir, SUBMITIT, specs, wrap={second: {"kill_once": str(marker)}})
    assert marker.exists() and [e["key"] for e in first["errors"]] == [second]
    assert len(read_records([run_dir])) == 3
    again = _run(run_dir, SUBMITIT, specs)
    assert again["submitted"] == 1 and again["done"] == 1 and not again["errors"]
    merged = read_records([run_dir])
    assert len(merged) == len({r["key"] for r in merged}) == 4
    assert {r["key"] for r in merged} == {k for s in specs for k in s.record_keys.values()}
    # a third submission has nothing left to do
    assert _run(run_dir, SUBMITIT, specs)["submitted"] == 0


@pytest.mark.slow
def test_sweep_cli_submitit_equals_inline(tmp_path, capsys):
    from evalkit.sweep.cli import main

    base = ["scaling", "--smoke", "--set", "measurements=[flops]", "--no-progress", "--no-plots"]
    assert main(base + ["--run-dir", str(tmp_path / "a" / "run")]) == 0
    assert main(base + ["--run-dir", str(tmp_path / "b" / "run"), "--launcher", "submitit",
                        "--set", "launch.submitit_cluster=local", "--set", "launch.items_per_job=2"]) == 0
    a, b = read_records([tmp_path / "a" / "run"]), read_records([tmp_path / "b" / "run"])
    assert len(a) == 4 and _stable(a) == _stable(b)
    assert len(list((tmp_path / "b" / "run" / "jobs").glob("*.json"))) == 2
    capsys.readouterr()
    assert main(base + ["--run-dir", str(tmp_path / "b" / "run"), "--launcher", "submitit",
                        "--set", "launch.submitit_cluster=local"]) == 0
    assert '"ran": 0' in capsys.readouterr().out        # resumed: nothing submitted again


@pytest.mark.slow
def test_sweep_cli_process_launcher_records_a_killed_point_as_oom(tmp_path, capsys, monkeypatch,
                                                                                 faults_on_path):
    """--launcher process: a point whose subprocess is SIGKILLed (the kernel OOM killer's signature) gets an
    ``oom`` row for each measurement it did not reach, never a missing row; an oom row is data, so the next run
    does not redo it."""
    import evalkit.launch
    import evalkit.sweep.cli as cli

    marker = tmp_path / "kill.marker"
    real = evalkit.launch.run_items

    def wrapped(items, fn, **kw):   # the first point's subprocess kills itself before measuring
        items = [{**it.to_json(), "wrapped_fn": fn, **({"kill_once": str(marker)} if i == 0 else {})}
                 for i, it in enumerate(items)]
        return real(items, "faults:kill_once_then", **kw)

    base = ["scaling", "--smoke", "--set", "measurements=[flops]", "--no-progress", "--no-plots",
            "--run-dir", str(tmp_path / "run"), "--launcher", "process"]
    monkeypatch.setattr("evalkit.launch.run_items", wrapped)
    assert cli.main(base) == 0        # oom is a finished status, not an error
    recs = read_records([tmp_path / "run"])
    oom = [r for r in recs if r["status"] == "oom"]
    assert len(recs) == 4 and len(oom) == 1 and "SIGKILL" in oom[0]["message"]
    monkeypatch.setattr("evalkit.launch.run_items", real)
    capsys.readouterr()
    assert cli.main(base) == 0
    assert '"ran": 0' in capsys.readouterr().out   # oom is recorded data: not retried unless asked


def test_sweep_rerun_while_jobs_are_on_slurm_reports_nothing_ran(tmp_path, capsys, monkeypatch):
    """A re-run while an earlier ``wait: false`` submission still runs submits nothing, and its summary says
    ``"ran": 0`` (not the number of points it left to the jobs); the sbatch preview names the sweep's job."""
    from evalkit.launch import slurm
    from evalkit.sweep.cli import main

    run = tmp_path / "run"
    base = ["scaling", "--smoke", "--set", "measurements=[flops]", "--set", "durations_s=[8.5]", "--no-progress",
            "--no-plots", "--run-dir", str(run)]
    points = plan_points(load_experiment("scaling", smoke=True, sets=["measurements=[flops]", "durations_s=[8.5]"]))
    import evalkit.sweep.cli as sweep_cli

    real_open_run = sweep_cli.open_run

    def open_run_with_jobs_on_slurm(*args, **kwargs):    # the run folder as a wait:false submission left it
        out = real_open_run(*args, **kwargs)
        (out[0] / "jobs" / "submitted").mkdir(parents=True, exist_ok=True)
        return out

    monkeypatch.setattr(sweep_cli, "open_run", open_run_with_jobs_on_slurm)
    monkeypatch.setattr(slurm, "in_flight_items", lambda run_dir: {pt.key: "41" for pt in points})
    capsys.readouterr()
    assert main(base) == 0
    out = capsys.readouterr()
    assert '"ran": 0' in out.out and "not submitted again" in out.err
    assert not read_records([run])
    assert main(["scaling", "--smoke", "--set", "measurements=[flops]", "--dry-run", "--launcher", "submitit",
                 "--set", "launch.submitit_cluster=slurm", "--run-dir", str(tmp_path / "dry")]) == 0
    text = capsys.readouterr().out + capsys.readouterr().err
    if "sbatch header" in text:      # submitit's private template available in this version
        assert "--job-name=sweep-scaling" in text and "--job-name=evalkit" not in text
