"""Mixers side by side: the cost of every token mixer on one backbone and geometry, next to each design's
published claim, and the small trainable run's loss and alignment scores beside that cost.

From ``mixers`` sweep records (``experiments/mixers.yaml``, 4b flavor, FLOPs counted on meta):
- ``mixers/fig_flops_vs_duration_512p``: FLOPs per video vs duration at 512p for every mixer, and DiT / mixer;
- ``mixers/table_flops_ratio``: DiT / mixer FLOPs at 17 s and 68 s (512p) and the mixer's FLOPs growth exponent
  vs tokens, beside the published claim of each design (``experiments/paper/mixer_claims.yaml``);
from ``train_mixers`` records (``experiments/train_mixers.yaml``): ``mixers/fig_train_loss`` and
``mixers/table_train`` (final loss, alignment scores, training seconds, beside the 4b FLOPs ratio).
FLOPs per video = forward FLOPs x steps x cfg_factor of the record (evalkit/report/cost.py); ratios do not depend on
steps or CFG since every mixer shares them. Reports read records only: model knowledge here is labels and the
growth law each design states.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from evalkit.report import paper
from evalkit.report.cost import measurement, newest_run
from evalkit.report.render import Artifact, new_figure, save_figure, write_table
from evalkit.report.runs import Run, run_ids

SWEEP, TRAIN = "mixers", "train_mixers"
RES, DURATIONS = "512p", (17.0, 68.0)
# registry name -> (label, growth law the design states, line style)
DESIGNS = {
    "dit": ("DiT (full 3D attention)", "quadratic in tokens", ("k", "--", "s")),
    "lingen": ("LinGen (MATE)", "linear", ("C0", "-", "o")),
    "lingen-no-tesa": ("LinGen w/o TESA", "linear", ("C0", ":", None)),
    "lingen-no-rms": ("LinGen w/o RMS", "linear", ("C0", ":", None)),
    "lingen-zigzag": ("LinGen w/ Zigzag", "linear", ("C0", ":", None)),
    "lingen-mamba1": ("LinGen w/ Mamba-1", "linear", ("C0", ":", None)),
    "lingen-no-ma": ("LinGen w/o MA-branch", "linear", ("C0", ":", None)),
    "lingen-no-review": ("LinGen w/o review tokens", "linear", ("C0", ":", None)),
    "linear-attn": ("SANA-Video linear attention", "linear", ("C1", "-", "^")),
    "sta": ("STA (sliding tile attention)", "linear", ("C2", "-", "v")),
    "radial": ("Radial attention", "n log n in frames", ("C3", "-", "D")),
}
HINT = ("One seed, ~0.3M-parameter pixel-space models, minutes of CPU training: a hint, not a finding; it says "
        "nothing about the 4b models.")
SAME_GEOMETRY = ("this harness, same geometry: the 4b backbone (d 2048, 56 layers, 16 heads, SwiGLU 5632, T5-XXL-like "
                 "text) with only the mixer swapped, FLOPs of one denoiser forward counted on the meta device "
                 "(hardware-independent), 512x896")


def _label(model: str) -> str:
    return DESIGNS.get(model, (model, "", None))[0]


def _order(models) -> list[str]:
    known = [m for m in DESIGNS if m in set(models)]
    return known + sorted(set(models) - set(known))


def _sweep(df: pd.DataFrame) -> pd.DataFrame:
    fl = measurement(df, "flops")
    if fl.empty:
        return fl
    fl = fl[fl["_experiment"] == SWEEP]
    if fl.empty:
        return fl
    flavor = "4b" if (fl["flavor"] == "4b").any() else fl["flavor"].value_counts().index[0]
    return newest_run(fl[fl["flavor"] == flavor])


def _figure(sel: pd.DataFrame, runs: list[Run], root: Path) -> Artifact:
    d = sel[sel["resolution"] == RES].copy()
    dit = d[d["model"] == "dit"].set_index("duration_s")["video_flops"]
    d["ratio_dit_over_model"] = [dit.get(t, float("nan")) / v for t, v in zip(d["duration_s"], d["video_flops"])]
    data = d[["model", "flavor", "resolution", "duration_s", "num_tokens", "flops", "video_flops",
              "flops_breakdown_mixer", "ratio_dit_over_model", "_run_id"]].sort_values(["model", "duration_s"])
    data = data.reset_index(drop=True)
    fig, axes = new_figure(1, 2, figsize=(13.0, 5.0))
    for model in _order(data["model"]):
        m = data[data["model"] == model]
        color, ls, mk = DESIGNS.get(model, ("", "", None))[2] or ("C7", "-", None)
        kw = {"color": color, "ls": ls, "marker": mk, "ms": 4, "label": _label(model)}
        axes[0, 0].plot(m["duration_s"], m["video_flops"], **kw)
        axes[0, 1].plot(m["duration_s"], m["ratio_dit_over_model"], **kw)
    steps = "/".join(str(int(s)) for s in sorted(set(sel["steps"])))
    cfgs = "/".join(str(int(c)) for c in sorted(set(sel["cfg_factor"])))
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel(f"FLOPs per video (log)\n[forward x {steps} steps x CFG {cfgs}; 2 FLOPs/MAC]")
    axes[0, 0].set_title(f"(a) FLOPs per video at {RES} (512x896), 4b backbone, mixer swapped")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_ylabel("DiT FLOPs / mixer FLOPs (log)")
    axes[0, 1].set_title("(b) FLOPs ratio to DiT (same geometry)")
    for ax in axes[0]:
        ax.set_xlabel("video duration (s)")
        ax.margins(x=0.04, y=0.08)
    axes[0, 1].legend(fontsize=7, ncol=2, loc="upper left")
    stem = "mixers/fig_flops_vs_duration_512p"
    save_figure(fig, root, stem, data)
    return Artifact(stem=stem, exts=(".png", ".svg", ".csv"), title="FLOPs per video vs duration at 512p, every "
                    "mixer on the 4b backbone", runs=run_ids(data, runs))


def _exponent(m: pd.DataFrame) -> float:
    """Growth exponent of the mixer's FLOPs vs tokens between 17 s and 68 s (1 = linear, 2 = quadratic)."""
    a, b = (m[m["duration_s"] == t] for t in DURATIONS)
    if a.empty or b.empty:
        return float("nan")
    return math.log(float(b["flops_breakdown_mixer"].iloc[0]) / float(a["flops_breakdown_mixer"].iloc[0])) / \
        math.log(float(b["num_tokens"].iloc[0]) / float(a["num_tokens"].iloc[0]))


def ratio_table(sel: pd.DataFrame) -> pd.DataFrame:
    """One row per mixer: DiT / mixer FLOPs at 17 s and 68 s (512p), growth exponent, published claim."""
    d = sel[sel["resolution"] == RES]
    claims = {c["model"]: c for c in paper.mixer_claims()}
    dit = d[d["model"] == "dit"].set_index("duration_s")["flops"]
    rows = []
    for model in _order(d["model"]):
        m = d[d["model"] == model].set_index("duration_s")
        c = claims.get(model, {})
        row = {"mixer": _label(model), "registry": model, "growth (design)": DESIGNS.get(model, ("", "-"))[1]}
        for t in DURATIONS:
            row[f"DiT/mixer FLOPs, {t:g} s (this harness)"] = (float(dit[t]) / float(m.loc[t, "flops"])
                                                             if t in m.index and t in dit.index else "not measured")
        row["mixer FLOPs growth exponent 17-68 s"] = _exponent(d[d["model"] == model])
        row["published claim (own model, resolution, hardware)"] = c.get("claim", "-")
        row["claim versus / setting"] = f"{c['versus']}; {c['setting']}" if c else "-"
        row["claim source"] = c.get("source", "-")
        rows.append(row)
    return pd.DataFrame(rows)


def _train(df: pd.DataFrame, sel: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    if df.empty or "kind" not in df or "_experiment" not in df:
        return []
    tr = df[(df["_experiment"] == TRAIN) & (df["status"] == "ok")]
    loss = tr[tr["kind"] == "train_loss"]
    if loss.empty:
        return []
    loss = newest_run(loss)
    run = loss["_run_id"].iloc[0]
    al = tr[(tr["kind"] == "alignment") & (tr["_run_id"] == run)]
    data = loss[["label", "model", "flavor", "step", "loss", "seconds", "params", "_run_id"]].sort_values(
        ["label", "step"]).reset_index(drop=True)
    fig, axes = new_figure()
    ax = axes[0, 0]
    for model in _order(data["model"]):
        m = data[data["model"] == model]
        color, ls, mk = DESIGNS.get(model, ("", "", None))[2] or ("C7", "-", None)
        ax.plot(m["step"], m["loss"], color=color, ls=ls, label=f"{_label(model)} ({m['flavor'].iloc[0]})")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (log; mean over each logging window)")
    ax.set_title("Tiny mixers, train_tiny budget (one seed: a hint, not a finding)")
    ax.legend(fontsize=7)
    save_figure(fig, root, "mixers/fig_train_loss", data)
    arts = [Artifact(stem="mixers/fig_train_loss", exts=(".png", ".svg", ".csv"), title="Training loss of the tiny "
                     "mixers (train_mixers; one seed)", runs=run_ids(data, runs))]
    scores = al.pivot_table(index="label", columns="metric", values="value", aggfunc="first") if not al.empty \
        else pd.DataFrame()
    n_videos = al.groupby("label")["n_videos"].max() if not al.empty else pd.Series(dtype=float)
    ratio68 = {}
    if not sel.empty:
        d = sel[(sel["resolution"] == RES) & (sel["duration_s"] == DURATIONS[1])].set_index("model")["flops"]
        ratio68 = {m: float(d["dit"]) / float(v) for m, v in d.items()} if "dit" in d.index else {}
    rows = []
    labels = [lb for model in _order(data["model"]) for lb in sorted(set(data.loc[data["model"] == model, "label"]))]
    for label in labels + (["dataset"] if "dataset" in scores.index else []):
        last = data[data["label"] == label].sort_values("step").tail(1)
        model = str(last["model"].iloc[0]) if not last.empty else "dataset"
        row = {"model": label if label == "dataset" else _label(model), "registry": model,
               "params (tiny)": int(last["params"].iloc[0]) if not last.empty else None,
               "final loss": float(last["loss"].iloc[0]) if not last.empty else None,
               "train s (CPU, 1 thread)": float(last["seconds"].iloc[0]) if not last.empty else None}
        for metric in ("color_accuracy", "direction_accuracy", "temporal_consistency"):
            row[metric] = float(scores.loc[label, metric]) if label in scores.index and metric in scores else None
        row["n_videos"] = int(n_videos[label]) if label in n_videos.index else None
        row["4b DiT/mixer FLOPs, 68 s 512p"] = ratio68.get(model) if model != "dataset" else None
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("params (tiny)", "train s (CPU, 1 thread)", "n_videos"):  # integers (empty for the dataset row)
        table[col] = pd.array([None if pd.isna(v) else round(v) for v in table[col]], dtype="Int64")
    write_table(root, "mixers/table_train", table, floatfmt=".3f",
                title="Tiny mixers trained on the train_tiny budget: loss and alignment beside cost",
                notes=[HINT, "Same data, steps, batch, noise and seed for every model (experiments/train_mixers.yaml "
                       "= train_tiny's budget); 'dataset' scores ground-truth videos (calibration).",
                       "final loss = mean training loss over the last logging window; train s = wall time on the "
                       "shared 2-core CPU box that ran it (noisy); the last column is the 4b same-geometry FLOPs "
                       "ratio from the mixers sweep, not a property of the tiny models.",
                       f"Run: {TRAIN}/{run}."])
    arts.append(Artifact(stem="mixers/table_train", exts=(".md", ".tex"), title="Tiny mixers: loss and alignment "
                         "beside cost (train_mixers; one seed)", runs=run_ids(pd.concat([data, al]), runs)))
    return arts


def without_own_train(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the train_mixers records (rendered here, beside cost, not in the train_tiny figures)."""
    return df[df["_experiment"] != TRAIN] if "_experiment" in df else df


def render(df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    arts: list[Artifact] = []
    sel = _sweep(df)
    if not sel.empty and (sel["resolution"] == RES).any():
        arts.append(_figure(sel, runs, root))
        table = ratio_table(sel)
        write_table(root, "mixers/table_flops_ratio", table, floatfmt=".2f",
                    title="FLOPs ratio to DiT at 17 s and 68 s (512p): this harness, same geometry, vs each "
                          "design's published claim (own model, resolution, hardware)",
                    notes=[f"Numbers: {SAME_GEOMETRY}. DiT/mixer = DiT FLOPs / mixer FLOPs per forward (= per "
                           "video: same steps and CFG for all).",
                           "Growth exponent: log(mixer FLOPs 68 s / 17 s) / log(tokens 68 s / 17 s) of the mixer "
                           "term alone (1 = linear, 2 = quadratic); STA's grid is zero-padded to whole tiles.",
                           "Published claims are quoted from each source (experiments/paper/mixer_claims.yaml): "
                           "measured on that design's own model, resolution and hardware, mostly as latency; they "
                           "are not comparable with each other or with the FLOPs ratios of this table.",
                           f"Run: {SWEEP}/{sel['_run_id'].iloc[0]}."])
        arts.append(Artifact(stem="mixers/table_flops_ratio", exts=(".md", ".tex"), title="FLOPs ratio to DiT per "
                             "mixer (same geometry) beside the published claims", runs=run_ids(sel, runs),
                             sources=("experiments/paper/mixer_claims.yaml",)))
    arts += _train(df, sel, runs, root)
    return arts
