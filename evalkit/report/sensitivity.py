"""What the 15x depends on: the DiT / LinGen FLOPs ratio at the headline point (68 s / 512p; paper Fig. 1 caption,
Fig. 6b "up to 15x") under each assumed quantity, from a sweep with ``variations`` (experiments/sensitivity.yaml).

Three artifacts per such run (the newest run of each experiment):
- ``cost/sensitivity_<exp>``: one row per variation: axis, value, parameters and FLOPs of both models, the ratio,
  its change against the presets, and whether it lies within the paper's target +- tolerance;
- ``cost/fig_sensitivity_tornado_<exp>``: per axis, the range of the ratio over the axis' values around the
  presets' ratio (tornado, widest axis on top), with the target band shaded;
- ``cost/sensitivity_4b_geometries_<exp>``: every variation that sets the whole geometry (width, heads, FFN,
  depth) and nothing else, whether both models are "4B" (``sensitivity.params_band_billions``) and give the
  target ratio.
The judging settings (duration, target, tolerance, parameter band) come from the run's manifest (the experiment's
``sensitivity:`` section), never from this module. Reads records only.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.report.cost import measurement
from evalkit.report.render import Artifact, new_figure, save_figure, write_table
from evalkit.report.runs import Run, run_ids

GEOMETRY_KEYS = ("d_model", "heads", "ffn_dim", "depth")
DEFAULTS = {"duration_s": 68.0, "target_ratio": 15.0, "ratio_tol": 0.10, "params_band_billions": [3.6, 4.4]}


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def _settings(run: Run) -> dict[str, Any]:
    return {**DEFAULTS, **(run.manifest.get("config", {}).get("sensitivity") or {})}


def _baseline(names: list[str]) -> str | None:
    """The presets' variation: the one named ``baseline`` (experiments/sensitivity.yaml), else None."""
    return "baseline" if "baseline" in names else None


def frame(df: pd.DataFrame, run: Run) -> pd.DataFrame:
    """One row per (variation, resolution) of ``run`` at the settings' duration with both models counted."""
    fl = measurement(df, "flops")
    if fl.empty or "variation" not in fl:
        return pd.DataFrame()
    st = _settings(run)
    fl = fl[(fl["_run_id"] == run.run_id) & fl["variation"].notna()
            & (fl["duration_s"].astype(float) == float(st["duration_s"]))]
    rows = []
    for (var, h, w), g in fl.groupby(["variation", "height", "width"], sort=False):
        by = {m: g[g["model"] == m].iloc[0] for m in ("lingen", "dit") if (g["model"] == m).any()}
        if len(by) < 2:
            continue
        lin, dit = by["lingen"], by["dit"]
        over = lin["model_overrides"] if isinstance(lin["model_overrides"], dict) else {}
        rows.append({"variation": var, "axis": lin["variation_axis"], "value": lin["variation_value"] or "presets",
                     "height": int(h), "width": int(w), "num_tokens": int(lin["num_tokens"]),
                     "params_dit_b": float(dit["params"]) / 1e9, "params_lingen_b": float(lin["params"]) / 1e9,
                     "pflop_dit": float(dit["flops"]) / 1e15, "pflop_lingen": float(lin["flops"]) / 1e15,
                     "ratio": float(dit["flops"]) / float(lin["flops"]), "overrides": over,
                     "_run_id": run.run_id})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    base = _baseline(list(out["variation"]))
    if base is None:
        return pd.DataFrame()   # nothing to compare against: a sweep with variations needs a `baseline`
    base_ratio = float(out.loc[out["variation"] == base, "ratio"].iloc[0])
    lo, hi = st["target_ratio"] * (1 - st["ratio_tol"]), st["target_ratio"] * (1 + st["ratio_tol"])
    out["vs_presets_pct"] = 100 * (out["ratio"] / base_ratio - 1)
    out["in_target"] = (out["ratio"] >= lo) & (out["ratio"] <= hi)
    out["is_baseline"] = out["variation"] == base
    # presets first, then the axes by how far they move the ratio (as the tornado), values in natural order
    span = out.groupby("axis")["ratio"].agg(lambda r: r.max() - r.min())
    out["_axis_rank"] = [float("-inf") if b else -span[a] for a, b in zip(out["axis"], out["is_baseline"])]
    out["_value_key"] = [tuple(_natural(v)) for v in out["value"]]
    return out.sort_values(["_axis_rank", "axis", "_value_key"]).drop(
        columns=["_axis_rank", "_value_key"]).reset_index(drop=True)


def _fitted_note(fitted: dict[str, Any]) -> str:
    f = fitted.get("summary") or {}
    return (f"The geometry fitted to the project page's efficiency figure (reports/paper/figure_fit.md; the "
            f"tornado's dashed marker) gives {fitted['ratio']:.2f}x at {fitted['frame']} / 68 s"
            + (f"; fitted to {f['markers']} plotted FLOPs points, it misses them by up to {f['best_max_abs_z']:.2f} "
               f"half-widths ({f['best_pct'][0]:+.0f}% ... {f['best_pct'][1]:+.0f}% away from 256^2): no 4B geometry "
               "fits them all" if f else "") + ".")


def _target_text(st: dict[str, Any]) -> str:
    return f"{st['target_ratio']:g}x +- {100 * st['ratio_tol']:g}%"


def _widest(data: pd.DataFrame, n: int = 2) -> str:
    spans = data.groupby("axis", sort=False)["ratio"].agg(["min", "max"])
    spans = spans.assign(span=spans["max"] - spans["min"]).sort_values("span", ascending=False).head(n)
    return ", ".join(f"{a} ({r['min']:.2f}x-{r['max']:.2f}x)" for a, r in spans.iterrows())


def _table(data: pd.DataFrame, st: dict[str, Any], root: Path, stem: str,
           fitted: dict[str, Any] | None = None) -> None:
    base = data[data["is_baseline"]].iloc[0]
    t = pd.DataFrame({"axis": data["axis"], "value": data["value"],
                      "frame": [f"{h}x{w}" for h, w in zip(data["height"], data["width"])],
                      "DiT params (B)": data["params_dit_b"], "LinGen params (B)": data["params_lingen_b"],
                      "DiT PFLOP": data["pflop_dit"], "LinGen PFLOP": data["pflop_lingen"],
                      "DiT/LinGen": data["ratio"], "vs presets %": data["vs_presets_pct"],
                      f"within {_target_text(st)}": data["in_target"]})
    write_table(root, stem, t, title=f"What the {st['target_ratio']:g}x depends on: DiT / LinGen FLOPs per forward "
                f"at {st['duration_s']:g} s, each assumed quantity varied",
                notes=[f"Baseline = {base['axis']}: {base['ratio']:.2f}x at {base['height']}x{base['width']}; paper: "
                       f"up to {st['target_ratio']:g}x (Fig. 1 caption, Fig. 6b).",
                       "The presets are a calibrated match, not an independent confirmation: their width and "
                       "'512p' frame were chosen so that the paper's ratio is reachable (backbone/"
                       "flavors.yaml). Over all variations here the ratio spans "
                       f"{data['ratio'].min():.2f}x-{data['ratio'].max():.2f}x; widest axes: {_widest(data)}.",
                       "FLOPs counted on the meta device (hardware-independent), one denoiser forward, 2 FLOPs per "
                       "multiply-add; the assumed ranges and the tolerance are in experiments/sensitivity.yaml."]
                + ([_fitted_note(fitted)] if fitted else []))


def _tornado(data: pd.DataFrame, st: dict[str, Any], root: Path, stem: str,
             fitted: dict[str, Any] | None = None) -> pd.DataFrame:
    base = float(data.loc[data["is_baseline"], "ratio"].iloc[0])
    rows = []
    for axis, g in data[~data["is_baseline"]].groupby("axis", sort=False):
        lo, hi = g.loc[g["ratio"].idxmin()], g.loc[g["ratio"].idxmax()]
        rows.append({"axis": axis, "min_ratio": lo["ratio"], "min_value": lo["value"], "max_ratio": hi["ratio"],
                     "max_value": hi["value"], "span": hi["ratio"] - lo["ratio"], "presets_ratio": base})
    bars = pd.DataFrame(rows).sort_values("span").reset_index(drop=True)
    fig, axes = new_figure(figsize=(9.0, 0.45 * len(bars) + 1.8))
    ax = axes[0, 0]
    lo_t, hi_t = st["target_ratio"] * (1 - st["ratio_tol"]), st["target_ratio"] * (1 + st["ratio_tol"])
    ax.axvspan(lo_t, hi_t, color="C2", alpha=0.15, label=f"paper {_target_text(st)}")
    ax.axvline(base, color="k", lw=1, label=f"presets {base:.2f}x")
    if fitted is not None:   # the geometry fitted to the project page's efficiency figure (evalkit/figure/fit.py)
        ax.axvline(fitted["ratio"], color="C3", lw=1.2, ls="--",
                   label=f"fitted to the efficiency figure {fitted['ratio']:.2f}x ({fitted['frame']})")
        bars["fitted_ratio"] = fitted["ratio"]
    for i, b in bars.iterrows():   # the values at either end are in the CSV and the sensitivity table
        ax.barh(i, b["max_ratio"] - b["min_ratio"], left=b["min_ratio"], color="C0", height=0.6)
        ax.annotate(f"{b['min_ratio']:.1f}x", (b["min_ratio"], i), xytext=(-3, 0), textcoords="offset points",
                    ha="right", va="center", fontsize=7)
        ax.annotate(f"{b['max_ratio']:.1f}x", (b["max_ratio"], i), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=7)
    ax.set_yticks(range(len(bars)), bars["axis"])
    lo_x, hi_x = min(bars["min_ratio"].min(), lo_t), max(bars["max_ratio"].max(), hi_t)
    if fitted is not None:
        lo_x, hi_x = min(lo_x, fitted["ratio"]), max(hi_x, fitted["ratio"])
    ax.set_xlim(lo_x - 0.12 * (hi_x - lo_x), hi_x + 0.12 * (hi_x - lo_x))
    ax.set_xlabel(f"DiT / LinGen FLOPs per forward at {st['duration_s']:g} s (range over the values swept)")
    ax.set_title(f"What the {st['target_ratio']:g}x depends on")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3 if fitted is None else 2)
    save_figure(fig, root, stem, bars)
    return bars


def _geometries(data: pd.DataFrame, st: dict[str, Any], root: Path, stem: str) -> pd.DataFrame | None:
    """The 4B-geometry table; None (nothing written) when no variation changes the geometry alone."""
    geo = data[[set(o) == set(GEOMETRY_KEYS) for o in data["overrides"]]].copy()
    if geo.empty:
        return None
    for k in GEOMETRY_KEYS:
        geo[k] = [int(o[k]) for o in geo["overrides"]]
    geo = geo.drop_duplicates(list(GEOMETRY_KEYS))
    lo_b, hi_b = st["params_band_billions"]
    geo["is_4b"] = geo["params_dit_b"].between(lo_b, hi_b) & geo["params_lingen_b"].between(lo_b, hi_b)
    geo = geo[geo["is_4b"]].sort_values(["d_model", "ffn_dim"]).reset_index(drop=True)
    t = pd.DataFrame({"d_model": geo["d_model"], "heads": geo["heads"], "ffn_dim": geo["ffn_dim"],
                      "FFN / d": geo["ffn_dim"] / geo["d_model"], "depth": geo["depth"],
                      "DiT params (B)": geo["params_dit_b"], "LinGen params (B)": geo["params_lingen_b"],
                      "DiT/LinGen": geo["ratio"], f"within {_target_text(st)}": geo["in_target"]})
    hits = geo[geo["in_target"]]
    listed = "; ".join(f"d {r.d_model}, FFN {r.ffn_dim}, {r.depth} layers ({r.ratio:.2f}x)" for r in hits.itertuples())
    write_table(root, stem, t, title=f"4B geometries (both models {lo_b:g}-{hi_b:g} B parameters) and their "
                f"DiT / LinGen FLOPs ratio at {st['duration_s']:g} s",
                notes=[f"{len(hits)} of {len(geo)} 4B geometries give {_target_text(st)}: {listed or 'none'}.",
                       f"Ratio range over these 4B geometries: {geo['ratio'].min():.2f}x-{geo['ratio'].max():.2f}x.",
                       "Geometries: every variation of the run that sets d_model, heads, ffn_dim and depth and "
                       "nothing else (frame size and mixer settings at the presets)."])
    return geo


def sensitivity(df: pd.DataFrame, runs: list[Run], root: Path, fitted: dict[str, Any] | None = None
                ) -> list[Artifact]:
    """``fitted``: the DiT / LinGen ratio of the geometry fitted to the project page's efficiency figure
    (:func:`evalkit.report.figure.fitted_ratio`), drawn on the tornado as a marker when given."""
    arts: list[Artifact] = []
    newest: dict[str, Run] = {}
    for run in runs:
        if (run.manifest.get("config", {}).get("variations")) and \
                (run.experiment not in newest or run.run_id > newest[run.experiment].run_id):
            newest[run.experiment] = run
    for exp, run in sorted(newest.items()):
        data = frame(df, run)
        if data.empty or not data["is_baseline"].any():
            continue
        st, ids = _settings(run), run_ids(data, runs)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", exp).strip("-").lower()
        _table(data, st, root, f"cost/sensitivity_{slug}", fitted if float(st["duration_s"]) == 68.0 else None)
        arts.append(Artifact(stem=f"cost/sensitivity_{slug}", exts=(".md", ".tex"), runs=ids,
                             title="Sensitivity of the DiT/LinGen FLOPs ratio to each assumed quantity",
                             sources=("Fig. 1 caption", "Fig. 6(b)")))
        if (~data["is_baseline"]).any():
            fit = fitted if fitted is not None and float(st["duration_s"]) == 68.0 else None
            _tornado(data, st, root, f"cost/fig_sensitivity_tornado_{slug}", fit)
            fit_ids = tuple(r for r in run_ids(pd.DataFrame({"_run_id": [fit["run_id"]]}), runs)) if fit else ()
            arts.append(Artifact(stem=f"cost/fig_sensitivity_tornado_{slug}", exts=(".png", ".svg", ".csv"),
                                 runs=tuple(sorted(set(ids) | set(fit_ids))),
                                 title="Tornado: range of the DiT/LinGen FLOPs ratio per assumed quantity"
                                       + (" (marker: the geometry fitted to the efficiency figure)" if fit else ""),
                                 sources=("Fig. 1 caption", "Fig. 6(b)")))
        if _geometries(data, st, root, f"cost/sensitivity_4b_geometries_{slug}") is not None:
            arts.append(Artifact(stem=f"cost/sensitivity_4b_geometries_{slug}", exts=(".md", ".tex"), runs=ids,
                                 title="4B geometries and whether they give the paper's 15x",
                                 sources=("Fig. 1 caption",)))
    return arts


def summary(df: pd.DataFrame, runs: list[Run]) -> dict[str, Any] | None:
    """Headline figures of the newest run with variations (for the paper-vs-measured notes), or None."""
    cand = [r for r in runs if r.manifest.get("config", {}).get("variations")]
    for run in sorted(cand, key=lambda r: r.run_id, reverse=True):
        data = frame(df, run)
        if data.empty or not data["is_baseline"].any():
            continue
        st = _settings(run)
        lo_b, hi_b = st["params_band_billions"]
        four_b = data[data["params_dit_b"].between(lo_b, hi_b) & data["params_lingen_b"].between(lo_b, hi_b)]
        return {"experiment": run.experiment, "run_id": run.run_id, "min": float(data["ratio"].min()),
                "max": float(data["ratio"].max()), "min_4b": float(four_b["ratio"].min()),
                "max_4b": float(four_b["ratio"].max()), "widest": _widest(data), "settings": st, "data": data}
    return None
