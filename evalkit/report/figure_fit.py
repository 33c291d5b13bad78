"""The fit of LinGen-4B / DiT-4B's unstated geometry to the project page's efficiency figure (every plotted FLOPs
point; evalkit/figure/fit.py), rendered from a published ``python -m evalkit figure fit`` run: the best geometry
and the constrained / one-model bests, the near-best family, every marker's residual (best fit, the geometry
counted on meta, and the presets), the growth ratios no 4B geometry attains, and the fitted geometry's latency
predictions from the planner's throughput model. Reads records and experiments/paper only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.report import figure as fg
from evalkit.report.render import Artifact, write_table
from evalkit.report.runs import Run

LISTS = {"best": "best (min max |z|)", "printed_frame": "'512^2' = 512x512 px", "passes_1": "1 pass per step",
         "passes_2": "2 passes per step (CFG)", "dit_only": "DiT markers alone", "lingen_only": "LinGen markers alone"}
SOURCES = ("project page efficiency figure", "Fig. 6(b)")
EDGE = 1.01       # a growth ratio attained within 1 % of the plotted range's end counts as reconcilable


def _geo_cols(g: dict[str, Any]) -> dict[str, Any]:
    return {"d": g["d_model"], "heads": g["heads"], "FFN": g["ffn_dim"], "depth": g["depth"], "text": g["text_len"],
            "VAE t,h,w": "x".join(map(str, g["compression"])), "patch": "x".join(map(str, g["patch"])),
            "'512^2' frame": "x".join(map(str, g["frame"])), "passes": g["passes"],
            "TESA window": "x".join(map(str, g["window"])), "review stride": g["review_stride"],
            "d_state": g["d_state"]}


def _row(r: pd.Series, name: str) -> dict[str, Any]:
    return {"search": name, **_geo_cols(r["geometry"]), "tokens 512^2/17s": int(r["tokens_512sq_17s"]),
            "DiT B": r["params_dit"] / 1e9, "LinGen B": r["params_lingen"] / 1e9, "max |z|": r["max_abs_z"],
            "max |z| DiT": r["max_abs_z_dit"], "max |z| LinGen": r["max_abs_z_lingen"], "fits": bool(r["fits"])}


def _cands(rec: pd.DataFrame, lst: str) -> pd.DataFrame:
    c = rec[(rec["record"] == "candidate") & (rec["list"] == lst)]
    return c.sort_values("rank")


def _bounds_text(rec: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    b = rec[rec["record"] == "bound"]
    rows, bad = [], []
    for _, r in b.iterrows():
        lo, hi = r["plotted_range"]
        att_hi, lvl_hi = r.get("max_any"), r.get("max_level")
        att_lo = r.get("min_any")
        short = None
        edge = EDGE   # within 1 %: at the edge of the plotted range, counted as reconcilable
        if att_hi is not None and pd.notna(att_hi) and lo > att_hi * edge:
            short = f"plotted >= {lo:.4g}, every 4B geometry <= {att_hi:.4g} ({100 * (lo / att_hi - 1):.1f}% short)"
        elif lvl_hi is not None and pd.notna(lvl_hi) and lo > lvl_hi * edge:
            short = (f"plotted >= {lo:.4g}, every 4B geometry at the plotted 512^2 / 17 s level <= {lvl_hi:.4g} "
                     f"({100 * (lo / lvl_hi - 1):.1f}% short)")
        elif hi is not None and att_lo is not None and pd.notna(att_lo) and hi * edge < att_lo:
            short = f"plotted <= {hi:.4g}, every 4B geometry >= {att_lo:.4g}"
        rows.append({"model": fg.NAMES[r["model"]], "ratio": r["pair"], "plotted": r["plotted"],
                     "plotted range": f"{lo:.4g}-{'inf' if hi is None else f'{hi:.4g}'}",
                     "4B geometries": f"{att_lo:.4g}-{att_hi:.4g}",
                     "4B at the plotted 17 s level": (f"{r.get('min_level'):.4g}-{lvl_hi:.4g}"
                                                      if lvl_hi is not None and pd.notna(lvl_hi) else "none"),
                     "reconcilable": short is None})
        if short:
            bad.append(f"{fg.NAMES[r['model']]} {r['pair']}: {short}")
    return pd.DataFrame(rows), bad


def render(fig: dict[str, Any] | None, df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    rec = fg.fit_records(df)
    if fig is None or rec.empty:
        return []
    ids = fg.used_runs([rec], runs)
    summ = rec[rec["record"] == "summary"].iloc[0]
    best = _cands(rec, "best").iloc[0]
    space = next((r.manifest["config"]["space"] for r in runs if r.run_id == best["_run_id"]), {})
    arts: list[Artifact] = []
    # -- the lists' bests
    t = pd.DataFrame([_row(_cands(rec, k).iloc[0], v) for k, v in LISTS.items() if not _cands(rec, k).empty])
    bounds, bad = _bounds_text(rec)
    lo_b, hi_b = space.get("params_band_billions", ["?", "?"])
    pct = [m["residual_pct"] for m in best["markers"]]
    notes = [f"Searched (evalkit/figure/fit.py; the ranges are in the run's manifest): {int(summ['combinations'])} "
             f"backbone x tokens x text combinations, every depth with both models in {lo_b}-{hi_b} B parameters, "
             f"1 or 2 passes per step; {int(summ['candidates_refined'])} refined over TESA window, review stride and "
             f"d_state; {int(summ['evaluations'])} analytic FLOPs evaluations (models.estimate_flops = counted on "
             "meta).",
             f"{int(summ['fitting'])} geometries reproduce every plotted FLOPs point within its half-width (|z| <= 1 "
             f"at all 12 markers). The best misses by max |z| = {best['max_abs_z']:.2f} half-widths; its residuals are "
             f"{min(pct):+.0f}% ... {max(pct):+.0f}% (the large relative ones at 256^2, plotted within 1-2 px of "
             "zero).",
             "Which points cannot be reconciled (figure_fit_bounds): " + ("; ".join(bad) if bad else "none") + ".",
             "'fits' = |z| <= 1 at every marker; z = (predicted - plotted) / half-width; FLOPs per step = "
             "forward FLOPs (2 per multiply-add) x passes."]
    write_table(root, "paper/figure_fit", t, floatfmt=".3g", notes=notes,
                title="The unstated geometry fitted to every FLOPs point of the efficiency figure")
    arts.append(Artifact(stem="paper/figure_fit", exts=(".md", ".tex"), title="Geometry fitted to the efficiency "
                         "figure's FLOPs points (best, constrained, one-model fits)", runs=ids, sources=SOURCES))
    # -- the near-best family
    fam = _cands(rec, "near_best")
    ft = pd.DataFrame([{**_row(r, f"#{int(r['rank'])}"), "MATE settings in band": r.get("mate_settings_in_band"),
                        "same tokens as": "; ".join(
        f"{'x'.join(map(str, e['compression']))} / {'x'.join(map(str, e['patch']))} at "
        f"{'x'.join(map(str, e['frame']))}" for e in r["equivalents"][:4])} for _, r in fam.iterrows()])
    toks = sorted({int(x) * int(p) for x, p in zip(fam["tokens_512sq_17s"], [g["passes"] for g in fam["geometry"]])})
    write_table(root, "paper/figure_fit_family", ft, floatfmt=".3g",
                title="The near-best family: every token geometry within one half-width of the best max |z|",
                notes=[f"{len(fam)} classes (one per tokens at 512^2 / 17 s x passes x backbone; the best MATE "
                       "setting shown, with how many TESA window x review stride x d_state settings are within the "
                       "band, and the other frame x VAE x patch spellings of the same token count).",
                       f"What the figure pins: tokens x passes per step at 512^2 / 17 s = "
                       f"{', '.join(f'{v:,}' for v in toks)}; passes, VAE compression, patch and frame trade "
                       "against one another."])
    arts.append(Artifact(stem="paper/figure_fit_family", exts=(".md", ".tex"), title="Efficiency figure fit: the "
                         "near-best family of geometries", runs=ids, sources=SOURCES))
    # -- residuals per marker: best, the fitted geometry counted on meta, the presets
    fitted = fg.sweep_flops(df, "fitted")
    presets = fg.sweep_flops(df, "presets")
    rows = []
    for m in best["markers"]:
        dur = float(m["category"].split(", ")[1].rstrip("s"))
        row = {"panel": fg.PANELS[m["panel"]], "model": fg.NAMES[m["model"]], "point": m["category"],
               "plotted": fg.num(m["plotted"]), "+-": fg.num(m["u"]), "best fit": fg.num(m["predicted"]),
               "best %": m["residual_pct"], "best z": m["z"]}
        g = best["geometry"]
        f = fg.presets_at(fitted, m["model"], m["category"], dur, tuple(g["frame"])) if not fitted.empty else None
        row["fitted, counted on meta"] = (fg.num(f["tflop_per_step"] * g["passes"] / f["cfg_factor"])
                                          if f is not None else None)
        p = fg.presets_at(presets, m["model"], m["category"], dur) if not presets.empty else None
        if p is not None:
            row["presets (2 passes)"] = fg.num(p["tflop_per_step"])
            row["presets %"] = 100 * (p["tflop_per_step"] / m["plotted"] - 1)
            row["presets z"] = (p["tflop_per_step"] - m["plotted"]) / m["u"]
        rows.append(row)
    rt = pd.DataFrame(rows)
    counted = "" if fitted.empty else (" The fitted geometry counted on meta (experiments/paper_figure.yaml, "
                                       "variation 'fitted') agrees with the fit's analytic FLOPs at every point.")
    write_table(root, "paper/figure_fit_residuals", rt, floatfmt=".3g",
                title="Every plotted FLOPs marker against the best fit and the presets (TFLOP per step)",
                notes=["best fit: " + ", ".join(f"{k} {v}" for k, v in _geo_cols(best["geometry"]).items()) + "." +
                       counted,
                       "presets: backbone/flavors.yaml + lingen/preset.yaml (d 2048, FFN 5632, 56 layers, 8x8x8 "
                       "VAE, 1x2x2 patch) at the figure's square frames, counted on meta, 2 passes per step (CFG, as experiments/"
                       "scaling.yaml assumes); the presets' own '512p' is 512x896 (their 15.15x at 68 s).",
                       "% = predicted / plotted - 1; z = (predicted - plotted) / half-width."])
    arts.append(Artifact(stem="paper/figure_fit_residuals", exts=(".md", ".tex"), title="Efficiency figure: residual "
                         "of every FLOPs marker (best fit, presets)", runs=fg.used_runs([rec, fitted, presets], runs),
                         sources=SOURCES))
    write_table(root, "paper/figure_fit_bounds", bounds, floatfmt=".4g",
                title="Growth ratios the figure plots against what any 4B geometry attains (standard costs)",
                notes=["DiT: a transformer's FLOPs are a N + b N^2 per step (N tokens), so 4x tokens give at most 16x "
                       "and exactly 16x only without the linear part (projections, FFN: ~2 x parameters per token). "
                       "LinGen: every MATE term is linear in tokens, so 4x tokens give at most 4x.",
                       "Ranges over every searched 4B geometry (both models in the band) at its best depths; 'at the "
                       "plotted 17 s level': those whose 512^2 / 17 s FLOPs per step (1 or 2 passes) lie within the "
                       "plotted half-width. 'reconcilable': attained within 1 % of the plotted range."])
    arts.append(Artifact(stem="paper/figure_fit_bounds", exts=(".md", ".tex"), title="Efficiency figure: growth ratios "
                         "no 4B geometry attains", runs=ids, sources=SOURCES))
    # -- latency predictions of the fitted geometry
    lat = rec[rec["record"] == "latency_prediction"]
    if not lat.empty:
        lt = pd.DataFrame({"panel": [fg.PANELS[p] for p in lat["panel"]], "model": [fg.NAMES[x] for x in lat["model"]],
                           "point": lat["category"],
                           "frame": [f"{int(h)}x{int(w)}" for h, w in zip(lat["height"], lat["width"])],
                           "plotted s": [fg.num(v) for v in lat["plotted_s"]], "+-": [fg.num(v) for v in lat["u_s"]],
                           "TFLOP per forward": [fg.num(v) for v in lat["tflop_per_forward"]],
                           "achieved fraction": lat["achieved_fraction"],
                           "predicted s": [fg.num(v) for v in lat["predicted_s"]],
                           "predicted / plotted": lat["predicted_over_plotted"]})
        first = lat.iloc[0]
        write_table(root, "paper/figure_latency_predictions", lt, floatfmt=".4g",
                    title="PREDICTIONS: latency per video of the fitted geometry at every plotted latency point",
                    notes=[f"Predictions, not measurements: the planner's throughput model (evalkit/sweep/predict.py, "
                           f"the profile of experiments/paper_latency.yaml: {first['peak_tflops']:g} TFLOP/s dense "
                           "bf16 x the achieved fraction per model) x "
                           f"{int(first['steps'])} steps x {int(first['passes'])} passes per step; the fitted "
                           "geometry's FLOPs. experiments/paper_latency.yaml's parts 'figure' (the presets) and "
                           "'figure_fitted' (this geometry) measure these points on a GPU.",
                           "predicted / plotted > 1: at the planner's assumed utilisation the figure's latency is "
                           "faster than this geometry runs (see paper/figure_physics)."])
        arts.append(Artifact(stem="paper/figure_latency_predictions", exts=(".md", ".tex"), title="Efficiency figure: "
                             "latency predictions of the fitted geometry", runs=ids, sources=("project page efficiency "
                                                                                              "figure", "Fig. 6(a)")))
    return arts
