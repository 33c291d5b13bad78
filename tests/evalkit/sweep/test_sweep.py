"""The sweep end to end on tiny models: records, resume, new runs on changed configs, isolation, error rows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evalkit.core.records import read_records
from evalkit.sweep import cli

EXP = {"kind": "sweep", "name": "t", "models": ["lingen", "dit"], "flavors": ["tiny"], "resolutions": {"64p": [64, 112]},
       "durations_s": [8.5, 17], "measurements": ["flops", "memory"], "flops": {"fvcore": False}}


def write(tmp_path: Path, data: dict = EXP) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text("# test experiment\n" + yaml.safe_dump(data))
    return path


def sweep(capsys, *argv: str) -> tuple[int, dict]:
    rc = cli.main([*argv, "--no-progress", "--no-plots"])
    lines = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(lines[-1])


def results_lines(run_dir: str) -> int:
    return sum(len(p.read_text().splitlines()) for p in Path(run_dir).glob("results*.jsonl"))


def test_records_have_the_schema(tmp_path: Path, capsys) -> None:
    rc, summ = sweep(capsys, str(write(tmp_path)), "--runs-root", str(tmp_path / "runs"))
    assert rc == 0 and summ["records"] == 2 * 2 * 2 and summ["ran"] == 8
    recs = read_records([summ["run_dir"]])
    manifest = json.loads((Path(summ["run_dir"]) / "manifest.json").read_text())
    assert manifest["config"]["models"] == ["lingen", "dit"] and manifest["git_sha"] and manifest["hardware"]
    for r in recs:
        for k in ("key", "kind", "experiment", "run_id", "status", "message", "created", "model", "flavor",
                  "variant", "height", "width", "duration_s", "fps", "num_frames", "latent_frames", "num_tokens",
                  "params", "batch", "dtype", "device", "measurement", "measurement_version"):
            assert k in r, k
        if r["measurement"] == "flops":
            assert r["status"] == "ok" and r["flops"] > 0 and r["flops_convention"] == "2*MAC"
            assert r["flops_source"] == "evalkit.measure.flop_counter(meta)" and abs(r["flops_rel_diff"]) <= 0.01
            assert r["flops_method"] == "per_layer_kind" and r["flops_layers_counted"] == r["flops_layer_kinds"]
            assert r["steps"] == 50 and r["cfg_factor"] == 2
        else:  # no CUDA on the test box: a row with the reason, never a missing row or a zero
            import torch

            if not torch.cuda.is_available():
                assert r["status"] == "skipped" and "no CUDA" in r["message"]
                assert "mem_peak_allocated_bytes" not in r


def test_resume_skips_done_points(tmp_path: Path, capsys) -> None:
    path, runs = str(write(tmp_path)), str(tmp_path / "runs")
    _, first = sweep(capsys, path, "--runs-root", runs)
    n = results_lines(first["run_dir"])
    _, second = sweep(capsys, path, "--runs-root", runs)
    assert second["run_dir"] == first["run_dir"] and second["resumed"]
    assert second["ran"] == 0 and results_lines(second["run_dir"]) == n
    # an interrupted run: drop the last record, the re-run computes exactly that one
    res = Path(first["run_dir"]) / "results.jsonl"
    res.write_text("\n".join(res.read_text().splitlines()[:-1]) + "\n")
    _, third = sweep(capsys, path, "--runs-root", runs)
    assert third["ran"] == 1 and third["records"] == first["records"]


def test_changed_config_never_mixes_into_an_old_run(tmp_path: Path, capsys) -> None:
    path, runs = str(write(tmp_path)), str(tmp_path / "runs")
    _, first = sweep(capsys, path, "--runs-root", runs)
    _, other = sweep(capsys, path, "--runs-root", runs, "--set", "sampling.steps=100")
    assert other["run_dir"] != first["run_dir"] and other["ran"] == first["ran"]
    _, forced = sweep(capsys, path, "--runs-root", runs, "--new-run")
    assert forced["run_dir"] not in (first["run_dir"], other["run_dir"]) and not forced["resumed"]
    # the original config still resumes the newest matching run
    _, again = sweep(capsys, path, "--runs-root", runs)
    assert again["run_dir"] == forced["run_dir"] and again["ran"] == 0
    with pytest.raises(Exception, match="--new-run"):
        cli.main([path, "--run-dir", first["run_dir"], "--set", "sampling.steps=7", "--no-progress"])


def test_error_is_a_row_and_sets_the_exit_code(tmp_path: Path, capsys, monkeypatch) -> None:
    import evalkit.measure.flops as flops

    def boom(point, ctx):
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(flops, "run", boom)
    path, runs = str(write(tmp_path)), str(tmp_path / "runs")
    rc, summ = sweep(capsys, path, "--runs-root", runs)
    assert rc == 1 and summ["status"]["error"] == 4 and summ["status"]["skipped"] == 4
    errs = [r for r in read_records([summ["run_dir"]]) if r["status"] == "error"]
    assert all("synthetic failure" in r["message"] for r in errs)
    rc, summ = sweep(capsys, path, "--runs-root", runs, "--keep-going")
    assert rc == 0 and summ["ran"] == 4   # errors are retried on resume, finished rows are not
    monkeypatch.undo()
    rc, summ = sweep(capsys, path, "--runs-root", runs)
    assert rc == 0 and summ["status"].get("error", 0) == 0 and summ["status"]["ok"] == 4


@pytest.mark.slow   # a few seconds of subprocesses: in the slow group, kept out of the quick run
def test_process_launcher_runs_points_in_subprocesses(tmp_path: Path, capsys) -> None:
    data = {**EXP, "models": ["dit"], "durations_s": [17]}
    rc, summ = sweep(capsys, str(write(tmp_path, data)), "--runs-root", str(tmp_path / "runs"), "--launcher", "process")
    assert rc == 0 and summ["records"] == 2
    recs = read_records([summ["run_dir"]])
    assert {r["measurement"]: r["status"] for r in recs}["flops"] == "ok"


def test_plots_written(tmp_path: Path, capsys) -> None:
    rc = cli.main([str(write(tmp_path)), "--runs-root", str(tmp_path / "runs"), "--no-progress"])
    summ = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and summ["plots"] and all(Path(p).stat().st_size > 1000 for p in summ["plots"])


@pytest.mark.parametrize("script, status", [("exit 3", "error"), ("kill -9 $$", "oom")])
def test_isolated_crash_costs_one_point_and_is_a_row(tmp_path: Path, capsys, monkeypatch, script: str,
                                                     status: str) -> None:
    """A child that dies without writing (crash, or SIGKILL as from the kernel's OOM killer) leaves rows."""
    fake = tmp_path / "fake_python"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(cli.sys, "executable", str(fake))
    data = {**EXP, "models": ["dit"], "durations_s": [17]}
    rc, summ = sweep(capsys, str(write(tmp_path, data)), "--runs-root", str(tmp_path / "runs"), "--launcher", "process")
    recs = read_records([summ["run_dir"]])
    assert len(recs) == 2 and {r["status"] for r in recs} == {status}
    assert all("point job failed: subprocess" in r["message"] for r in recs)
    assert rc == (1 if status == "error" else 0)


def test_isolated_retry_records_the_new_failure(tmp_path: Path, capsys, monkeypatch) -> None:
    """An errored point is retried on resume; if the retry dies too, its own reason is recorded (not the old row)."""
    fake = tmp_path / "fake_python"
    monkeypatch.setattr(cli.sys, "executable", str(fake))
    data = {**EXP, "models": ["dit"], "durations_s": [17]}
    args = (str(write(tmp_path, data)), "--runs-root", str(tmp_path / "runs"), "--launcher", "process")
    fake.write_text("#!/bin/sh\necho first-failure >&2\nexit 3\n")
    fake.chmod(0o755)
    _, summ = sweep(capsys, *args)
    fake.write_text("#!/bin/sh\necho second-failure >&2\nexit 4\n")
    _, summ2 = sweep(capsys, *args)
    assert summ2["run_dir"] == summ["run_dir"]
    recs = read_records([summ["run_dir"]])
    assert len(recs) == 2 and all(r["status"] == "error" for r in recs)
    assert all("second-failure" in r["message"] and "exit status 4" in r["message"] for r in recs)


def _flops_rec(model: str, flavor: str, params: int, dur: float, flops: float) -> dict:
    return {"kind": "cost", "measurement": "flops", "status": "ok", "model": model, "flavor": flavor,
            "params": params, "resolution": "512p", "height": 512, "width": 896, "duration_s": dur,
            "num_tokens": 1, "flops": flops, "flops_analytic": flops, "flops_rel_diff": 0.0, "key": f"{model}{flavor}{dur}"}


def test_summary_names_the_largest_point_by_size_and_keeps_columns_apart() -> None:
    """Finding: the size ladder's summary named '1b' as its largest point (it is 8b) and long model names ran into
    the flavor column ('lingen-no-review4b')."""
    from evalkit.sweep import summary

    recs = [_flops_rec(m, f, p, 17, x * (3 if m == "dit" else 1)) for f, p, x in
            (("1b", 10**9, 1.0), ("8b", 8 * 10**9, 8.0), ("2b", 2 * 10**9, 2.0)) for m in ("dit", "lingen")]
    recs.append(_flops_rec("lingen-no-review", "4b", 4 * 10**9, 17, 4.0))
    line = summary.summary_json(recs, experiment="x", run_dir="r", resumed=False, seconds=0, ran=0,
                                skipped_done=0, plots=[])
    assert line["largest_point"] == "8b 512x896 17s"
    table = summary.table(recs)
    assert "lingen-no-review  4b" in table and "lingen-no-review4b" not in table


def test_run_plots_follow_the_axis_the_experiment_varies(tmp_path: Path) -> None:
    """Finding: the size ladder's run plot drew every point at 17 s; a ladder is plotted against parameters."""
    from evalkit.sweep import plots

    ladder = [_flops_rec("dit", f, p, 17, x) for f, p, x in (("1b", 10**9, 1.0), ("2b", 2 * 10**9, 2.0))]
    scaling = [_flops_rec("dit", "4b", 4 * 10**9, d, d) for d in (8.5, 17)]
    ablation = [_flops_rec(m, "4b", 4 * 10**9, 17, 1.0) for m in ("lingen", "lingen-no-tesa")]
    assert [plots.axis_of(r) for r in (scaling, ladder, ablation)] == ["duration", "params", "model"]
    names = [Path(p).name for p in plots.write_plots(ladder, tmp_path)]
    assert names == ["flops_vs_params.png"]


def test_config_hash_leaves_defaults_out_and_resume_checks_the_stored_config(tmp_path: Path) -> None:
    """A setting added to the schema later (at its default) leaves the hash as it was, so a run published before
    it resumes; a default that changed since is caught by the stored resolved config."""
    import dataclasses

    from evalkit.core.runs import config_hash, open_run
    from evalkit.core.typed import to_dict
    from evalkit.sweep.config import NOT_HASHED, load_experiment

    exp = load_experiment(write(tmp_path))
    cfg = exp.config
    h = exp.config_hash()
    assert h == config_hash(cfg, exclude=NOT_HASHED)
    # a value at its default hashes like a config that never had the key: written out or left out, same hash
    same = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, warmup=cfg.latency.warmup))
    assert config_hash(same, exclude=NOT_HASHED) == h
    changed = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, warmup=cfg.latency.warmup + 1))
    assert config_hash(changed, exclude=NOT_HASHED) != h
    assert config_hash(dataclasses.replace(cfg, launch=dataclasses.replace(cfg.launch, workers=3)),
                       exclude=NOT_HASHED) == h                              # where it runs is not hashed
    full = to_dict(cfg)
    older = {k: v for k, v in full.items() if k != "sensitivity"}           # made before `sensitivity` existed
    run, resumed = open_run(tmp_path / "r", h, manifest={"config": older}, ignore=NOT_HASHED)
    assert not resumed
    again, resumed = open_run(tmp_path / "r", h, manifest={"config": full}, ignore=NOT_HASHED)
    assert resumed and again == run                                       # the added key: its default rules
    other = {**full, "latency": {**full["latency"], "warmup": full["latency"]["warmup"] + 1}}
    (run / "manifest.json").write_text(json.dumps({**json.loads((run / "manifest.json").read_text()),
                                                   "config": other}))        # a default changed since the run
    third, resumed = open_run(tmp_path / "r", h, manifest={"config": full}, ignore=NOT_HASHED)
    assert not resumed and third != run
