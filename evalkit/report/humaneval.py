"""Human preference report: the paper's published human-evaluation win rates (abstract; Figs. 8 and 9), and for
every published ``humaneval`` run (``python -m evalkit humaneval report`` -> ``report --publish``) its win rates
with bootstrap intervals, agreement between raters, and a stacked win / tie / loss figure in the layout of the
paper's Figs. 8, 9 and 12 (one bar per question, one panel per comparison).

Numbers come from the vote records and the run's manifest (the resolved study: questions, tie rule, bootstrap)
through ``evalkit.humaneval.stats``, the same functions ``humaneval report`` prints with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evalkit.humaneval import stats
from evalkit.humaneval.db import KIND
from evalkit.report.paper import PAPER_DIR
from evalkit.report.render import Artifact, new_figure, save_figure, write_table
from evalkit.report.runs import Run, run_ids

SRC = "experiments/paper/human_eval.yaml"
TIE_TEXT = {"half": "a tie counts half a win for each side: (win + tie/2) / votes",
            "exclude": "ties are left out: win / (win + loss)",
            "separate": "ties are their own band: win / votes"}
COLOURS = {"win": "#3a7d44", "tie": "#b9b9b9", "loss": "#b3403a"}


def _paper(paper_dir: Path = PAPER_DIR) -> dict[str, Any]:
    return yaml.safe_load((Path(paper_dir) / "human_eval.yaml").read_text(encoding="utf-8"))


def paper_table(root: Path, paper_dir: Path = PAPER_DIR) -> list[Artifact]:
    data = _paper(paper_dir)
    df = pd.DataFrame([{"Figure": r["figure"], "Comparison": r["comparison"], "Aspect": r["aspect"],
                        "Win rate % (paper)": float(r["win_rate"])} for r in data["win_rates"]])
    missing = "; ".join(f"{f['figure']} ({f['caption']})" for f in data["figures_not_transcribed"])
    notes = [f"Source: {data['source_text']}; data: {SRC}. Transcribed, not measured.",
             *data.get("notes", []),
             "The paper does not state its tie rule, its number of raters or prompts, or how its variance was "
             "estimated, so these numbers are not directly comparable with a measured study's win rate.",
             f"Per-question bars are in the figure images only and are not transcribed: {missing}."]
    write_table(root, "paper/human_eval", df, title="Published human-evaluation win rates (paper)", notes=notes,
                floatfmt=".1f")
    return [Artifact(stem="paper/human_eval", exts=(".md", ".tex"), title="Paper human-evaluation win rates",
                     sources=("Abstract", "Fig. 8", "Fig. 9"))]


def _pct(v: float) -> float:
    return 100.0 * v if v == v else float("nan")


def _figure(rows: list[dict[str, Any]], study: dict[str, Any], root: Path, stem: str, data: pd.DataFrame) -> None:
    comps = list(dict.fromkeys(r["comparison"] for r in rows))
    nq = max(sum(1 for r in rows if r["comparison"] == c) for c in comps)
    fig, axes = new_figure(len(comps), 1, figsize=(7.0, 0.8 + (0.42 * nq + 0.7) * len(comps)))
    conf = 100 * float(study["report"]["bootstrap"]["confidence"])
    for ax, comp in zip(axes[:, 0], comps):
        sel = [r for r in rows if r["comparison"] == comp][::-1]           # first question on top
        y = list(range(len(sel)))
        left = [0.0] * len(sel)
        x, other = sel[0]["x"], sel[0]["y"]
        for part, label in (("win", f"{x} better"), ("tie", "tie"), ("loss", f"{other} better")):
            width = [_pct(r[f"{part}_share"]) for r in sel]
            ax.barh(y, width, left=left, color=COLOURS[part], label=label, height=0.5)
            for yi, le, w in zip(y, left, width):
                if w >= 7:
                    ax.text(le + w / 2, yi, f"{w:.0f}", ha="center", va="center", fontsize=7,
                            color="black" if part == "tie" else "white")
            left = [a + b for a, b in zip(left, width)]
        rate = [_pct(r["win_rate"]) for r in sel]
        lo = [max(0.0, rt - _pct(r["ci_low"])) if r["ci_low"] == r["ci_low"] else 0.0 for rt, r in zip(rate, sel)]
        hi = [max(0.0, _pct(r["ci_high"]) - rt) if r["ci_high"] == r["ci_high"] else 0.0 for rt, r in zip(rate, sel)]
        ax.errorbar(rate, [yi + 0.36 for yi in y], xerr=[lo, hi], fmt="D", color="black", markersize=3.5,
                    capsize=2.5, linewidth=1, label=f"win rate ({study['report']['ties']}) \u00b1 {conf:.0f}% CI")
        ax.axvline(50, color="black", linewidth=0.6, linestyle=":")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['label']} (n={r['n_votes']})" for r in sel])
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of votes (%)")
        ax.set_title(f"{comp}: human preference" + (f" ({study['paper_figure']} layout)"
                                                    if study.get("paper_figure") else ""))
        ax.set_ylim(-0.5, len(sel) - 0.2)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32 if len(sel) < 4 else -0.18), ncol=4,
                  frameon=False, fontsize=7, handlelength=1.5, columnspacing=1.2)
    save_figure(fig, root, stem, data)


def studies(df: pd.DataFrame, runs: list[Run], root: Path, paper_dir: Path = PAPER_DIR) -> list[Artifact]:
    """Tables and a figure per published humaneval run."""
    if df.empty or "kind" not in df or not (df["kind"] == KIND).any():
        return []
    by_id = {r.run_id: r for r in runs}
    paper_rows = _paper(paper_dir)["win_rates"]
    arts: list[Artifact] = []
    for run_id, sel in df[df["kind"] == KIND].groupby("_run_id", sort=True):
        study = by_id[run_id].manifest["study"]
        votes = sel.to_dict("records")
        rows = stats.winrates(votes, study)
        rep, boot = study["report"], study["report"]["bootstrap"]
        fig_src = (study.get("paper_figure"),) if study.get("paper_figure") else ()
        ids = run_ids(sel, runs)
        table = pd.DataFrame([{
            "Comparison": r["comparison"], "Question": r["label"], "Votes": r["n_votes"], "Prompts": r["n_prompts"],
            "Raters": r["n_raters"], "Win %": _pct(r["win_share"]), "Tie %": _pct(r["tie_share"]),
            "Loss %": _pct(r["loss_share"]), f"Win rate % ({rep['ties']})": _pct(r["win_rate"]),
            "CI low %": _pct(r["ci_low"]), "CI high %": _pct(r["ci_high"]), "Net win %": _pct(r["net_win"])}
            for r in rows])
        same_fig = [p for p in paper_rows if fig_src and p["figure"] == fig_src[0]]
        notes = [f"Study {study['name']!r}" + (f" ({study['description']})" if study.get("description") else "")
                 + f"; run {run_id}; measured from {len(votes)} votes of {sel['rater'].nunique()} raters. "
                 "Win / Tie / Loss: share of votes where the first arm of the comparison won, tied, lost.",
                 f"Tie rule `{rep['ties']}`: {TIE_TEXT[rep['ties']]}. The paper does not state its own; see "
                 "experiments/humaneval/defaults.yaml. Net win = (win - loss) / votes.",
                 f"CI: {100 * float(boot['confidence']):.0f}% percentile interval of a bootstrap over "
                 f"{boot['unit']}s ({boot['resamples']} resamples, seed {boot['seed']}): a {boot['unit']} is "
                 "resampled with all its votes, which are not independent.",
                 *[f"For comparison only, the paper's {p['figure']} number: {p['comparison']}, {p['aspect']}: "
                   f"{p['win_rate']}% (abstract; tie rule not stated; see paper/human_eval.md)." for p in same_fig],
                 *[f"Warning: {w}." for w in stats.few_clusters(rows)]]
        stem = f"humaneval/{run_id}/winrates"
        write_table(root, stem, table, title=f"Human preference win rates: {study['name']}", notes=notes,
                    floatfmt=".1f")
        arts.append(Artifact(stem=stem, exts=(".md", ".tex"), title=f"Human preference win rates ({study['name']})",
                             runs=ids, sources=fig_src))
        fig_stem = f"humaneval/{run_id}/fig_winrates"
        _figure(rows, study, root, fig_stem, pd.DataFrame(rows))
        arts.append(Artifact(stem=fig_stem, exts=(".png", ".svg", ".csv"), runs=ids, sources=fig_src,
                             title=f"Human preference win / tie / loss ({study['name']}; Figs. 8/9/12 layout)"))
        agreement = stats.agreement_rows(votes, study)
        agree = pd.DataFrame([{"Question": a["label"], "Items rated by >= 2": a["units_multi"],
                               "Pairwise agreement %": _pct(a["pairwise_agreement"]),
                               "Fleiss kappa": a["fleiss_kappa"]} for a in agreement])
        undefined = [f"{a['label']}: {a['kappa_undefined']}" for a in agreement if a["kappa_undefined"]]
        write_table(root, f"humaneval/{run_id}/agreement", agree, floatfmt=".2f",
                    title=f"Agreement between raters: {study['name']}",
                    notes=["On the arm that won (raters saw different left/right orders). Pairwise agreement: "
                           "mean over items of the share of agreeing rater pairs (Fleiss' P-bar); Fleiss' kappa "
                           "with per-item rater counts; 'all questions' pools item x question units.",
                           *([f"Blank kappa is undefined (n/a): {'; '.join(undefined)}."] if undefined else [])])
        per = pd.DataFrame([{"Rater": r["rater"], "Votes": r["votes"], "Shared votes": r["shared_pairs"],
                             "Agreement with others %": _pct(r["agreement"]),
                             "Mean Cohen kappa": r["mean_cohen_kappa"]} for r in stats.rater_rows(votes)])
        write_table(root, f"humaneval/{run_id}/raters", per, floatfmt=".2f",
                    title=f"Agreement per rater: {study['name']}",
                    notes=["Raters are pseudonyms (r1, r2 ... in the order they joined). Shared votes: votes on "
                           "(item, question) units another rater also answered, counted once per other rater; "
                           "Cohen's kappa per pair of raters over their shared units, averaged for each rater."])
        for s, t in (("agreement", "Rater agreement"), ("raters", "Agreement per rater")):
            arts.append(Artifact(stem=f"humaneval/{run_id}/{s}", exts=(".md", ".tex"), runs=ids, sources=fig_src,
                                 title=f"{t} ({study['name']})"))
    return arts
