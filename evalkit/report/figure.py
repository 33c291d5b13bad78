"""The LinGen project page's efficiency figure (absolute latency and TFLOP per step of DiT-4B and LinGen-4B, the
counterpart of the paper's Fig. 6) in the report: the digitized markers and ratio labels (from
experiments/paper/efficiency_figure_values.yaml), the geometry fitted to its FLOPs points (records of a published
``python -m evalkit figure fit`` run), the presets' counted FLOPs at the same points (the published
``experiments/paper_figure.yaml`` sweep) and the fitted geometry's latency predictions. Reads records and
experiments/paper only (the fit and its predictions were computed when the run was made).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.report import paper
from evalkit.report.render import Artifact, write_table
from evalkit.report.runs import Run, run_ids

FIGURE = "project page efficiency figure (lineargen/lineargen.github.io static/images/efficiency.png)"
SWEEP = "paper_figure"          # experiments/paper_figure.yaml: the presets / the fitted geometry at the points
NAMES = {"dit": "DiT-4B", "lingen": "LinGen-4B"}
PANELS = {"latency_resolution": "(a) latency vs resolution", "flops_resolution": "(b) FLOPs vs resolution",
          "latency_length": "(a) latency vs length", "flops_length": "(b) FLOPs vs length"}


def num(v: float) -> str:
    """A plotted value as text: whole numbers from 100 up, three significant digits below."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def figure_data(paper_dir: Path = paper.PAPER_DIR) -> dict[str, Any] | None:
    """The digitized figure, or None when experiments/paper/ has no efficiency_figure_values.yaml."""
    if not (Path(paper_dir) / "efficiency_figure_values.yaml").is_file():
        return None
    return paper.efficiency_figure(paper_dir)


def _source_note(fig: dict[str, Any]) -> str:
    s = fig["source"]
    return (f"Figure: {s['repository']}, {s['path']} at {s['commit'][:10]} ({s['date']}), sha256 {fig['sha256'][:12]}; "
            f"licence {s['licence']}; committed as experiments/paper/efficiency_figure.png.")


def digitized(fig: dict[str, Any], root: Path) -> list[Artifact]:
    m = fig["markers"]
    unit = {"latency_s": "s", "tflop_per_step": "TFLOP/step"}
    t = pd.DataFrame({"panel": [PANELS.get(p, p) for p in m["panel"]], "model": [NAMES[x] for x in m["model"]],
                      "point": m["category"], "plotted": [num(v) for v in m["value"]],
                      "+-": [num(v) for v in m["u_value"]],
                      "unit": [unit[q] for q in m["quantity"]], "u px": m["u_px"],
                      "of which centre px": m["u_centre_px"],
                      "marker score": m["score"]})
    cal = "; ".join(f"{PANELS.get(p['id'], p['id'])}: {len(p['gridline_rows_px'])} gridlines, largest residual "
                    f"{p['u_cal_px']:.2f} px, {abs(p['px_per_unit']):.4g} px per unit" for p in fig["panels"])
    write_table(root, "paper/efficiency_figure", t, floatfmt=".4g",
                title="The project page's efficiency figure, digitized: every plotted marker with its uncertainty",
                notes=[_source_note(fig),
                       "Digitized by `python -m evalkit figure digitize` (evalkit/figure/digitize.py): plot frames, "
                       "gridlines and markers found from pixel colours; the gridline rows fitted against the printed "
                       "tick values give the pixel -> value map. +- is a half-width: the image of u px = (largest "
                       "gridline-fit residual of the panel) + (the marker centre's uncertainty: max(0.75 px, its "
                       "spread over template sizes); larger only for a marker hidden under the other).",
                       f"Calibration: {cal}.",
                       "Latency as plotted ('Computational Cost (Latency)', unit not printed: seconds, as Table 2's "
                       "102 s matches LinGen at 512^2 / 17 s); FLOPs as plotted ('Computational Cost per Step "
                       "(TFLOP)'). The frames are printed as squares (256^2, 512^2, 768^2, 1024^2)."])
    lab = fig["labels"]
    lt = pd.DataFrame({"panel": [PANELS.get(p, p) for p in lab["panel"]], "point": lab["category"],
                       "printed": lab["text"], "printed range": [f"{a:g}-{b:g}" for a, b in lab["printed_range"]],
                       "digitized DiT / LinGen": lab["ratio"],
                       "range": [f"{a:.3g}-{'inf' if b is None or b == float('inf') else f'{b:.3g}'}"
                                 for a, b in lab["ratio_range"]], "agrees": lab["agrees"]})
    n_ok = int(lab["agrees"].sum())
    write_table(root, "paper/efficiency_figure_labels", lt, floatfmt=".3g",
                title="The figure's printed ratio labels against the digitized ratios",
                notes=[f"{n_ok} of {len(lab)} printed labels agree with the digitized DiT / LinGen ratio: the ratio's "
                       "range (from both values' half-widths) overlaps the label's rounding interval.",
                       _source_note(fig)])
    src = ("project page efficiency figure", "Fig. 6")
    return [Artifact(stem="paper/efficiency_figure", exts=(".md", ".tex"), title="Efficiency figure digitized "
                     "(value +- half-width per marker)", sources=src),
            Artifact(stem="paper/efficiency_figure_labels", exts=(".md", ".tex"), title="Efficiency figure: printed "
                     "ratio labels vs digitized ratios", sources=src)]


# ---- records of the published runs ------------------------------------------------------------------------------
def fit_records(df: pd.DataFrame) -> pd.DataFrame:
    """Records of the newest published ``figure fit`` run (empty when there is none)."""
    if df.empty or "kind" not in df:
        return pd.DataFrame()
    sel = df[df["kind"] == "figure_fit"]
    return sel[sel["_run_id"] == sel["_run_id"].max()] if not sel.empty else sel


def sweep_flops(df: pd.DataFrame, variation: str) -> pd.DataFrame:
    """FLOPs records of the newest experiments/paper_figure.yaml run for one variation (``presets`` / ``fitted``):
    TFLOP per step = counted forward x cfg_factor (the passes per step the experiment assumes)."""
    if df.empty or "_experiment" not in df or "variation" not in df:
        return pd.DataFrame()
    sel = df[(df["_experiment"] == SWEEP) & (df.get("kind") == "cost") & (df["measurement"] == "flops")
             & df["status"].isin(("ok", "flagged"))]
    sel = sel[sel["variation"].fillna("").str.startswith(variation + "[")]
    if sel.empty:
        return sel
    sel = sel[sel["_run_id"] == sel["_run_id"].max()].copy()
    sel["tflop_per_step"] = sel["flops"] * sel["cfg_factor"] / 1e12
    return sel


def _label_frame(cat: str, frame: tuple[int, int]) -> tuple[int, int]:
    side = int(cat.split("²")[0])
    return frame[0] * side // 512, frame[1] * side // 512


def presets_at(sweep: pd.DataFrame, model: str, cat: str, duration: float, frame: tuple[int, int] = (512, 512)
               ) -> pd.Series | None:
    h, w = _label_frame(cat, frame)
    hit = sweep[(sweep["model"] == model) & (sweep["height"] == h) & (sweep["width"] == w)
                & (sweep["duration_s"].astype(float) == float(duration))]
    return hit.iloc[0] if len(hit) else None


def point_rows(fig: dict[str, Any] | None, df: pd.DataFrame) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """paper_vs_measured rows: every plotted FLOPs marker against the presets' counted FLOPs per step."""
    if fig is None:
        return [], pd.DataFrame()
    sweep = sweep_flops(df, "presets")
    rows = []
    for _, m in fig["markers"][fig["markers"]["quantity"] == "tflop_per_step"].iterrows():
        rec = presets_at(sweep, m["model"], m["category"], m["duration_s"]) if not sweep.empty else None
        if rec is None:
            measured, hw = "not measured", ""
        else:
            measured = (f"{rec['tflop_per_step']:.0f} ({100 * (rec['tflop_per_step'] / m['value'] - 1):+.0f}%; "
                        f"{rec['flops'] / 1e12:.0f} per forward x {int(rec['cfg_factor'])} passes)")
            hw = f"{rec['_hardware']} (device meta) [FLOPs counted on meta, {int(rec['height'])}x{int(rec['width'])}]"
        rows.append({"quantity": f"{NAMES[m['model']]} TFLOP per step at {m['category']} "
                                 f"({PANELS[m['panel']].split(' ', 1)[1]})",
                     "paper": f"{num(m['value'])} +- {num(m['u_value'])}", "paper source": "project page efficiency "
                     "figure (digitized; Fig. 6b counterpart)", "measured": measured, "measured on": hw,
                     "runs": "" if rec is None else rec["_run_id"],
                     "basis": "prediction: the presets were not tuned to these points (passes per step assumed 2: "
                              "CFG, experiments/paper_figure.yaml)"})
    return rows, sweep


def fitted_ratio(df: pd.DataFrame, duration: float = 68.0) -> dict[str, Any] | None:
    """DiT / LinGen FLOPs per forward of the fitted geometry at 512^2 and ``duration`` (the tornado's marker)."""
    sel = sweep_flops(df, "fitted")
    if sel.empty:
        return None
    at = {m: presets_at(sel, m, "512², 68s", duration) for m in ("dit", "lingen")}
    if any(v is None for v in at.values()):
        return None
    return {"ratio": float(at["dit"]["flops"]) / float(at["lingen"]["flops"]), "run_id": at["dit"]["_run_id"],
            "frame": f"{int(at['dit']['height'])}x{int(at['dit']['width'])}"}


def used_runs(frames: list[pd.DataFrame], runs: list[Run]) -> tuple:
    used = [f for f in frames if f is not None and not f.empty]
    return run_ids(pd.concat(used), runs) if used else ()


def fit_summary(fig: dict[str, Any] | None, df: pd.DataFrame) -> dict[str, Any] | None:
    """What the paper-vs-measured and sensitivity notes say about the figure: how many FLOPs markers, the best
    fit's max |z| and residual range, and the presets' residual range (None without a published fit run)."""
    rec = fit_records(df)
    if fig is None or rec.empty:
        return None
    best = rec[(rec["record"] == "candidate") & (rec["list"] == "best")].sort_values("rank").iloc[0]
    away = [m["residual_pct"] for m in best["markers"] if not m["category"].startswith("256")]
    rows, _ = point_rows(fig, df)
    pre = [float(r["measured"].split("(")[1].split("%")[0]) for r in rows
           if r["measured"] != "not measured" and " 256²" not in r["quantity"]]
    summ = rec[rec["record"] == "summary"].iloc[0]
    return {"markers": len(best["markers"]), "best_max_abs_z": float(best["max_abs_z"]),
            "best_pct": (min(away), max(away)), "fitting": int(summ["fitting"]),
            "presets_pct": (min(pre), max(pre)) if pre else None, "run_id": best["_run_id"]}
