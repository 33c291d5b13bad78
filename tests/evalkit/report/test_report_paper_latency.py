"""The report renderers pick up a paper_latency run correctly: synthetic, GPU-like records (made here from the
real plan of experiments/paper_latency.yaml, in a temporary folder, never committed) -> the Fig. 6a analogue
from the fig6a group (512p points + 256p curve, one figure), Table 2 latency from the table2 part, the Fig. 20
latency from the fig20 part (100 steps), and paper-vs-measured's 11.5x row and max frames. A point measured in
several parts (LinGen-4B at 512p / 17 s is in four) is read from the part the artifact is about."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalkit import models
from evalkit.sweep.config import load_experiment
from evalkit.core.records import append
from evalkit.report.cli import main as report
from evalkit.sweep.plan import plan_points
from evalkit.sweep.runner import cost_record

HW = "SYNTHETIC-GPU"


def synthetic_p50_ms(point) -> float:
    """A made-up forward time: FLOPs at 400 TFLOP/s, times 1 + part_index / 100 (so a renderer that reads the
    wrong part's record gives a different number), times a per-variant factor (distinct Table 2 deltas)."""
    cfg = models.resolve(point.model, point.flavor)
    video = models.VideoPoint(height=point.height, width=point.width, duration_s=point.duration_s, fps=point.fps)
    variant = {"lingen-zigzag": 1.4, "lingen-mamba1": 1.25, "lingen-no-ma": 0.64}.get(point.model, 1.0)
    return models.estimate_flops(cfg, video).total / 400e12 * 1e3 * (1 + point.tag.part_index / 100) * variant


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("pl")
    run = root / "paper_latency" / "20990101-000000-1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "experiment": "paper_latency", "run_id": run.name, "git_sha": "a" * 40, "config": {},
        "command": "synthetic test records (tests/evalkit/report/test_report_paper_latency.py), not a measurement",
        "hardware": {"gpu": HW, "gpu_count": 1, "machine": "x86_64", "cpu_count": 16}}))
    p50 = {}
    for point in plan_points(load_experiment("paper_latency")):
        for m in point.measurements:
            rec = cost_record(point, m, run, created="2099-01-01T00:00:00Z")
            if m == "latency":
                ms = synthetic_p50_ms(point)
                p50[point.record_key(m)] = ms
                rec.update(sdpa_backend_requested=point.settings.latency.sdpa_backend, backend_sdpa="flash")
                rec.update(scope="denoiser_forward", steps=point.settings.sampling.steps,
                           cfg_factor=2, dtype="bfloat16", device="cuda", latency_ms_p50=ms,
                           latency_ms_raw=[ms] * 3, iterations=3)
            elif m == "memory":
                rec.update(dtype="bfloat16", device="cuda", mem_peak_allocated_bytes=2**34)
            else:
                rec.update(dtype="bfloat16", device="cuda", max_frames=1088, max_duration_s=68.0,
                           message="fits at the longest valid duration 68 s: a lower bound")
            append(run / "results.jsonl", rec)
    out = root / "out"
    assert report([str(run), "--out", str(out)]) == 0
    return out, p50


def _csv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_fig6a_is_one_figure_of_the_fig6a_group(rendered) -> None:
    out, p50 = rendered
    figs = sorted(p.name for p in (out / "cost").glob("fig_latency_scaling_*.csv"))
    # one figure per part group: fig6a, and the efficiency figure's points with the presets / the fitted geometry
    assert [f.split("-4b-")[0] for f in figs] == ["fig_latency_scaling_paper-latency-fig6a",
                                                 "fig_latency_scaling_paper-latency-figure",
                                                 "fig_latency_scaling_paper-latency-figure-fitted"], figs
    rows = _csv(out / "cost" / figs[0])
    got = {(r["model"], r["resolution"], float(r["duration_s"])) for r in rows}
    assert got == {(m, "512p", d) for m in ("lingen", "dit") for d in (17.0, 68.0)} | \
        {(m, "256p", d) for m in ("lingen", "dit") for d in (8.5, 17.0, 34.0, 51.0, 68.0)}
    assert len(rows) == len(got) == 14                    # each point once: not also table2's / fig20's records
    r = next(r for r in rows if r["model"] == "dit" and r["resolution"] == "512p" and float(r["duration_s"]) == 68)
    want = p50["fig6a_512p:dit/4b/512p=512x896/68s@16fps/b1/latency.v3"] / \
        p50["fig6a_512p:lingen/4b/512p=512x896/68s@16fps/b1/latency.v3"]
    assert float(r["ratio_dit_over_lingen"]) == pytest.approx(want)
    lingen17 = next(r for r in rows if r["model"] == "lingen" and r["resolution"] == "512p"
                    and float(r["duration_s"]) == 17)
    assert float(lingen17["video_latency_s"]) == pytest.approx(
        p50["fig6a_512p:lingen/4b/512p=512x896/17s@16fps/b1/latency.v3"] / 1e3 * 50 * 2, rel=1e-5)   # its own part's


def test_table2_latency_from_the_table2_part(rendered) -> None:
    out, p50 = rendered
    text = (out / "cost" / "table2_ablation.md").read_text()
    rows = {ln.split("|")[2].strip(): [c.strip() for c in ln.split("|")[1:-1]] for ln in text.splitlines()
            if ln.startswith("| LinGen")}
    assert len(rows) == 7
    head = [c.strip() for c in next(ln for ln in text.splitlines() if "latency s/video" in ln).split("|")[1:-1]]
    col, dcol = head.index("latency s/video"), head.index("latency delta %")
    for reg, row in rows.items():   # w/ Mamba from its own part of the table2 group
        part = "table2_mamba1" if reg == "lingen-mamba1" else "table2"
        want = p50[f"{part}:{reg}/4b/512p=512x896/17s@16fps/b1/latency.v3"] / 1e3 * 100
        assert float(row[col]) == pytest.approx(want, rel=1e-3), reg
    assert float(rows["lingen-zigzag"][dcol]) == pytest.approx(40.0, abs=0.01)
    assert float(rows["lingen"][dcol]) == pytest.approx(0.0, abs=1e-9)
    assert HW in text


def test_fig20_latency_from_the_fig20_part(rendered) -> None:
    out, p50 = rendered
    figs = sorted((out / "cost").glob("fig_model_size_*.csv"))
    assert len(figs) == 1 and figs[0].name.startswith("fig_model_size_paper-latency-fig20-latency-"), figs
    rows = _csv(figs[0])
    assert {(r["model"], r["flavor"]) for r in rows} == {(m, f) for m in ("lingen", "dit")
                                                         for f in ("1b", "2b", "4b", "8b")}
    for r in rows:   # 100 steps x CFG 2, and the fig20 part's own 4b records
        key = f"fig20:{r['model']}/{r['flavor']}/512p=512x896/17s@16fps/b1/latency.v3"
        assert float(r["video_latency_s"]) == pytest.approx(p50[key] / 1e3 * 100 * 2, rel=1e-5)


def test_paper_vs_measured_rows(rendered) -> None:
    out, p50 = rendered
    text = (out / "paper_vs_measured.md").read_text()
    lat = next(ln for ln in text.splitlines() if ln.startswith("| latency ratio"))
    want = p50["fig6a_512p:dit/4b/512p=512x896/68s@16fps/b1/latency.v3"] / \
        p50["fig6a_512p:lingen/4b/512p=512x896/68s@16fps/b1/latency.v3"]
    assert f"| {want:.2f}x |" in lat and HW in lat and "11.5x" in lat
    frames = next(ln for ln in text.splitlines() if "max raw frames" in ln)
    assert "| >= 1088 |" in frames and HW in frames
    kernel = next(ln for ln in text.splitlines() if ln.startswith("| latency ratio DiT-4B on cuDNN attention"))
    want = p50["fig6a_512p_cudnn:dit/4b/512p=512x896/68s@16fps/b1/latency.v3"] / \
        p50["fig6a_512p:lingen/4b/512p=512x896/68s@16fps/b1/latency.v3"]
    assert f"| {want:.2f}x |" in kernel and HW in kernel
    deltas = [ln for ln in text.splitlines() if ln.startswith("| Table 2 latency delta")]
    assert len(deltas) == 6 and not any("not measured" in ln for ln in deltas)
    assert "paper_latency" in (out / "index.md").read_text()
