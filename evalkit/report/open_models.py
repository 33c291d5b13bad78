"""The field's released video models next to LinGen-4B and DiT-4B: FLOPs per video vs duration (LinGen Fig. 1b /
Fig. 6 with the models people use), from ``open_models`` sweep records (``experiments/open_models.yaml``).

- ``open_models/fig_flops_vs_duration``: FLOPs per video vs duration (log-log), (a) each model at its native
  resolution and frame rate, (b) every model at the common resolution;
- ``open_models/table_native`` and ``open_models/table_common``: per model its parameters, tokens, FLOPs per video
  at 5 / 10 / 17 / 34 / 68 s, the curve's growth exponent (log-log slope vs duration, least squares over the whole
  curve and between 34 and 68 s), its ratio to LinGen-4B at 68 s and the duration from which it costs 10x
  LinGen-4B (log-log interpolation between the durations both have).

FLOPs per video = recorded ``flops`` (one denoiser forward, batch 1, counted on meta) x ``steps`` x ``cfg_factor``
of the model's part (its pipeline's own sampling defaults). LinGen-4B cannot represent 5 s (its TESA window spans
17 latent frames = 8.5 s): its cells there say so, and its curve starts at 8.5 s. Reports read records only: the
model knowledge here is labels; the published sizes come from each part's ``claim`` in the records.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.ticker import NullLocator

from evalkit.report.cost import measurement, newest_run
from evalkit.report.render import Artifact, new_figure, save_figure, write_table
from evalkit.report.runs import Run, run_ids

SWEEP = "open_models"
BASE = "lingen"                       # the reference every ratio is to (LinGen-4B)
COLUMNS_S = (5.0, 10.0, 17.0, 34.0, 68.0)
TIMES = 10.0                          # "the duration at which each costs 10x LinGen-4B"
PFLOP = 1e15
# registry name -> (label, line style); models not listed keep their registry name
LABELS = {
    "lingen": ("LinGen-4B (MATE)", ("C0", "-", "o")), "dit": ("DiT-4B", ("k", "--", "s")),
    "wan2.1-1.3b": ("Wan2.1-1.3B", ("C1", "-", "^")), "wan2.1-14b": ("Wan2.1-14B", ("C1", "--", "^")),
    "wan2.2-ti2v-5b": ("Wan2.2-TI2V-5B", ("C1", ":", "^")), "cogvideox-2b": ("CogVideoX-2B", ("C2", "-", "v")),
    "cogvideox-5b": ("CogVideoX-5B", ("C2", "--", "v")), "hunyuanvideo": ("HunyuanVideo", ("C3", "-", "D")),
    "ltx-video": ("LTX-Video", ("C4", "-", "P")), "sana-video": ("SANA-Video", ("C5", "-", "X")),
    "mochi-1": ("Mochi-1", ("C6", "-", "*")),
}
LINGEN_SHORT = ("not representable: LinGen-4B's TESA window spans 17 latent frames = 8.5 s at 16 fps, so its "
                "curve starts at 8.5 s")


def _label(model: str) -> str:
    return LABELS.get(model, (model, None))[0]


def _order(models) -> list[str]:
    known = [m for m in LABELS if m in set(models)]
    return known + sorted(set(models) - set(known))


def _records(df: pd.DataFrame) -> pd.DataFrame:
    fl = measurement(df, "flops")
    if fl.empty or "_experiment" not in fl:
        return pd.DataFrame()
    fl = newest_run(fl[fl["_experiment"] == SWEEP])
    if fl.empty:
        return fl
    # per video in float: forward FLOPs x steps x CFG passes of a 14B model at 68 s (~8e19) overflow int64
    fl["video_flops"] = fl["flops"].astype(float) * fl["steps"].astype(float) * fl["cfg_factor"].astype(float)
    cols = ["model", "flavor", "resolution_name", "height", "width", "fps", "duration_s", "num_frames",
            "latent_frames", "num_tokens", "params", "steps", "cfg_factor", "flops", "video_flops", "claim",
            "_run_id"]
    return fl[[c for c in cols if c in fl]].sort_values(["model", "height", "width", "duration_s"]).reset_index(
        drop=True)


def curves(sel: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{"native": rows, "common": rows}: each model's points at its native size, and at the common size (rows
    named ``common``; a model whose native size is the common one counts there with its native rows)."""
    common = sel[sel["resolution_name"] == "common"]
    sizes = set(zip(common["height"], common["width"]))
    if len(sizes) > 1:
        raise ValueError(f"{SWEEP}: more than one common resolution in one run: {sorted(sizes)}")
    native = sel[sel["resolution_name"] == "native"]
    same = native[[(h, w) in sizes for h, w in zip(native["height"], native["width"])]]
    both = pd.concat([common, same[~same["model"].isin(set(common["model"]))]])
    return {"native": native.reset_index(drop=True), "common": both.reset_index(drop=True)}


def slope(xs, ys) -> float:
    """Least-squares slope of log y vs log x (the growth exponent: 1 linear, 2 quadratic in duration)."""
    lx, ly = [math.log(float(x)) for x in xs], [math.log(float(y)) for y in ys]
    if len(lx) < 2:
        return float("nan")
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def crossing(model: pd.Series, base: pd.Series, times: float = TIMES) -> tuple[float | None, str]:
    """(the duration from which ``model`` costs ``times`` x ``base`` per video, the cell's text): log-log linear
    interpolation of the ratio between the durations both curves have (Series indexed by duration)."""
    shared = sorted(set(model.index) & set(base.index))
    if not shared:
        return None, "no shared duration"
    ratio = [(d, float(model[d]) / float(base[d])) for d in shared]
    if ratio[0][1] >= times:
        return None, f"<= {ratio[0][0]:g} s ({ratio[0][1]:.3g}x at {ratio[0][0]:g} s, the shortest both have)"
    for (d0, r0), (d1, r1) in zip(ratio, ratio[1:]):
        if r0 < times <= r1:
            f = (math.log(times) - math.log(r0)) / (math.log(r1) - math.log(r0))
            d = math.exp(math.log(d0) + f * (math.log(d1) - math.log(d0)))
            return d, f"{d:.1f} s"
    return None, f"> {ratio[-1][0]:g} s ({ratio[-1][1]:.3g}x at {ratio[-1][0]:g} s)"


def _published(claim: object) -> str:
    """The published size from a part's claim ('Wan2.1 T2V-1.3B: 1.3B parameters (source); ...')."""
    text = str(claim) if isinstance(claim, str) else ""
    head = text.split(";")[0]
    return head.split(": ", 1)[1] if ": " in head else (head or "-")


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model: size, geometry, FLOPs per video at :data:`COLUMNS_S`, exponents, ratio and crossing."""
    base = rows[rows["model"] == BASE].set_index("duration_s")["video_flops"]
    out = []
    for model in _order(rows["model"]):
        m = rows[rows["model"] == model].sort_values("duration_s")
        series = m.set_index("duration_s")["video_flops"]
        first = m.iloc[0]
        row = {"model": _label(model), "registry": model, "params (counted)": f"{float(first['params']) / 1e9:.3g}B",
               "published": _published(first.get("claim")),
               "video (H x W, fps)": f"{int(first['height'])}x{int(first['width'])}, {int(first['fps'])}",
               "steps x CFG": f"{int(first['steps'])} x {int(first['cfg_factor'])}",
               "tokens at 10 s": int(m.loc[m["duration_s"] == 10.0, "num_tokens"].iloc[0])
               if (m["duration_s"] == 10.0).any() else None}
        for d in COLUMNS_S:
            if d in series.index:
                row[f"PFLOP/video {d:g} s"] = float(series[d]) / PFLOP
            else:
                row[f"PFLOP/video {d:g} s"] = "not representable" if d < float(m["duration_s"].min()) else \
                    "not measured"
        row["exponent (all)"] = slope(m["duration_s"], m["video_flops"])
        tail = m[m["duration_s"].isin((34.0, 68.0))]
        row["exponent 34-68 s"] = slope(tail["duration_s"], tail["video_flops"]) if len(tail) == 2 else float("nan")
        if model == BASE or base.empty:
            row["x LinGen-4B at 68 s"], row[f"{TIMES:g}x LinGen-4B from"] = ("1" if model == BASE else "-"), "-"
        else:
            row["x LinGen-4B at 68 s"] = (f"{float(series[68.0]) / float(base[68.0]):.3g}"
                                          if 68.0 in series.index and 68.0 in base.index else "-")
            row[f"{TIMES:g}x LinGen-4B from"] = crossing(series, base)[1]
        out.append(row)
    return pd.DataFrame(out)


def _figure(parts: dict[str, pd.DataFrame], runs: list[Run], root: Path) -> Artifact:
    fig, axes = new_figure(1, 2, figsize=(14.0, 5.4))
    common = parts["common"]
    size = f"{int(common['height'].iloc[0])}x{int(common['width'].iloc[0])}" if not common.empty else "?"
    for ax, (key, rows), title in zip(axes[0], parts.items(),
                                      ("(a) each model at its native resolution and frame rate",
                                       f"(b) every model at {size} (native frame rate)")):
        for model in _order(rows["model"]):
            m = rows[rows["model"] == model].sort_values("duration_s")
            color, ls, mk = LABELS.get(model, ("", ("C7", "-", None)))[1]
            ax.plot(m["duration_s"], m["video_flops"], color=color, ls=ls, marker=mk, ms=4, label=_label(model))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(list(COLUMNS_S))
        ax.set_xticklabels([f"{d:g}" for d in COLUMNS_S])
        ax.set_xlabel("video duration (s, log)")
        ax.set_ylabel("FLOPs per video (log)\n[forward x the model's steps x CFG passes; 2 FLOPs/MAC]")
        ax.set_title(title)
    axes[0, 0].legend(fontsize=7, ncol=2, loc="upper left")
    data = pd.concat([rows.assign(curve=key) for key, rows in parts.items()]).reset_index(drop=True)
    data = data[["curve", "model", "height", "width", "fps", "duration_s", "num_frames", "num_tokens", "params",
                 "steps", "cfg_factor", "flops", "video_flops", "_run_id"]]
    stem = f"{SWEEP}/fig_flops_vs_duration"
    save_figure(fig, root, stem, data)
    return Artifact(stem=stem, exts=(".png", ".svg", ".csv"), title="FLOPs per video vs duration: the released "
                    "models vs LinGen-4B and DiT-4B (native and common resolution)", runs=run_ids(data, runs),
                    sources=("Fig. 1b", "Fig. 6"))


def render(df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    sel = _records(df)
    if sel.empty or not (sel["model"] == BASE).any():
        return []
    parts = curves(sel)
    arts = [_figure(parts, runs, root)]
    run = sel["_run_id"].iloc[0]
    for key, what in (("native", "each model at its native resolution and frame rate (LinGen-4B and DiT-4B: "
                                 "512x896, 16 fps)"),
                      ("common", "every model at the common resolution, at its native frame rate")):
        rows = parts[key]
        stem = f"{SWEEP}/table_{key}"
        write_table(root, stem, table(rows), floatfmt=".3g",
                    title=f"FLOPs per video vs duration, {what}",
                    notes=["FLOPs per video = one denoiser forward (batch 1, counted on the meta device = the "
                           "analytic terms) x the model's sampling steps x CFG passes (its pipeline's defaults); "
                           "PFLOP = 1e15. Text encoder and VAE not counted.",
                           "Duration of a causal-VAE model's video: (frames - 1) / fps (81 frames at 16 fps = "
                           "5 s); LinGen-4B / DiT-4B: frames / fps.",
                           f"exponent: the log-log slope of FLOPs per video vs duration (least squares over the "
                           f"curve; and between 34 and 68 s): 1 = linear, 2 = quadratic. '{TIMES:g}x LinGen-4B "
                           f"from': log-log interpolation of the ratio to LinGen-4B (in this table's rows) between "
                           f"the durations both have (LinGen-4B from 8.5 s).",
                           f"LinGen-4B at 5 s: {LINGEN_SHORT}.",
                           "published: the size the model's authors state (the part's claim in "
                           "experiments/open_models.yaml); counted: diffusers' class built on meta = the analytic "
                           "count.",
                           f"Run: {SWEEP}/{run}."])
        arts.append(Artifact(stem=stem, exts=(".md", ".tex"), title=f"Released models vs LinGen-4B: FLOPs per video, "
                             f"exponents, 10x crossing ({key} resolution)", runs=run_ids(rows, runs),
                             sources=("Fig. 1b", "Fig. 6")))
    return arts
