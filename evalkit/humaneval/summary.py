"""Vote records -> the study's tables: win rates per (comparison, question) with bootstrap intervals, Fleiss'
kappa per question, and agreement per rater. Shared by ``humaneval report`` (printed) and the report renderer
(``evalkit/report/humaneval.py``), so both show the same numbers from the same records.

A vote record (``kind: humaneval_vote``, written by ``evalkit.humaneval.export``) has: ``rater`` (pseudonym),
``item``, ``prompt``, ``index``, ``x`` / ``y`` (the compared arms, ``x`` the reference side), ``question``,
``answer`` (A = left, B = right, tie), ``left`` / ``right`` and ``winner`` (an arm or ``tie``).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from evalkit.humaneval import stats


def _cluster(v: Mapping[str, Any], unit: str) -> Hashable:
    if unit == "prompt":
        return v["prompt"]
    if unit == "item":
        return (v["prompt"], int(v["index"]))
    if unit == "rater":
        return v["rater"]
    raise ValueError(f"bootstrap unit {unit!r} is not one of prompt, item, rater")


def _outcome(v: Mapping[str, Any]) -> int:
    return stats.outcome(v["winner"], v["x"], v["y"])


def comparisons(votes: Sequence[Mapping[str, Any]], study: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(x, y) pairs in the study's order, keeping only those with votes."""
    seen = {(v["x"], v["y"]) for v in votes}
    arms = list(study["arms"])
    ref = study.get("reference") or arms[0]
    if study["pairs"] == "reference":
        order = [(ref, a) for a in arms if a != ref]
    else:
        order = [(a, b) for i, a in enumerate(arms) for b in arms[i + 1:]]
    return [p for p in order if p in seen] + sorted(seen - set(order))


def winrates(votes: Sequence[Mapping[str, Any]], study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (comparison, question) with votes: shares, win rate under the study's tie rule, its bootstrap
    interval (clusters = the study's bootstrap unit) and the net win rate."""
    rep = study["report"]
    boot = rep["bootstrap"]
    rows = []
    for x, y in comparisons(votes, study):
        for q in study["questions"]:
            sel = [v for v in votes if v["x"] == x and v["y"] == y and v["question"] == q["id"]]
            if not sel:
                continue
            s = stats.summarize([_outcome(v) for v in sel], [_cluster(v, boot["unit"]) for v in sel], rep["ties"],
                                resamples=int(boot["resamples"]), confidence=float(boot["confidence"]),
                                seed=int(boot["seed"]))
            rows.append({"comparison": f"{x} vs {y}", "x": x, "y": y, "question": q["id"], "label": q["label"],
                         "group": q["group"], "n_votes": s["n_votes"], "n_prompts": len({v["prompt"] for v in sel}),
                         "n_raters": len({v["rater"] for v in sel}), "win": s["win"], "tie": s["tie"],
                         "loss": s["loss"], "win_share": s["win_share"], "tie_share": s["tie_share"],
                         "loss_share": s["loss_share"], "win_rate": s["win_rate"], "ci_low": s["ci_low"],
                         "ci_high": s["ci_high"], "net_win": s["net_win"], "ties": rep["ties"],
                         "bootstrap_unit": boot["unit"], "n_clusters": s["n_clusters"]})
    return rows


def agreement(votes: Sequence[Mapping[str, Any]], study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fleiss' kappa and pairwise agreement per question (units: items rated by two or more raters), and over all
    questions pooled (units: item x question)."""
    rows = []
    for q in study["questions"]:
        sel = [(v["item"], v["rater"], _outcome(v)) for v in votes if v["question"] == q["id"]]
        if sel:
            rows.append({"question": q["id"], "label": q["label"], **stats.agreement(sel)})
    pooled = [((v["item"], v["question"]), v["rater"], _outcome(v)) for v in votes]
    if pooled:
        rows.append({"question": "all", "label": "all questions", **stats.agreement(pooled)})
    return rows


def raters(votes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per rater, over (item, question) units: votes, agreement with the other raters, mean Cohen's kappa."""
    return stats.per_rater(((v["item"], v["question"]), v["rater"], _outcome(v)) for v in votes)
