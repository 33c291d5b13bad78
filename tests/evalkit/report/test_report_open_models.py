"""``reports/open_models/`` (evalkit/report/open_models.py) from the published ``open_models`` run: the growth
exponent and the 10x crossing against hand-made curves with known answers, and the published tables recomputed
from the records and, independently, from each model's torch-free analytic cost (``evalkit.models``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evalkit import models as M
from evalkit.report import open_models as R
from evalkit.report.runs import load_run, records_frame
from repo_paths import REPO

ROOT = REPO
PUBLISHED = sorted((ROOT / "reports" / "data" / "open_models").glob("*/manifest.json"))


def test_slope_and_crossing_on_known_curves():
    ds = [5.0, 10.0, 17.0, 34.0, 68.0]
    assert R.slope(ds, [3.0 * d ** 1.5 for d in ds]) == pytest.approx(1.5, abs=1e-12)
    base = pd.Series([d for d in ds], index=ds)                       # linear
    quad = pd.Series([d * d for d in ds], index=ds)                   # ratio = d: 10x exactly at 10 s
    assert R.crossing(quad, base)[0] == pytest.approx(10.0, abs=1e-9)
    half = pd.Series([0.5 * d * d for d in ds], index=ds)             # ratio d / 2: 10x at 20 s, between 17 and 34
    d, text = R.crossing(half, base)
    assert d == pytest.approx(20.0, rel=1e-12)                        # log-log interpolation is exact on powers
    assert text == f"{d:.1f} s"
    assert R.crossing(base * 20, base)[1].startswith("<= 5 s (20x at 5 s")
    assert R.crossing(base * 2, base)[1] == "> 68 s (2x at 68 s)"


@pytest.mark.skipif(not PUBLISHED, reason="no published open_models run")
def test_published_tables_equal_the_records_and_the_analytic_cost():
    run = load_run(PUBLISHED[-1].parent)
    sel = R._records(records_frame([run]))
    assert set(sel["model"]) >= {"lingen", "dit", "wan2.1-1.3b", "wan2.1-14b", "cogvideox-2b", "cogvideox-5b",
                                 "hunyuanvideo", "ltx-video", "sana-video", "mochi-1"}
    for _, r in sel.iterrows():                  # the record's FLOPs are the analytic cost of its point
        cfg = M.resolve(r["model"], r["flavor"])
        point = M.VideoPoint(height=int(r["height"]), width=int(r["width"]), duration_s=float(r["duration_s"]),
                             fps=int(r["fps"]))
        assert float(r["flops"]) == pytest.approx(M.estimate_flops(cfg, point).total, rel=1e-12), r["model"]
    native = R.table(R.curves(sel)["native"]).set_index("registry")
    lines = (ROOT / "reports" / "open_models" / "table_native.md").read_text().splitlines()
    rows = {c[2].strip(): c for c in (ln.split("|") for ln in lines if ln.startswith("| ") and "---" not in ln)}
    for model in ("wan2.1-1.3b", "sana-video", "lingen"):
        m = sel[(sel["model"] == model) & (sel["resolution_name"] == "native") & (sel["duration_s"] == 68.0)]
        per_video = float(m["flops"].iloc[0]) * int(m["steps"].iloc[0]) * int(m["cfg_factor"].iloc[0])
        assert native.loc[model, "PFLOP/video 68 s"] == pytest.approx(per_video / 1e15, rel=1e-12)
        assert f"{per_video / 1e15:.3g}" in rows[model][12], (model, rows[model][12])   # the committed cell
    assert native.loc["lingen", "exponent 34-68 s"] == pytest.approx(1.0, abs=0.01)      # linear in duration
    assert native.loc["sana-video", "exponent 34-68 s"] == pytest.approx(1.0, abs=0.01)  # linear attention
    assert native.loc["wan2.1-14b", "exponent 34-68 s"] > 1.9                            # full attention
