"""Cost figures and tables from sweep ("cost") records: Fig. 1b / Fig. 6 analogues (FLOPs and latency vs duration
and vs tokens per resolution, LinGen vs DiT, ratio at each point), Fig. 20 analogue (latency, else FLOPs, vs model
size) and the Table 2 analogue (ablation variants at 512p / 17 s with deltas to the default, next to the paper's).

FLOPs per video = recorded ``flops`` (one denoiser forward, 2 FLOPs per MAC) x ``steps`` x ``cfg_factor``, as the
sweep's flops measurement documents. Latency per video = measured p50 of the sampling loop, or, for scope
``denoiser_forward``, p50 x steps x cfg_factor (evalkit/measure/latency.py). Latency is plotted only from records
that have it, within one cohort (scope, dtype, hardware); every label carries the cohort. In a sweep with parts
(experiments/paper_latency.yaml) each part group is rendered as if it were an experiment of its own (the
artifact names carry it), so points of one group never mix with another group's (other steps, other models).
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from evalkit.report import paper
from evalkit.report.render import Artifact, new_figure, save_figure, write_table
from evalkit.report.runs import RESOLUTION_NOTE, Run, run_ids

PAIR = ("lingen", "dit")
STYLE = {"lingen": ("-", "o", "LinGen"), "dit": ("--", "s", "DiT")}
GOOD = ("ok", "flagged")   # flagged = counted vs analytic FLOPs differ > 1%; the numbers are still real


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "_".join(str(p) for p in parts if p != "")).strip("-").lower()


def _named(exp: str, group: str) -> str:
    """How artifacts name an experiment's part group ("paper_latency/fig6a"; the experiment alone without one)."""
    return f"{exp}/{group}" if group else exp


def measurement(df: pd.DataFrame, name: str) -> pd.DataFrame:
    if df.empty or "measurement" not in df:
        return pd.DataFrame()
    sel = df[(df.get("kind") == "cost") & (df["measurement"] == name) & df["status"].isin(GOOD)].copy()
    if name == "flops" and not sel.empty:
        # a record without steps or cfg_factor has no per-video cost (NaN, rendered empty), never a guessed 1
        sel["video_flops"] = sel["flops"] * sel.get("steps", float("nan")) * sel.get("cfg_factor", float("nan"))
    if name == "latency" and not sel.empty:
        sel = sel[sel["latency_ms_p50"].notna()]
        sel["cohort"] = [f"{s}, {d}, {h}" for s, d, h in zip(sel["scope"], sel["dtype"], sel["_hardware"])]
        nan = float("nan")
        steps = sel["steps"] if "steps" in sel else pd.Series(nan, index=sel.index)
        cfgf = sel["cfg_factor"] if "cfg_factor" in sel else pd.Series(nan, index=sel.index)
        per_video = [st * cf if sc == "denoiser_forward" else 1.0 for sc, st, cf in zip(sel["scope"], steps, cfgf)]
        sel["video_latency_s"] = sel["latency_ms_p50"] / 1000.0 * pd.Series(per_video, index=sel.index)
    return sel


def _pair_frame(sel: pd.DataFrame, value: str) -> pd.DataFrame:
    """LinGen and DiT default-variant points of one flavor, with the DiT/LinGen ratio at matching points."""
    sel = sel[sel["model"].isin(PAIR) & (sel["variant"].fillna("default") == "default")]
    cols = ["model", "flavor", "resolution", "duration_s", "num_tokens", value, "status", "_run_id"]
    data = sel[cols].sort_values(["resolution", "model", "duration_s"]).reset_index(drop=True)
    piv = data.pivot_table(index=["flavor", "resolution", "duration_s"], columns="model", values=value,
                           aggfunc="first")
    if set(PAIR) <= set(piv.columns):
        ratio = (piv["dit"] / piv["lingen"]).rename("ratio_dit_over_lingen").reset_index()
        data = data.merge(ratio, on=["flavor", "resolution", "duration_s"], how="left")
    else:
        data["ratio_dit_over_lingen"] = float("nan")
    return data


def newest_run(sel: pd.DataFrame) -> pd.DataFrame:
    """Records of the newest run (run ids start with a UTC timestamp) when several runs of one experiment exist,
    so a figure never mixes two runs of the same points."""
    if sel.empty or sel["_run_id"].nunique() < 2:
        return sel
    return sel[sel["_run_id"] == max(sel["_run_id"])]


def _res_key(r: str) -> int:
    return int(r.rstrip("p"))


def _scaling_figure(data: pd.DataFrame, value: str, ylabel: str, title: str, root: Path, stem: str) -> None:
    """(a) log y vs duration with the DiT/LinGen ratio at each point, (b) linear y vs duration (a linear-cost
    model is a straight line, a quadratic one bends), (c) log-log vs number of tokens (slope 1 = linear)."""
    fig, axes = new_figure(1, 3, figsize=(15.0, 4.6))
    resolutions = sorted(data["resolution"].unique(), key=_res_key)
    colors = {r: f"C{i}" for i, r in enumerate(resolutions)}
    panels = ((axes[0, 0], "duration_s", "video duration (s)", "log", "(a) log scale; labels: DiT / LinGen"),
              (axes[0, 1], "duration_s", "video duration (s)", "linear", "(b) linear scale"),
              (axes[0, 2], "num_tokens", "number of tokens (log)", "loglog", "(c) vs number of tokens"))
    for ax, x, xlabel, scale, sub in panels:
        for res in resolutions:
            for model in PAIR:
                d = data[(data["resolution"] == res) & (data["model"] == model)].sort_values(x)
                if d.empty:
                    continue
                ls, mk, name = STYLE[model]
                ax.plot(d[x], d[value], ls, marker=mk, color=colors[res], label=f"{name} {res}", ms=4)
                if model == "dit" and scale == "log":
                    for _, p in d.iterrows():
                        if pd.notna(p["ratio_dit_over_lingen"]):
                            ax.annotate(f"{p['ratio_dit_over_lingen']:.1f}x", (p[x], p[value]),
                                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7,
                                        color=colors[res])
        if scale in ("log", "loglog"):
            ax.set_yscale("log")
        if scale == "loglog":
            ax.set_xscale("log")
        ax.margins(x=0.06, y=0.12)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel if scale != "linear" else ylabel.replace("; log", "").replace(" (log)", ""))
        ax.set_title(f"{title}\n{sub}")
        ax.legend(ncol=2)
    save_figure(fig, root, stem, data)


def _ratio_table(data: pd.DataFrame, root: Path, stem: str, flavor: str, runs: list[Run]) -> Artifact:
    """DiT / LinGen FLOPs ratio per resolution (rows) and duration (columns): the numbers annotated in the figure."""
    head = next(h for h in paper.headline() if h["id"] == "flops_ratio_512p_68s")
    piv = data.drop_duplicates(["resolution", "duration_s"]).pivot(index="resolution", columns="duration_s",
                                                                   values="ratio_dit_over_lingen")
    piv = piv.loc[sorted(piv.index, key=_res_key)]
    piv.columns = [f"{c:g} s" for c in piv.columns]
    table = piv.reset_index()
    write_table(root, stem, table,
                title=f"DiT / LinGen FLOPs ratio per video, {flavor} flavor (Fig. 1b / 6b analogue)",
                notes=["Ratio of FLOPs counted on the meta device (hardware-independent); paper: "
                       f"{head['value']:g}x at {head['duration_s']:g} s / {head['resolution']} ({head['source']}).",
                       RESOLUTION_NOTE])
    return Artifact(stem=stem, exts=(".md", ".tex"), title=f"DiT/LinGen FLOPs ratio table ({flavor})",
                    runs=run_ids(data, runs), sources=("Fig. 1b", "Fig. 6(b)"))


def scaling(df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    arts: list[Artifact] = []
    fl = measurement(df, "flops")
    for (exp, group, flavor), sel in (fl.groupby(["_experiment", "_part_group", "flavor"]) if not fl.empty else []):
        data = _pair_frame(newest_run(sel), "video_flops")
        if data.empty or data["model"].nunique() < 2 or data["duration_s"].nunique() < 2:
            continue
        stem = f"cost/fig_flops_scaling_{_slug(exp, group, flavor)}"
        steps = sorted(set(sel["steps"].dropna().astype(int)))         # this figure's records only
        cfgs = sorted(set(sel["cfg_factor"].dropna().astype(int)))
        _scaling_figure(data, "video_flops",
                        f"FLOPs per video (log)\n[forward x {'/'.join(map(str, steps))} steps x CFG "
                        f"{'/'.join(map(str, cfgs))}; 2 FLOPs/MAC]",
                        f"FLOPs, {flavor} flavor (Fig. 1b / 6b analogue)", root, stem)
        arts.append(Artifact(stem=stem, exts=(".png", ".svg", ".csv"), title=f"FLOPs vs duration and tokens, "
                             f"LinGen vs DiT ({flavor}); Fig. 1b / Fig. 6(b) analogue", runs=run_ids(data, runs),
                             sources=("Fig. 1b", "Fig. 6(b)"), notes=[RESOLUTION_NOTE]))
        arts.append(_ratio_table(data, root, f"cost/table_flops_ratio_{_slug(exp, group, flavor)}", flavor, runs))
    lat = measurement(df, "latency")
    keys = ["_experiment", "_part_group", "flavor", "cohort"]
    for (exp, group, flavor, cohort), sel in (lat.groupby(keys) if not lat.empty else []):
        data = _pair_frame(newest_run(sel), "video_latency_s")
        if data.empty or data["model"].nunique() < 2 or data["duration_s"].nunique() < 2:
            continue
        stem = f"cost/fig_latency_scaling_{_slug(exp, group, flavor, cohort)}"
        _scaling_figure(data, "video_latency_s", f"latency per video (s; log)\n[{cohort}]",
                        f"Latency, {flavor} flavor (Fig. 6a analogue{'; ' + _named(exp, group) if group else ''})",
                        root, stem)
        arts.append(Artifact(stem=stem, exts=(".png", ".svg", ".csv"), title=f"Latency vs duration and tokens, "
                             f"LinGen vs DiT ({_named(exp, group) + ', ' if group else ''}{flavor}; {cohort}); "
                             "Fig. 6(a) analogue", runs=run_ids(data, runs), sources=("Fig. 6(a)",)))
    return arts


def model_size(df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    """Fig. 20 analogue: latency (per cohort) or, where no latency exists, FLOPs vs parameter count."""
    lat, fl = measurement(df, "latency"), measurement(df, "flops")
    groups: list[tuple[pd.DataFrame, str, str, str]] = []
    if not lat.empty:
        for (exp, group, cohort), sel in lat.groupby(["_experiment", "_part_group", "cohort"]):
            groups.append((newest_run(sel), "video_latency_s", f"latency per video (s; log)\n[{cohort}]",
                           _slug(exp, group, "latency", cohort)))
    if not groups and not fl.empty:
        for (exp, group), sel in fl.groupby(["_experiment", "_part_group"]):
            groups.append((newest_run(sel), "video_flops",
                           "FLOPs per video (log)\n[forward x steps x CFG; 2 FLOPs/MAC]", _slug(exp, group, "flops")))
    arts = []
    for sel, value, ylabel, slug in groups:
        sel = sel[sel["model"].isin(PAIR) & (sel["variant"].fillna("default") == "default")]
        if sel.empty:
            continue
        # the (resolution, duration) with the most distinct model sizes; 512p / 17 s as in Fig. 20 when present
        counts = sel.groupby(["resolution", "duration_s", "model"])["params"].nunique().groupby(
            level=["resolution", "duration_s"]).max()
        if counts.empty or counts.max() < 2:
            continue
        best = counts[counts == counts.max()]
        key = ("512p", 17.0) if ("512p", 17.0) in best.index else best.index[0]
        d = sel[(sel["resolution"] == key[0]) & (sel["duration_s"] == key[1])]
        data = d[["model", "flavor", "params", "resolution", "duration_s", value, "_run_id"]].sort_values(
            ["model", "params"]).reset_index(drop=True)
        fig, axes = new_figure()
        ax = axes[0, 0]
        for model in PAIR:
            m = data[data["model"] == model]
            if m.empty:
                continue
            ls, mk, name = STYLE[model]
            ax.plot(m["params"] / 1e9, m[value], ls, marker=mk, label=name)
            for _, p in m.iterrows():
                ax.annotate(str(p["flavor"]), (p["params"] / 1e9, p[value]), textcoords="offset points",
                            xytext=(4, -10), fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel("parameters (billions)")
        ax.set_ylabel(ylabel)
        what = "latency" if value.startswith("video_latency") else "FLOPs (latency not measured)"
        ax.set_title(f"{what} vs model size\nat {key[0]} / {key[1]:g} s (Fig. 20 analogue)")
        ax.legend()
        stem = f"cost/fig_model_size_{slug}"
        save_figure(fig, root, stem, data)
        arts.append(Artifact(stem=stem, exts=(".png", ".svg", ".csv"), title="Cost vs model size (Fig. 20 "
                             f"analogue; {'latency' if value.startswith('latency') else 'FLOPs, no latency measured'})",
                             runs=run_ids(data, runs), sources=("Fig. 20",)))
    return arts
