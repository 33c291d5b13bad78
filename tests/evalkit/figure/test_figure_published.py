"""The published efficiency-figure fit (reports/data/figure_fit/) is reproduced by the current code, and the
experiments that measure its best geometry (experiments/paper_figure.yaml, experiments/paper_latency.yaml) hold
exactly that geometry."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from evalkit.figure import digitize as D
from evalkit.figure import fit as F
from evalkit.figure import results as R
from repo_paths import REPO



def _published_fit() -> tuple[Path, list[dict]]:
    runs = sorted((REPO / "reports" / "data" / "figure_fit").glob("*/results.jsonl"))
    if not runs:
        pytest.fail("no published figure fit run under reports/data/figure_fit/ (python -m evalkit figure fit)")
    return runs[-1].parent, [json.loads(x) for x in runs[-1].read_text().splitlines()]


def test_published_fit_is_reproduced_by_the_current_code():
    run, recs = _published_fit()
    manifest = json.loads((run / "manifest.json").read_text())
    values = D.read()
    assert manifest["config"]["figure_sha256"] == values["sha256"]
    best = next(r for r in recs if r["record"] == "candidate" and r["list"] == "best" and r["rank"] == 0)
    space = F.SearchSpace()
    ev = F.Evaluator(F.flops_markers(values), space)
    g = {k: tuple(v) if isinstance(v, list) else v for k, v in best["geometry"].items()}
    tok = next(t for t in F.token_geometries(space, set(ev.labels)) if t.frame == g["frame"]
               and t.compression == g["compression"] and t.patch == g["patch"])
    again = F.evaluate(ev, g, tok)
    assert math.isclose(again["max_abs_z"], best["max_abs_z"], abs_tol=1e-3)
    assert [round(p, 3) for p in again["predicted"]] == [m["predicted"] for m in best["markers"]]
    summary = next(r for r in recs if r["record"] == "summary")
    assert summary["fitting"] == 0 and summary["best_max_abs_z"] == best["max_abs_z"]


def test_paper_figure_counts_the_published_best_geometry():
    _, recs = _published_fit()
    best = next(r for r in recs if r["record"] == "candidate" and r["list"] == "best" and r["rank"] == 0)
    exp = yaml.safe_load((REPO / "experiments" / "paper_figure.yaml").read_text())
    assert exp["variations"]["fitted"]["model_overrides"] == F.geometry_overrides(best["geometry"], "lingen")
    assert [list(F.scaled_frame(tuple(best["geometry"]["frame"]), (s, s), 1)) for s in (256, 512, 768, 1024)] == \
        exp["variations"]["fitted"]["grid"]["resolution"]
    lat = [r for r in recs if r["record"] == "latency_prediction"]
    assert len(lat) == 12 and all(r["predicted_s"] > 0 for r in lat)
    assert R.STEPS == 50


def test_paper_latency_fitted_parts_hold_the_published_best_geometry():
    _, recs = _published_fit()
    best = next(r for r in recs if r["record"] == "candidate" and r["list"] == "best" and r["rank"] == 0)
    exp = yaml.safe_load((REPO / "experiments" / "paper_latency.yaml").read_text())
    parts = {p["name"]: p for p in exp["parts"]}
    for name in ("figure_fitted_512sq", "figure_fitted_17s"):
        assert parts[name]["model_overrides"] == F.geometry_overrides(best["geometry"], "lingen"), name
