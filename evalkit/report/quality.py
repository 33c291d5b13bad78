"""Quality-side report: the paper's VBench tables (Tables 1, 3, 4 in the paper's layout), their integrity check,
VBench tables from ``vbench`` records with the paper's rows alongside, and training loss curves / alignment-suite
scores from ``train_loss`` / ``alignment`` records (the Fig. 10a / 11 analogues)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit.report import integrity, paper
from evalkit.report.render import Artifact, new_figure, save_figure, write_table
from evalkit.report.runs import Run, run_ids
from evalkit.vbench.aggregate import aggregate
from evalkit.vbench.dimensions import PAPER_LABELS, QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS
from evalkit.vbench.weights import WEIGHTS

PAPER_TABLE_FOR_MODE = {"long": "table3", "standard": "table4"}   # VBench-Long leaderboard / VBench-standard
SRC = "experiments/paper/vbench_tables.yaml"


def _layout(df: pd.DataFrame, half: str) -> pd.DataFrame:
    """The paper's column layout (percent): quality half or semantic half."""
    if half == "quality":
        cols = [*QUALITY_DIMENSIONS, "quality_score", "total_score", "max_raw_frames"]
        names = [PAPER_LABELS[d] for d in QUALITY_DIMENSIONS] + ["Quality Score", "Total Score", "Max. Raw Frames"]
    else:
        cols = [*SEMANTIC_DIMENSIONS, "semantic_score"]
        names = [PAPER_LABELS[d] for d in SEMANTIC_DIMENSIONS] + ["Semantic Score"]
    out = df.reindex(columns=["model", *cols]).copy()
    if "max_raw_frames" in out:
        out["max_raw_frames"] = out["max_raw_frames"].astype("Int64")
    out.columns = ["Model", *names]
    return out


def paper_tables(root: Path) -> list[Artifact]:
    rows, titles, arts = paper.vbench_rows(), paper.table_titles(), []
    for tid, sel in rows.groupby("table", sort=True):
        for half in ("quality", "semantic"):
            stem = f"paper/{tid}_{half}"
            write_table(root, stem, _layout(sel, half), title=f"{titles[tid]} ({half} columns, % as published)",
                        notes=[f"Source: {sel['source'].iloc[0]}; data: {SRC}. Transcribed, not measured."])
            arts.append(Artifact(stem=stem, exts=(".md", ".tex"), title=f"Paper {titles[tid]} ({half})",
                                 sources=(titles[tid].split(":")[0],)))
    t2 = paper.table2()[["label", "latency_s", "delta_s", "delta_pct"]]
    t2.columns = ["Model", "Latency/s", "delta s", "delta % (derived)"]
    write_table(root, "paper/table2_latency", t2, title="Table 2: Latency of LinGen variants at 512p 17s (paper)",
                notes=["Source: Table 2; data: experiments/paper/cost.yaml. Hardware/steps assumed there."], floatfmt=".1f")
    arts.append(Artifact(stem="paper/table2_latency", exts=(".md", ".tex"), title="Paper Table 2 (latency)",
                         sources=("Table 2",)))
    res = integrity.check(rows)
    out = res.copy()
    out["ok"] = out["ok"].map({True: "ok", False: "DOES NOT REPRODUCE"})
    n_bad = int((~res["ok"]).sum())
    write_table(root, "paper/integrity_check", out, title="Integrity check of the paper's VBench tables",
                notes=[f"Quality/Semantic/Total recomputed from the printed per-dimension numbers with VBench's "
                       f"normalisation and weights (evalkit.vbench.aggregate); tolerance {integrity.TOL} points.",
                       f"{n_bad} of {len(res)} (row, column) pairs do not reproduce; the explanation column gives the "
                       "first hypothesis that reproduces the printed number (see evalkit/report/integrity.py).",
                       *integrity.findings(rows, res)],
                floatfmt=".2f")
    arts.append(Artifact(stem="paper/integrity_check", exts=(".md", ".tex"), title="Integrity check of the "
                         f"paper's VBench tables ({n_bad} mismatches)", sources=("Tables 1, 3, 4",)))
    return arts


def weights_note(m: pd.DataFrame) -> str:
    """What a model's row says about its evaluator files: UNOFFICIAL when any record's are not the released ones;
    unverified when a record of a dimension that reads evaluator files does not say (records written before the
    weight check carry no ``weights_official``); nothing for dimensions that read none (temporal_flickering)."""
    official = m["weights_official"] if "weights_official" in m else pd.Series([None] * len(m), index=m.index)
    reads_weights = m["dimension"].map(lambda d: bool(WEIGHTS.get(d)))
    if (official == False).any():  # noqa: E712 (None/NaN are not False)
        return ", UNOFFICIAL WEIGHTS"
    return ", unverified weights" if (official.isna() & reads_weights).any() else ""


def vbench_tables(df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    if df.empty or "kind" not in df or not (df["kind"] == "vbench").any():
        return []
    # flagged = scored on fewer videos than expected (vbench runner); shown, and named in the row label
    v = df[(df["kind"] == "vbench") & df["status"].isin(("ok", "flagged"))]
    rows_all, arts = paper.vbench_rows(), []
    for mode, sel in v.groupby("mode"):
        measured = []
        for model, m in sel.groupby("model"):
            scores = dict(zip(m["dimension"], m["score"].astype(float)))
            agg = aggregate(scores, partial=True)
            short = sorted(m.loc[m["status"] == "flagged", "dimension"])
            label = f"{model} (measured, {mode}{', PARTIAL' if agg['partial'] else ''}{weights_note(m)}"
            label += f", INCOMPLETE videos: {' '.join(short)})" if short else ")"
            row = {"model": label}
            row.update({d: 100 * scores[d] if d in scores else None for d in (*QUALITY_DIMENSIONS,
                                                                             *SEMANTIC_DIMENSIONS)})
            for k in ("quality_score", "semantic_score", "total_score"):
                row[k] = None if agg[k] is None else 100 * agg[k]
            measured.append(row)
        tid = PAPER_TABLE_FOR_MODE.get(mode)
        ref = rows_all[rows_all["table"] == tid].copy() if tid else rows_all.iloc[0:0]
        ref["model"] = ref["model"] + f" (paper {tid})"
        both = pd.concat([pd.DataFrame(measured), ref], ignore_index=True, sort=False)
        flick = sel[sel["dimension"] == "temporal_flickering"]
        unfiltered = mode != "custom" and not flick.empty and (
            "static_filter" not in flick or not flick["static_filter"].fillna(False).astype(bool).all())
        for half in ("quality", "semantic"):
            stem = f"vbench/{mode}_{half}"
            notes = ["Measured rows from vbench records (scores x 100); PARTIAL = aggregate over the "
                     "dimensions present only (never zero-filled); UNOFFICIAL WEIGHTS = an evaluator file is not "
                     "the released one (sha256 or network size differs); unverified weights = no published sha256 "
                     "is known for some file (python -m evalkit vbench weights).",
                     f"Paper rows: {tid or 'none for this mode'} ({SRC})."]
            if unfiltered and half == "quality":  # VBench's standard protocol filters static videos first
                notes.append("Temp. Flick. (measured): every video scored; VBench's RAFT static filter (vbench "
                             "static_filter), part of its standard protocol, was not applied.")
            write_table(root, stem, _layout(both, half), title=f"VBench ({mode}) {half} columns, measured vs paper",
                        notes=notes)
            arts.append(Artifact(stem=stem, exts=(".md", ".tex"), title=f"VBench {mode} ({half}) vs paper",
                                 runs=run_ids(sel, runs), sources=(tid,) if tid else ()))
    return arts


def train(df: pd.DataFrame, runs: list[Run], root: Path) -> list[Artifact]:
    arts: list[Artifact] = []
    if df.empty or "kind" not in df:
        return arts
    loss = df[(df["kind"] == "train_loss") & (df["status"] == "ok")]
    if not loss.empty:
        loss = loss.assign(label=loss["label"] if "label" in loss else loss["model"])
        loss["label"] = loss["label"].fillna(loss["model"])
        data = loss[["label", "model", "flavor", "variant", "step", "loss", "_run_id"]].sort_values(
            ["_run_id", "label", "step"]).reset_index(drop=True)
        many = data["_run_id"].nunique() > 1
        fig, axes = new_figure()
        ax = axes[0, 0]
        for (run, label, flavor), d in data.groupby(["_run_id", "label", "flavor"], sort=True):
            ax.plot(d["step"], d["loss"], label=f"{label} ({flavor})" + (f" [{run}]" if many else ""))
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss (log)")
        ax.set_yscale("log")
        ax.set_title("Training loss (Fig. 10a / 11 analogue)")
        ax.legend()
        save_figure(fig, root, "train/fig_loss", data)
        arts.append(Artifact(stem="train/fig_loss", exts=(".png", ".svg", ".csv"), title="Training loss curves",
                             runs=run_ids(data, runs), sources=("Fig. 10a", "Fig. 11")))
    al = df[(df["kind"] == "alignment") & (df["status"] == "ok")]
    if not al.empty:
        al = al.assign(checkpoint=al["checkpoint"].fillna("-"), flavor=al["flavor"].fillna("-"),
                       n_videos=al["n_videos"] if "n_videos" in al else None)
        piv = al.pivot_table(index=["_run_id", "model", "flavor", "variant", "checkpoint"], columns="metric",
                             values="value", aggfunc="first").reset_index()
        piv.columns.name = None
        n = al.groupby(["_run_id", "model", "flavor", "variant", "checkpoint"])["n_videos"].max().reset_index()
        piv = piv.merge(n, on=["_run_id", "model", "flavor", "variant", "checkpoint"], how="left").rename(
            columns={"_run_id": "run"})
        piv["n_videos"] = pd.to_numeric(piv["n_videos"], errors="coerce").round().astype("Int64")
        write_table(root, "train/alignment", piv, title="Alignment-suite scores from alignment records",
                    floatfmt=".3f")
        arts.append(Artifact(stem="train/alignment", exts=(".md", ".tex"), title="Alignment-suite scores",
                             runs=run_ids(al, runs)))
    return arts
