"""``sweep --budget-s`` for real on tiny models (CPU): a point predicted not to fit is never started and is a
``skipped`` row with reason "budget" and its prediction; planned iterations and the records' provenance fields;
resuming retries the budget rows only; the timing cap inside one measurement; the max-frames bisection stopping
at its time cap; memory reusing the latency's peak; the progress bar counting predicted seconds."""
from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import pytest
import yaml

from evalkit.measure import latency as latency_mod
from evalkit.measure import max_frames as mf_mod
from evalkit.measure import memory as memory_mod
from evalkit.measure.common import Context
from evalkit.measure.max_frames import MaxFramesSettings
from evalkit.measure.point import Settings
from evalkit.core.records import read_records
from evalkit.sweep import cli

# 1 GFLOP/s predicted: tiny DiT at 64x112 8.5 s is ~0.5 s per forward; LinGen w/o MA is predicted at 1e-5 of it
# (hours: far more than it really takes here), so its point must be refused on the prediction alone, whatever the
# planner learns from timing DiT
PROFILE = {"peak_tflops": 0.001, "achieved_fraction": {"default": 1.0, "lingen-no-ma": 1e-5}, "forward_overhead_s": 0.1,
           "startup_s": 1.0, "import_s": 0.0, "point_overhead_s": 0.0, "build_s": 0.2, "build_s_per_gparam": 0.0,
           "first_forward_s": 0.1}
EXP = {"kind": "sweep", "name": "tb", "models": ["dit", "lingen-no-ma"], "flavors": ["tiny"],
       "resolutions": {"64p": [64, 112]}, "durations_s": [8.5], "measurements": ["latency", "memory"],
       "latency": {"warmup": 1, "min_iterations": 2, "min_seconds": 0.0, "max_iterations": 5,
                   "cpu_budget_gflop": 100.0},
       "budget": {"device": "cpu", "reserve_s": 0.0, "cpu": PROFILE}}



def tiny_point(model: str, **fields):
    """A tiny-model point at 64x112 (the measurements' unit tests build them without an experiment file)."""
    from evalkit import models
    from evalkit.measure.point import Point

    base = dict(experiment="t", model=model, flavor="tiny", config=models.resolve(model, "tiny"), resolution="64p",
                height=64, width=112, fps=16, batch=1, settings=Settings())
    return Point(**{**base, **fields})

def sweep(capsys, path: Path, runs: Path, *argv: str) -> tuple[int, dict]:
    rc = cli.main([str(path), "--runs-root", str(runs), "--no-plots", *argv])
    return rc, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def exp_file(tmp_path: Path) -> Path:
    path = tmp_path / "tb.yaml"
    path.write_text("# budget sweep test\n" + yaml.safe_dump(EXP))
    return path


def test_budget_runs_what_fits_and_rows_the_rest(tmp_path: Path, capsys, exp_file: Path, monkeypatch) -> None:
    started = []
    real = latency_mod.run
    monkeypatch.setattr(latency_mod, "run", lambda point, *a: started.append(point.model) or real(point, *a))
    rc, summ = sweep(capsys, exp_file, tmp_path / "runs", "--budget-s", "20")
    assert rc == 0
    recs = {(r["model"], r["measurement"]): r for r in read_records([summ["run_dir"]])}
    assert started == ["dit"]                                 # the LinGen w/o MA point was never started
    ok = recs[("dit", "latency")]
    assert ok["status"] == "ok" and ok["iterations"] == 2 == len(ok["latency_ms_raw"])   # planned: all it asked
    assert ok["budget_s"] == 20 and ok["predicted_s"] > 0 and len(ok["warmup_ms_raw"]) == 1
    for field in ("torch_version", "cuda_version", "triton_version", "mamba_ssm_version", "gpu", "dtype",
                  "backend_sdpa", "backend_ssd", "backend_ssd_reason", "backend_tesa", "sdpa_enabled",
                  "flops_analytic", "achieved_tflops"):
        assert field in ok, field
    assert ok["backend_sdpa"] == "cpu_flash" and ok["dtype"] == "float32"
    row = recs[("lingen-no-ma", "latency")]
    assert row["status"] == "skipped" and row["skip_reason"] == "budget", row
    assert row["message"].startswith("budget: predicted") and row["predicted_s"] > 1000
    for m in ("dit", "lingen-no-ma"):   # memory only writes its row here: never held back by the budget
        assert recs[(m, "memory")]["message"].startswith("no CUDA") and "skip_reason" not in recs[(m, "memory")]


def test_resume_retries_only_the_budget_rows(tmp_path: Path, capsys, exp_file: Path) -> None:
    _, first = sweep(capsys, exp_file, tmp_path / "runs", "--budget-s", "20")
    before = {r["key"]: r for r in read_records([first["run_dir"]])}
    rc, second = sweep(capsys, exp_file, tmp_path / "runs", "--budget-s", "0")   # no budget: the rest
    assert rc == 0 and second["run_dir"] == first["run_dir"] and second["ran"] == 1
    after = {r["key"]: r for r in read_records([second["run_dir"]])}
    for key, r in before.items():
        if r.get("skip_reason") == "budget":
            assert after[key]["status"] == "ok" and after[key]["iterations"] == 2
            assert "skip_reason" not in after[key] and "budget_s" not in after[key]
        else:
            assert after[key] == r                                 # finished records are kept as they were


def test_budget_with_submitit_is_refused_before_any_work(tmp_path: Path, exp_file: Path) -> None:
    from evalkit.core.errors import FieldError

    with pytest.raises(FieldError, match="--budget-s: a budget runs the points one after another"):
        cli.main([str(exp_file), "--runs-root", str(tmp_path), "--budget-s", "5", "--launcher", "submitit"])
    assert not (tmp_path / "tb").exists()


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def perf_counter(self) -> float:
        return self.t



@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    """latency's perf_counter replaced by a clock the test advances."""
    clock = FakeClock()
    monkeypatch.setattr(latency_mod, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    return clock

def test_time_call_stops_at_max_seconds(fake_clock) -> None:
    clock = fake_clock

    def fn() -> None:
        clock.t += 0.5

    warm: list[float] = []
    times = latency_mod.time_call(fn, cuda=False, warmup=1, min_iterations=10, min_seconds=0, max_iterations=10,
                                  max_seconds=2.6, started=100.0, warmup_times=warm)
    assert warm == [500.0] and times == [500.0] * 4 and clock.t == 102.5   # a 5th would end at 103.0 > 102.6
    clock.t = 100.0
    assert latency_mod.time_call(fn, cuda=False, warmup=1, min_iterations=3, min_seconds=0, max_iterations=3,
                                 max_seconds=0.9, started=100.0) == []       # nothing fits after the warm-up
    clock.t = 100.0                # a first call with one-time costs is judged by the planner's prediction
    assert len(latency_mod.time_call(fn, cuda=False, warmup=1, min_iterations=3, min_seconds=0, max_iterations=3,
                                     max_seconds=1.0, started=100.0, expected_call_s=0.2)) == 1


def test_max_frames_bisection_stops_at_its_time_cap(monkeypatch) -> None:
    import torch

    clock = FakeClock()
    monkeypatch.setattr(mf_mod, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(mf_mod, "cuda_available", lambda: True)
    monkeypatch.setattr(mf_mod, "environment", lambda: {"gpu": "FAKE"})
    monkeypatch.setattr(mf_mod, "_memory_cap", lambda gib: (0.5, 160 * 2**30))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    probes = []

    def peak(ctx, point, duration_s, dtype, kernels):   # 1 s per latent frame; fits up to 40 latent frames
        k = round(duration_s * 16 / 8)
        probes.append(k)
        clock.t += k * 1.0
        if k > 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return (k * 2**30, k * 2**30)

    monkeypatch.setattr(mf_mod, "peak_forward_bytes", peak)
    mf = MaxFramesSettings(max_duration_s=68.0, dtype_cuda="bfloat16", memory_limit_gib=80.0, max_seconds=0.0)
    point = tiny_point("lingen", duration_s=None, ref_duration_s=8.5, measurements=("max_frames",),
                       settings=Settings(max_frames=mf))
    full = mf_mod.run(point, Context())[0]
    assert full["status"] == "ok" and full["max_latent_frames"] == 40 and full["max_frames"] == 320
    assert full["message"] == "" and full["memory_limit_bytes"] == 80 * 2**30
    assert [p[1] for p in full["probes"]][:2] == [True, False] and full["probes"][1][0] == 68.0
    probes.clear()
    clock.t = 100.0
    point = dataclasses.replace(point, settings=Settings(max_frames=dataclasses.replace(mf, max_seconds=300.0)))
    capped = mf_mod.run(point, Context())[0]
    assert sum(probes) <= 300                              # no probe started that would end after the cap
    assert capped["max_frames"] < 320 and "lower bound" in capped["message"]
    assert capped["max_frames_upper"] is not None and capped["max_frames_upper"] > capped["max_frames"]


def test_memory_reuses_the_timed_forwards_peak(monkeypatch) -> None:
    monkeypatch.setattr(memory_mod, "cuda_available", lambda: True)
    monkeypatch.setattr(memory_mod, "environment", lambda: {"gpu": "FAKE"})
    monkeypatch.setattr(memory_mod, "peak_forward_bytes", lambda *a: pytest.fail("ran a forward of its own"))
    ctx = Context()
    point = tiny_point("dit", duration_s=8.5, measurements=("memory",))
    ctx.peaks[(point.config, 64, 112, 8.5, 1, "bfloat16", "auto")] = (123, 456)
    rec = memory_mod.run(point, ctx)[0]
    assert rec["mem_peak_allocated_bytes"] == 123 and rec["mem_source"] == "latency_timed_forwards"
    monkeypatch.setattr(memory_mod, "peak_forward_bytes", lambda *a: (7, 8))
    rec = memory_mod.run(dataclasses.replace(point, duration_s=17.0), ctx)[0]   # another point: its own forward
    assert rec["mem_peak_allocated_bytes"] == 7 and rec["mem_source"] == "own_forward"


def test_progress_counts_predicted_seconds(tmp_path: Path, capsys) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("# flops only\n" + yaml.safe_dump({
        "kind": "sweep", "name": "f", "models": ["lingen", "dit"], "flavors": ["tiny"],
        "resolutions": {"64p": [64, 112]}, "durations_s": [8.5, 17], "flops": {"fvcore": False}}))
    clocks = []
    rc = cli.main([str(path), "--runs-root", str(tmp_path / "runs"), "--no-plots"], on_clock=clocks.append)
    assert rc == 0
    from evalkit.sweep.config import load_experiment
    from evalkit.sweep.budget import predict_all
    from evalkit.sweep.plan import plan_points, due_points
    from evalkit.sweep.predict import Predictor

    exp = load_experiment(path)
    pred = [d.predicted_s for d in predict_all(due_points(plan_points(exp), set()),
                                               Predictor(exp.config.budget, "cpu"))]
    hist = clocks[0].history
    assert len(hist) == 4 and hist[-1][1] == pytest.approx(sum(pred), abs=0.05) == hist[-1][2]
    assert [round(b - a, 2) for a, b in zip([0.0] + [h[1] for h in hist], [h[1] for h in hist])] == \
        pytest.approx([round(p, 2) for p in pred], abs=0.011)
    assert pred[0] > exp.config.budget.cpu.startup_s          # the first point carries the process start-up


def test_run_plots_one_set_per_part_group(tmp_path: Path) -> None:
    from evalkit.sweep.plots import write_plots

    def rec(group: str, model: str, d: float, ms: float) -> dict:
        return {"kind": "cost", "measurement": "latency", "status": "ok", "model": model, "flavor": "4b",
                "resolution": "512p", "height": 512, "width": 896, "duration_s": d, "latency_ms_p50": ms,
                "params": 4e9, "part": group, "part_group": group, "device": "cuda", "gpu": "G"}

    records = [rec("fig6a", m, d, d * (10 if m == "dit" else 1)) for m in ("lingen", "dit") for d in (17, 68)]
    records += [rec("table2", m, 17, 5.0) for m in ("lingen", "lingen-no-tesa")]
    names = sorted(Path(p).name for p in write_plots(records, tmp_path))
    assert names == ["latency_fig6a_vs_duration.png", "latency_table2_by_model.png"]


def test_warm_up_calls_stop_after_one_longer_than_the_cap(fake_clock) -> None:
    clock = fake_clock

    def fn() -> None:
        clock.t += 40.0

    warm: list[float] = []
    times = latency_mod.time_call(fn, cuda=False, warmup=3, min_iterations=1, min_seconds=0, max_iterations=1,
                                  warmup_times=warm, warmup_cap_s=30.0)
    assert warm == [40000.0] and times == [40000.0]            # one warm-up (over the cap), then the timed call
    warm.clear()
    latency_mod.time_call(fn, cuda=False, warmup=3, min_iterations=1, min_seconds=0, max_iterations=1,
                          warmup_times=warm, warmup_cap_s=0.0)
    assert len(warm) == 3                                      # 0: no cap


def test_latency_record_spread_profiled_call_and_forced_sdpa_backend(tmp_path: Path) -> None:
    """Without a warm-up the first call is a timed one and the profile comes from a short call of its own; the
    spread of the timed calls is recorded; latency.sdpa_backend forces the kernel (math on CPU here)."""
    from evalkit.measure.latency import LatencySettings, short_duration
    from evalkit.sweep.runner import run_point

    lat = LatencySettings(warmup=0, min_iterations=3, min_seconds=0.0, max_iterations=3, sdpa_backend="math")
    point = tiny_point("dit", duration_s=8.5, measurements=("latency",), settings=Settings(latency=lat))
    (rec,) = run_point(point, tmp_path, ctx=Context())
    assert rec["status"] == "ok" and rec["first_call_timed"] and rec["profiled_call"] == "short_call"
    assert rec["warmup_ms_raw"] == [] and rec["iterations"] == 3 == len(rec["latency_ms_raw"])
    assert rec["latency_ms_min"] <= rec["latency_ms_p50"] <= rec["latency_ms_max"] and rec["latency_ms_std"] >= 0
    assert rec["backend_sdpa"] == "math" and rec["sdpa_backend_requested"] == "math"
    assert "SDPA" in rec["latency_caveats"] and short_duration(point) == 0.5
    auto = tiny_point("dit", duration_s=8.5, measurements=("latency",),
                      settings=Settings(latency=dataclasses.replace(lat, warmup=1, sdpa_backend="auto")))
    (rec,) = run_point(auto, tmp_path, ctx=Context())
    assert rec["backend_sdpa"] == "cpu_flash" and rec["profiled_call"] == "first_warmup"
    assert not rec["first_call_timed"] and len(rec["warmup_ms_raw"]) == 1


def test_a_strict_part_gets_all_it_asks_for_first(tmp_path: Path) -> None:
    """A part marked strict (the headline claim) is planned at its desired work before a later part gets any;
    without strict every point first gets its minimal work in file order."""
    from evalkit.sweep.budget import plan_units
    from evalkit.sweep.config import load_experiment
    from evalkit.sweep.plan import plan_points
    from evalkit.sweep.predict import Predictor

    data = {**EXP, "models": ["dit"], "durations_s": [8.5], "measurements": ["latency"],
            "latency": {"warmup": 1, "min_iterations": 3, "min_seconds": 0.0, "max_iterations": 3,
                        "cpu_budget_gflop": 100.0},
            "parts": [{"name": "head", "strict": True}, {"name": "rest"}]}
    plans = {}
    for strict in (True, False):
        data["parts"][0]["strict"] = strict
        path = tmp_path / f"s{strict}.yaml"
        path.write_text("# strict test\n" + yaml.safe_dump(data))
        exp = load_experiment(path)
        points = plan_points(exp)
        assert [p.strict for p in points] == [strict, False]
        pred = Predictor(exp.config.budget, "cpu")
        one = pred.cost(points[0], "latency", pred.initial_state(), pred.minimal(points[0]))
        full = pred.cost(points[0], "latency", pred.initial_state(), pred.desired(points[0]))
        plans[strict] = plan_units(points, pred, full + 0.01)    # the head's full work, not both minimal
        assert full > one
    head, rest = plans[True]
    assert head.run and head.plan.iterations == 3 and not rest.run
    head, rest = plans[False]
    assert head.run and rest.run and head.plan.iterations < 3     # both got their minimal work first
