"""The budget planner (evalkit.sweep.budget) and the predictor (evalkit.sweep.predict) on plans alone (no
measurement runs): nothing planned beyond the budget, the most important units first, the leftover spent on
iterations in priority order, memory free after latency, predictions that follow the process's model cache, and
``sweep paper_latency --dry-run`` within its budget."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from evalkit.sweep.config import load_experiment
from evalkit.sweep import cli
from evalkit.sweep.budget import NO_CUDA, plan_lines, plan_units, predict_all
from evalkit.sweep.plan import plan_points, due_points
from evalkit.sweep.predict import Predictor, SimState, UnitPlan

# a synthetic GPU profile (planned here, nothing runs): 1 GFLOP/s, so tiny DiT at 64x112 costs 0.53 s (8.5 s) ..
# 16.5 s (68 s) per forward
PROFILE = {"peak_tflops": 0.001, "achieved_fraction": {"default": 1.0}, "forward_overhead_s": 0.1,
           "startup_s": 1.0, "import_s": 0.0, "point_overhead_s": 0.0, "build_s": 0.2, "build_s_per_gparam": 0.0,
           "first_forward_s": 0.1}
EXP = {"kind": "sweep", "name": "b", "models": ["dit", "lingen"], "flavors": ["tiny"],
       "resolutions": {"64p": [64, 112]}, "durations_s": [8.5, 17, 68], "measurements": ["latency", "memory"],
       "latency": {"warmup": 2, "min_iterations": 3, "min_seconds": 0.0, "max_iterations": 10,
                   "cpu_budget_gflop": 100.0},
       "budget": {"device": "cuda", "reserve_s": 0.0, "cuda": PROFILE, "cpu": PROFILE}}


def _items(tmp_path: Path, device: str = "cuda", **over) -> tuple[list[dict], Predictor]:
    path = tmp_path / "b.yaml"
    path.write_text("# budget test\n" + yaml.safe_dump({**EXP, **over}))
    exp = load_experiment(path)
    return due_points(plan_points(exp), set()), Predictor(exp.config.budget, device)


def test_nothing_planned_beyond_the_budget_and_nothing_left_out_that_fits(tmp_path: Path) -> None:
    items, pred = _items(tmp_path)
    full = sum(d.predicted_s for d in predict_all(items, pred))
    rng = random.Random(0)
    for budget in [0.0, 0.5, 2.0, 3.0] + [rng.uniform(0, full * 1.2) for _ in range(40)]:
        plan = plan_units(items, pred, budget)
        spent = sum(d.predicted_s for d in plan if d.run)
        assert spent <= budget + 1e-9, budget
        for d in plan:   # an unplanned unit did not fit what was left at its turn, so not what is left now
            if not d.run:
                assert d.predicted_s > budget - spent, (budget, d.key)


def test_most_important_first(tmp_path: Path) -> None:
    items, pred = _items(tmp_path)
    plan = plan_units(items, pred, 6.0)
    run = [d.key for d in plan if d.run]
    assert run[:2] == [items[0].record_key("latency"), items[0].record_key("memory")]
    first_skip = next(i for i, d in enumerate(plan) if not d.run)
    assert all(d.run for d in plan[:first_skip])
    # the first point too expensive (DiT 68 s first: 34 s), the cheaper later one still planned; the first's memory
    # alone (18 s) would fit 18 s, but memory without its latency ranks below every latency: considered last
    items2, pred2 = _items(tmp_path, models=["dit"], durations_s=[68, 8.5])
    items2 = sorted(items2, key=lambda s: -s.duration_s)
    plan2 = plan_units(items2, pred2, 18.0)
    assert 17.0 < plan2[1].predicted_s < 18.0 or not plan2[1].run
    assert [(d.point.duration_s, d.measurement, d.run) for d in plan2] == [
        (68, "latency", False), (68, "memory", False), (8.5, "latency", True), (8.5, "memory", True)]


def test_leftover_raises_iterations_in_priority_order(tmp_path: Path) -> None:
    items, pred = _items(tmp_path, models=["dit"], durations_s=[8.5, 17])
    lat = [d for d in plan_units(items, pred, 1e6) if d.measurement == "latency"]
    assert [d.plan for d in lat] == [pred.desired(d.point, "latency", d.state) for d in lat]
    # the model is warm at its second point (same process): its first call there is a timed one, no warm-up
    assert [d.plan for d in lat] == [UnitPlan(warmup=2, iterations=3), UnitPlan(warmup=0, iterations=3)]
    minimal = plan_units(items, pred, sum(d.predicted_s for d in plan_units(items, pred, 1e6)) - 0.01)
    lat = [d for d in minimal if d.measurement == "latency"]
    assert lat[0].plan == UnitPlan(warmup=2, iterations=3)          # the first gets all it asks for ...
    assert lat[1].plan.iterations < 3 and lat[1].run                  # ... the second what remains
    tight = [d for d in plan_units(items, pred, 4.0) if d.measurement == "latency"]
    assert tight[0].plan == UnitPlan(warmup=1, iterations=1) or tight[0].plan.iterations >= 1


def test_predicted_costs_follow_the_model_cache(tmp_path: Path) -> None:
    items, pred = _items(tmp_path, models=["dit"], durations_s=[8.5, 17])
    lat1, mem1, lat2, _ = predict_all(items, pred)
    fwd = pred.forward_s(items[0])
    assert lat1.predicted_s == pytest.approx(1.0 + 0.2 + 0.1 + (2 + 3) * fwd)   # start-up, build, 1st fwd
    assert mem1.predicted_s == pred.prof.skip_s and mem1.note == "latency's peak"
    assert lat2.predicted_s == pytest.approx(5 * pred.forward_s(items[1]))      # same model, warm process
    fresh = Predictor(load_experiment(tmp_path / "b.yaml").config.budget, "cuda", launcher="process")
    assert predict_all(items, fresh)[2].predicted_s == pytest.approx(1.3 + 5 * pred.forward_s(items[1]))
    # memory alone (its latency not planned) costs a forward of its own
    first = pred.cost(items[0], "latency", SimState(), pred.minimal(items[0]))
    plan = plan_units(items, pred, first + 0.01)
    assert [(d.measurement, d.run) for d in plan] == [("latency", True), ("memory", True), ("latency", False),
                                                      ("memory", False)]
    assert plan[3].predicted_s == pytest.approx(pred.forward_s(items[1]))


def test_predictor_learns_each_models_speed(tmp_path: Path) -> None:
    items, pred = _items(tmp_path, models=["dit"], durations_s=[8.5, 17])
    before = pred.forward_s(items[1])
    measured = 3 * (pred.forward_s(items[0]) - 0.1) + 0.1
    pred.observe(items[0], {"measurement": "latency", "status": "ok", "latency_ms_p50": measured * 1e3})
    assert pred.forward_s(items[0]) == pytest.approx(measured)
    assert pred.forward_s(items[1]) - 0.1 == pytest.approx(3 * (before - 0.1))
    pred.observe(items[0], {"measurement": "latency", "status": "oom"})   # no number: nothing learnt
    assert pred.forward_s(items[0]) == pytest.approx(measured)


def test_units_that_only_write_a_skipped_row_are_never_held_back(tmp_path: Path) -> None:
    items, pred = _items(tmp_path, device="cpu", measurements=["latency", "memory", "max_frames"],
                         latency={"cpu_budget_gflop": 0.1})
    plan = plan_units(items, pred, 0.0)
    notes = {d.measurement: d for d in plan if d.note == NO_CUDA}
    assert set(notes) == {"latency", "memory", "max_frames"} and all(d.run for d in plan)   # all rows only
    items, pred = _items(tmp_path, device="cpu")
    plan = plan_units(items, pred, 0.0)                      # timed on CPU: held back; memory: a row only
    assert not any(d.run for d in plan if d.measurement == "latency")
    assert all(d.run and d.note == NO_CUDA for d in plan if d.measurement == "memory")


def test_paper_latency_dry_run_fits_its_budget(capsys) -> None:
    assert cli.main(["paper_latency", "--dry-run"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["device"] == "cuda" and summary["budget_s"] == 420
    assert 0.8 * summary["budget_s"] < summary["predicted_s"] <= summary["budget_s"]
    head = [ln for ln in out if ln.startswith("plan for cuda, budget 420 s")]
    assert head and any(ln.startswith("predicted total") for ln in out)
    rows = {ln.split()[1]: ln for ln in out if ln.strip()[:1].isdigit() and ":" in ln}
    for key in ("fig6a_512p:lingen/4b/512p=512x896/68s@16fps/b1/latency.v3",
                "fig6a_512p:dit/4b/512p=512x896/68s@16fps/b1/latency.v3"):   # the 11.5x is planned first
        assert "skip" not in rows[key]
    assert any("skip: budget" in ln for ln in rows.values())   # 420 s does not hold everything


def test_plan_lines_report_every_unit_and_the_total(tmp_path: Path) -> None:
    items, pred = _items(tmp_path, models=["dit"], durations_s=[8.5, 68])
    plan = plan_units(items, pred, 5.0)
    lines = plan_lines(plan, device="cpu", budget_s=5.0)
    assert len(lines) == 2 + len(plan) + 1
    assert "skip: budget" in lines[4] and "68s" in lines[4]
    assert lines[-1].startswith(f"predicted total {sum(d.predicted_s for d in plan if d.run):.1f} s of the 5 s")


def test_state_copy_is_independent() -> None:
    s = SimState(started=True, real="m", meta=["a"], timed_points={"p"})
    c = s.copy()
    c.meta.append("b")
    c.timed_points.add("q")
    assert s.meta == ["a"] and s.timed_points == {"p"}
