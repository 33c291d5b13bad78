"""The sensitivity report (evalkit/report/sensitivity.py): a real sweep with variations -> table and tornado whose
ratios are the records' DiT/LinGen quotient, the 4B-geometry set from synthetic records, and variation records
kept out of the paper's ratio and scaling figures."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from evalkit.report.cli import main as report_main
from evalkit.core.records import read_records
from evalkit.sweep import cli as sweep_cli
from repo_paths import FIXTURES

FIX = FIXTURES / "report" / "scaling" / "fixture-cpu"   # the 15x ratio source


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """experiments/sensitivity.yaml --smoke: 4b models at 256x448 / 8.5 s, baseline + 2 text lengths (meta)."""
    tmp = tmp_path_factory.mktemp("sens")
    assert sweep_cli.main(["sensitivity", "--smoke", "--runs-root", str(tmp), "--no-progress", "--no-plots"]) == 0
    return next((tmp / "sensitivity").iterdir())


def _older_copy(src: Path, root: Path) -> Path:
    """The fixture run under a run id older than any real one, so the variation run is the newest run."""
    dest = root / "scaling" / "00000000-000000-fixture"
    dest.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    (dest / "manifest.json").write_text(json.dumps({**manifest, "run_id": dest.name}))
    (dest / "results.jsonl").write_text((src / "results.jsonl").read_text())
    return dest


def test_sensitivity_table_and_tornado_from_a_real_sweep(smoke_run: Path, tmp_path: Path) -> None:
    recs = read_records([smoke_run])
    assert {r["variation"] for r in recs} == {"baseline", "text[text_len=77]", "text[text_len=256]"}
    flops = {(r["model"], r["variation"]): r["flops"] for r in recs}
    assert all(r["flops"] == r["flops_analytic"] and r["flops_method"] == "per_layer_kind" for r in recs)
    fixture = _older_copy(FIX, tmp_path / "runs")
    assert report_main([str(smoke_run), str(fixture), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "cost" / "sensitivity_sensitivity.md").read_text()
    base = flops[("dit", "baseline")] / flops[("lingen", "baseline")]
    short = flops[("dit", "text[text_len=77]")] / flops[("lingen", "text[text_len=77]")]
    assert f"| {base:.2f} | 0.00 |" in table and f"| text_len=77 | 256x448 |" in table
    assert f"| {short:.2f} | {100 * (short / base - 1):.2f} |" in table
    assert "calibrated match, not an independent confirmation" in table
    tornado = pd.read_csv(tmp_path / "cost" / "fig_sensitivity_tornado_sensitivity.csv")
    assert list(tornado["axis"]) == ["text tokens"]
    assert tornado["min_ratio"].iloc[0] == pytest.approx(min(short, base), rel=1e-5)
    assert (tmp_path / "cost" / "fig_sensitivity_tornado_sensitivity.png").stat().st_size > 1000
    assert not (tmp_path / "cost" / "sensitivity_4b_geometries_sensitivity.md").exists()  # no geometry variations
    assert "see cost/sensitivity_sensitivity.md" in (tmp_path / "paper_vs_measured.md").read_text()


def _synthetic_run(root: Path) -> Path:
    """A published-looking run with four geometry variations (params in B, FLOPs chosen for the ratio)."""
    run = root / "sensitivity" / "synthetic"
    run.mkdir(parents=True)
    config = {"variations": {"baseline": {}, "geometry": {}},
              "sensitivity": {"duration_s": 68, "target_ratio": 15, "ratio_tol": 0.1,
                              "params_band_billions": [3.6, 4.4]}}
    (run / "manifest.json").write_text(json.dumps({"experiment": "sensitivity", "run_id": "synthetic",
                                                   "git_sha": "a" * 40, "config": config, "hardware": {}}))
    rows = [("baseline", {}, 4.0, 4.1, 15.0),
            ("geometry[a]", {"d_model": 1536, "heads": 12, "ffn_dim": 6144, "depth": 82}, 3.9, 4.1, 16.0),  # in
            ("geometry[b]", {"d_model": 3072, "heads": 24, "ffn_dim": 8448, "depth": 25}, 3.9, 4.2, 10.6),  # ratio out
            ("geometry[c]", {"d_model": 3072, "heads": 24, "ffn_dim": 8448, "depth": 56}, 8.7, 9.2, 10.6),  # not 4B
            ("geometry[d]", {"d_model": 2048, "heads": 16, "ffn_dim": 5632, "depth": 56}, 3.9, 4.1, 13.4)]  # just out
    lines = []
    for var, over, p_dit, p_lin, ratio in rows:
        for model, params, flops in (("lingen", p_lin, 1e15), ("dit", p_dit, ratio * 1e15)):
            lines.append(json.dumps({"kind": "cost", "measurement": "flops", "status": "ok", "model": model,
                                     "flavor": "4b", "variant": "default", "variation": var, "variation_axis":
                                     "presets" if var == "baseline" else "4B geometries",
                                     "variation_value": var, "model_overrides": over, "height": 512, "width": 896,
                                     "duration_s": 68.0, "num_tokens": 243712, "params": params * 1e9,
                                     "flops": flops, "steps": 50, "cfg_factor": 2, "key": f"{model}/{var}"}))
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_4b_geometry_set(tmp_path: Path) -> None:
    run = _synthetic_run(tmp_path / "runs")
    fixture = _older_copy(FIX, tmp_path / "runs")
    assert report_main([str(run), str(fixture), "--out", str(tmp_path / "out")]) == 0
    geo = (tmp_path / "out" / "cost" / "sensitivity_4b_geometries_sensitivity.md").read_text()
    assert "1 of 3 4B geometries give 15x +- 10%: d 1536, FFN 6144, 82 layers (16.00x)." in geo
    assert "| 3072 | 24 | 8448 | 2.75 | 25 |" in geo and "| 56 | 8.70 |" not in geo      # 9 B is not "4B"
    assert "| 13.40 | no |" in geo                                                        # 13.4 < 13.5
    tornado = pd.read_csv(tmp_path / "out" / "cost" / "fig_sensitivity_tornado_sensitivity.csv")
    assert tornado.iloc[0]["min_ratio"] == pytest.approx(10.6) and tornado.iloc[0]["max_ratio"] == pytest.approx(16)
    # the variation records (newest run, at 68 s / 512p, several sizes) never feed the paper's ratio or figures
    pvm = (tmp_path / "out" / "paper_vs_measured.md").read_text()
    fix = {(r["model"], r["duration_s"], r["height"]): r["flops"] for r in read_records([FIX])
           if r.get("measurement") == "flops"}
    head = fix[("dit", 68.0, 512)] / fix[("lingen", 68.0, 512)]
    assert f"| {head:.2f}x |" in pvm and "calibrated" in pvm and "10.60x-16.00x" in pvm
    assert not list((tmp_path / "out" / "cost").glob("fig_model_size_sensitivity*"))
