"""Physics check of the project page's efficiency figure (the absolute counterpart of the paper's Fig. 6; the paper's
caption: "Latency is measured on a single H100 GPU"): for every plotted latency point, the throughput it implies
with the plotted FLOPs per step (plotted TFLOP per step x steps / plotted latency) against the H100's dense peak;
latency growth against FLOPs growth per model; Table 2's 102 s against the figure; and which single assumption
(steps, passes, precision, GPU count, FLOP convention) would let every point hold at once. Pure arithmetic on
experiments/paper data (and, for 768^2 where the figure plots no FLOPs, the fitted geometry's FLOPs from a
published ``figure fit`` run, labelled as such).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.report import figure as fg
from evalkit.report import paper
from evalkit.report.render import Artifact, write_table
from evalkit.report.runs import Run

# NVIDIA H100 SXM5 datasheet: 989 TFLOP/s dense BF16 Tensor Core (1,979 with sparsity); FP8 1,979 dense (3,958
# with sparsity)
BF16_PEAK = 989.0
FP8_PEAK = 1979.0
STEPS = 50       # stated: "the default setting of 50 steps employed in our main paper" (Fig. 20 caption)
# for scale: FlashAttention-3's attention kernel alone reaches "up to 740 TFLOPs/s (75% utilization)" in FP16 and
# "close to 1.2 PFLOPs/s" in FP8 on an H100 (FlashAttention-3, arXiv 2407.08608, abstract)
FA3_BF16_FRACTION = 0.75
FA3_FP8_TFLOPS = 1200.0
FLOPS_PANEL = {"latency_resolution": "flops_resolution", "latency_length": "flops_length"}
SOURCES = ("project page efficiency figure", "Fig. 6", "Table 2")


def _flops_for(fig: dict[str, Any], lat: pd.Series, fit: pd.DataFrame) -> tuple[float, float, str] | None:
    """(TFLOP per step, half-width, source) at a latency marker's point: the plotted FLOPs marker of the same point
    in the FLOPs panel of the same row, else (768^2) the fitted geometry's FLOPs per step."""
    m = fig["markers"]
    hit = m[(m["panel"] == FLOPS_PANEL[lat["panel"]]) & (m["model"] == lat["model"])
            & (m["category"] == lat["category"])]
    if len(hit):
        return float(hit.iloc[0]["value"]), float(hit.iloc[0]["u_value"]), "plotted"
    if fit.empty:
        return None
    p = fit[(fit["record"] == "latency_prediction") & (fit["panel"] == lat["panel"]) & (fit["model"] == lat["model"])
            & (fit["category"] == lat["category"])]
    if not len(p):
        return None
    return float(p.iloc[0]["tflop_per_forward"]) * float(p.iloc[0]["passes"]), 0.0, "fitted geometry (not plotted)"


def implied(fig: dict[str, Any], fit: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, lat in fig["markers"][fig["markers"]["quantity"] == "latency_s"].iterrows():
        f = _flops_for(fig, lat, fit)
        if f is None:
            continue
        F, uF, src = f
        L, uL = float(lat["value"]), float(lat["u_value"])
        t = F * STEPS / L
        lo, hi = max(F - uF, 0) * STEPS / (L + uL), (F + uF) * STEPS / (L - uL)
        rows.append({"panel": fg.PANELS[lat["panel"]], "model": fg.NAMES[lat["model"]], "point": lat["category"],
                     "latency s": L, "+- s": uL, "TFLOP/step": F, "+- TFLOP": uF, "FLOPs from": src,
                     "TFLOP/s at 50 steps": round(t), "range": f"{lo:.0f}-{hi:.0f}",
                     "% bf16 peak": 100 * t / BF16_PEAK, "% FP8 peak": 100 * t / FP8_PEAK,
                     "steps at bf16 peak": L * BF16_PEAK / F, "_lo": lo, "_hi": hi, "_model": lat["model"]})
    return pd.DataFrame(rows)


def _range(a: tuple[float, float], b: tuple[float, float]) -> str:
    """The range of a / b from their half-widths."""
    lo = max(a[0] - a[1], 0.0) / (b[0] + b[1])
    hi = (a[0] + a[1]) / (b[0] - b[1]) if b[0] > b[1] else float("inf")
    return f"{lo:.3g}-{hi:.3g}"


def growth(fig: dict[str, Any]) -> pd.DataFrame:
    m = fig["markers"]
    rows = []
    for model in ("dit", "lingen"):
        def v(panel: str, cat: str) -> tuple[float, float]:
            r = m[(m["panel"] == panel) & (m["model"] == model) & (m["category"] == cat)].iloc[0]
            return float(r["value"]), float(r["u_value"])
        for lat_panel, fl_panel, base, others in (("latency_length", "flops_length", "512², 17s",
                                                   ("512², 34s", "512², 68s")),
                                                  ("latency_resolution", "flops_resolution", "256², 17s",
                                                   ("512², 17s",))):
            L0, F0 = v(lat_panel, base), v(fl_panel, base)
            for cat in others:
                L1, F1 = v(lat_panel, cat), v(fl_panel, cat)
                gl, gf = L1[0] / L0[0], F1[0] / F0[0]
                rows.append({"model": fg.NAMES[model], "from": base, "to": cat, "latency growth": gl,
                             "latency range": _range(L1, L0), "FLOPs growth": gf, "FLOPs range": _range(F1, F0),
                             "throughput change %": 100 * (gf / gl - 1)})
    return pd.DataFrame(rows)


def reconcile(imp: pd.DataFrame, fractions: dict[str, float]) -> tuple[pd.DataFrame, float]:
    """Per single assumption, the highest fraction of the available peak any plotted point then needs (at the most
    favourable end of its range), and whether every point can hold (<= 100 %)."""
    need = imp["_lo"].max()          # the most demanding point, read as favourably as its range allows
    worst = imp.loc[imp["_lo"].idxmax()]
    steps_peak = float((imp["latency s"] + imp["+- s"]).mul(BF16_PEAK).div(imp["TFLOP/step"] + imp["+- TFLOP"]).min())
    frac = {m: fractions.get(m, fractions.get("default", 0.3)) for m in ("dit", "lingen")}
    steps_planner = min(float((r["latency s"] + r["+- s"]) * BF16_PEAK * frac[r["_model"]]
                              / (r["TFLOP/step"] + r["+- TFLOP"])) for _, r in imp.iterrows())
    cases = [("as stated: 1 H100, bf16 dense, 50 steps, FLOPs per step as plotted", BF16_PEAK, 1.0),
             ("FP8 (dense peak 1979 TFLOP/s)", FP8_PEAK, 1.0),
             ("2 H100s (bf16, perfect scaling)", 2 * BF16_PEAK, 1.0),
             ("the plotted TFLOP per step count 2 forwards (CFG) but the latency ran 1 per step", BF16_PEAK, 0.5),
             ("the plotted TFLOP count multiply-adds (FLOPs = 2 x plotted)", BF16_PEAK, 2.0)]
    rows = [{"assumption": a, "peak TFLOP/s": p, "highest need TFLOP/s": need * k,
             "highest need % of peak": 100 * need * k / p, "every point <= 100%": bool(need * k <= p)}
            for a, p, k in cases]
    rows.append({"assumption": f"fewer steps: at most {steps_peak:.0f} steps (every point <= bf16 peak), "
                               f"{steps_peak * FA3_BF16_FRACTION:.0f} at FlashAttention-3's best bf16 utilisation "
                               f"({100 * FA3_BF16_FRACTION:g}%), {steps_planner:.0f} at the planner's fractions (DiT "
                               f"{frac['dit']:g}, LinGen {frac['lingen']:g})", "peak TFLOP/s": BF16_PEAK,
                 "highest need TFLOP/s": need * steps_peak / STEPS,
                 "highest need % of peak": 100 * need * steps_peak / STEPS / BF16_PEAK, "every point <= 100%": True})
    t = pd.DataFrame(rows)
    t.attrs["worst"] = f"{worst['model']} {worst['point']} ({worst['panel']})"
    return t, steps_peak


def render(fig: dict[str, Any] | None, df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    if fig is None:
        return []
    fit = fg.fit_records(df)
    imp = implied(fig, fit)
    fracs = {}
    if not fit.empty:
        man = next((r.manifest for r in runs if r.run_id == fit["_run_id"].iloc[0]), {})
        fracs = man.get("config", {}).get("throughput", {}).get("achieved_fraction", {})
    plotted = imp[imp["FLOPs from"] == "plotted"]      # the verdict rests on the figure's own numbers only
    rec, steps_peak = reconcile(plotted, fracs)
    need = float(plotted["_lo"].max())
    over = plotted[plotted["_lo"] > BF16_PEAK]
    extra = imp[imp["FLOPs from"] != "plotted"]
    t2 = paper.table2()
    t2_default = float(t2.loc[t2["variant"] == "default", "latency_s"].iloc[0])
    lin = fig["markers"][(fig["markers"]["model"] == "lingen") & (fig["markers"]["category"] == "512², 17s")
                         & (fig["markers"]["quantity"] == "latency_s")]
    t2_agrees = all(abs(float(r["value"]) - t2_default) <= float(r["u_value"]) + 0.5 for _, r in lin.iterrows())
    lin_fl = imp[(imp["model"] == "LinGen-4B") & (imp["point"] == "512², 17s")]
    t2_rate = float(lin_fl["TFLOP/step"].iloc[0]) * STEPS / t2_default if len(lin_fl) else float("nan")
    gr = growth(fig)
    dit68 = gr[(gr["model"] == "DiT-4B") & (gr["to"] == "512², 68s")].iloc[0]
    lin68 = gr[(gr["model"] == "LinGen-4B") & (gr["to"] == "512², 68s")].iloc[0]
    notes = [
        f"On one H100 in bf16 with {STEPS} steps the figure's numbers cannot all hold: {len(over)} of {len(plotted)} "
        f"latency points with plotted FLOPs need more than the dense bf16 peak ({BF16_PEAK:g} TFLOP/s) even at the "
        f"favourable end of their ranges (" + "; ".join(f"{r['model']} {r['point']}: {r['_lo']:.0f}-{r['_hi']:.0f} "
                                                        "TFLOP/s" for _, r in over.iterrows()) +
        f"); the most demanding is {rec.attrs['worst']}." +
        ("".join(f" At {r['point']} the figure plots no FLOPs: with the fitted geometry's ({r['TFLOP/step']:.0f} "
                 f"TFLOP per step, a prediction) {r['model']} would need {r['TFLOP/s at 50 steps']:.0f} TFLOP/s."
                 for _, r in extra.iterrows()) if len(extra) else ""),
        f"What would reconcile them (paper/figure_physics_reconcile): two GPUs, a FLOP count twice the work the "
        f"latency measured (e.g. CFG's two forwards counted, one run per step), or at most {steps_peak:.0f} steps "
        f"(at 100 % of the peak; {steps_peak * FA3_BF16_FRACTION:.0f} at FlashAttention-3's best utilisation); "
        f"FP8 alone needs {need:.0f} TFLOP/s, more than FlashAttention-3's FP8 attention kernel reaches "
        f"(~{FA3_FP8_TFLOPS:g}).",
        f"Within the figure: from 17 s to 68 s DiT's latency grows {dit68['latency growth']:.1f}x for "
        f"{dit68['FLOPs growth']:.1f}x FLOPs (its implied throughput falls by "
        f"{-dit68['throughput change %']:.0f}%), LinGen's {lin68['latency growth']:.2f}x for "
        f"{lin68['FLOPs growth']:.2f}x FLOPs (rises by {lin68['throughput change %']:.0f}%; a MATE block's FLOPs "
        "grow at most 4x for 4x tokens, see paper/figure_fit_bounds).",
        f"Table 2's default latency ({t2_default:g} s, 512p / 17 s) " +
        ("agrees with" if t2_agrees else "does not agree with") + " the figure's LinGen-4B at 512^2 / 17 s (" +
        ", ".join(f"{float(r['value']):.1f} +- {float(r['u_value']):.2g} s" for _, r in lin.iterrows()) +
        "): Table 2's '512p' is the figure's square 512^2" +
        (f"; with the plotted {lin_fl['TFLOP/step'].iloc[0]:.0f} TFLOP per step it implies {t2_rate:.0f} TFLOP/s "
         f"({100 * t2_rate / BF16_PEAK:.0f}% of bf16 peak) for a Mamba2 + window-attention model"
         if len(lin_fl) else "") + ".",
        f"TFLOP/s at {STEPS} steps = plotted TFLOP per step x {STEPS} / plotted latency; ranges from both half-widths; "
        f"H100 SXM5 dense peaks per NVIDIA's datasheet: bf16 {BF16_PEAK:g}, FP8 {FP8_PEAK:g} TFLOP/s. For scale, "
        f"FlashAttention-3's attention kernel alone reaches up to {100 * FA3_BF16_FRACTION:g}% of the bf16 peak and "
        f"close to {FA3_FP8_TFLOPS:g} TFLOP/s in FP8 (arXiv 2407.08608, abstract): a whole model runs slower."]
    out = imp.drop(columns=["_lo", "_hi", "_model"])
    for c in ("latency s", "+- s", "TFLOP/step", "+- TFLOP"):
        out[c] = [fg.num(v) for v in out[c]]
    write_table(root, "paper/figure_physics", out, floatfmt=".3g", notes=notes,
                title="Physics check of the efficiency figure: the throughput every plotted latency implies")
    write_table(root, "paper/figure_physics_growth", gr, floatfmt=".3g",
                title="Efficiency figure: latency growth against FLOPs growth per model",
                notes=["throughput change = FLOPs growth / latency growth - 1 (the implied TFLOP/s, at any fixed step "
                       "count); ranges from the half-widths."])
    write_table(root, "paper/figure_physics_reconcile", rec, floatfmt=".4g",
                title="Efficiency figure: what single assumption lets every plotted latency hold",
                notes=[f"highest need = the most demanding latency point with plotted FLOPs ({rec.attrs['worst']}) at "
                       "the favourable end of its range, as a percentage of the peak the assumption makes available."])
    ids = fg.used_runs([fit], runs)
    return [Artifact(stem="paper/figure_physics", exts=(".md", ".tex"), title="Efficiency figure vs H100 physics "
                     "(implied throughput per latency point)", runs=ids, sources=SOURCES),
            Artifact(stem="paper/figure_physics_growth", exts=(".md", ".tex"), title="Efficiency figure: latency vs "
                     "FLOPs growth", sources=SOURCES[:2]),
            Artifact(stem="paper/figure_physics_reconcile", exts=(".md", ".tex"), title="Efficiency figure: the "
                     "assumptions that would reconcile it with one H100", runs=ids, sources=SOURCES)]
