"""The efficiency-figure reports (evalkit/report/figure.py, figure_fit.py, physics.py): the physics arithmetic
against an independent recomputation, the verdicts flip when the numbers allow it, and the paper-vs-measured
headline keeps one row per measured frame (512x896 presets vs the figure's 512x512)."""
from __future__ import annotations

import copy

import pandas as pd

from evalkit.report import compare, physics
from evalkit.report import figure as fg


def _fig():
    fig = fg.figure_data()
    assert fig is not None, "experiments/paper/efficiency_figure_values.yaml missing"
    return fig


def test_implied_throughput_is_flops_times_steps_over_latency():
    fig = _fig()
    imp = physics.implied(fig, pd.DataFrame())
    m = fig["markers"]
    lat = m[(m["panel"] == "latency_length") & (m["model"] == "dit") & (m["category"] == "512², 34s")].iloc[0]
    fl = m[(m["panel"] == "flops_length") & (m["model"] == "dit") & (m["category"] == "512², 34s")].iloc[0]
    row = imp[(imp["panel"] == fg.PANELS["latency_length"]) & (imp["model"] == "DiT-4B")
              & (imp["point"] == "512², 34s")].iloc[0]
    assert row["TFLOP/s at 50 steps"] == round(fl["value"] * 50 / lat["value"])
    assert abs(row["_lo"] - (fl["value"] - fl["u_value"]) * 50 / (lat["value"] + lat["u_value"])) < 1e-9
    assert abs(row["% bf16 peak"] - 100 * fl["value"] * 50 / lat["value"] / 989.0) < 1e-9
    # 768^2 has no plotted FLOPs: without a fit run it is left out, never guessed
    assert not (imp["point"] == "768², 17s").any()
    assert len(imp) == 10


def test_verdicts_follow_the_numbers():
    fig = _fig()
    rec, steps = physics.reconcile(physics.implied(fig, pd.DataFrame()), {"default": 0.3, "dit": 0.35})
    by = dict(zip(rec["assumption"].str.split(":").str[0], rec["every point <= 100%"]))
    assert by["as stated"] is False and by["FP8 (dense peak 1979 TFLOP/s)"] is True
    assert 30 < steps < 50
    # a figure whose latencies are 3x longer needs no assumption: everything holds as stated
    slow = copy.deepcopy(fig)
    lat = slow["markers"]["quantity"] == "latency_s"
    slow["markers"].loc[lat, "value"] *= 3
    rec3, steps3 = physics.reconcile(physics.implied(slow, pd.DataFrame()), {"default": 0.3})
    assert bool(rec3.iloc[0]["every point <= 100%"]) and steps3 > 100


def _flops(model, h, w, run, group, value):
    return {"kind": "cost", "measurement": "flops", "status": "ok", "model": model, "variant": "default",
            "flavor": "4b", "resolution": "512p", "height": h, "width": w, "duration_s": 68.0, "flops": value,
            "steps": 50, "cfg_factor": 2, "_run_id": run, "_part_group": group, "_hardware": "cpu", "device": "meta"}


def test_headline_ratio_one_row_per_frame():
    df = pd.DataFrame([_flops("dit", 512, 896, "r1", "", 30.0), _flops("lingen", 512, 896, "r1", "", 2.0),
                       _flops("dit", 512, 512, "r2", "figure", 10.0), _flops("lingen", 512, 512, "r2", "figure", 1.0)])
    sel = df.assign(video_flops=df["flops"] * 100)
    got = compare._ratios(sel, "video_flops")
    assert [(round(r, 3), f) for r, _, f in got] == [(15.0, "512x896"), (10.0, "512x512")]
    assert compare._ratios(sel[sel["width"] == 896], "video_flops")[0][2] == "512x896"
    assert compare._ratios(sel[sel["model"] == "dit"], "video_flops") == []
