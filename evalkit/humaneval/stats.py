"""Statistics of a pairwise preference study: win / tie / loss, win rates under a tie rule, cluster-bootstrap
confidence intervals, and agreement between raters (the numbers behind the Figs. 8, 9, 10b, 12, 19 analogues).

Pure functions (numpy only) of outcome tuples, and of vote records (the end of this module: ``winrates``,
``agreement_rows``, ``rater_rows``); ``humaneval report`` prints them and the report renderer
(``evalkit/report/humaneval.py``) renders them, so both show the same numbers from the same records. A vote record
(``kind: humaneval_vote``, written by ``db.export``) has ``rater`` (pseudonym), ``item``, ``prompt``, ``index``,
``x`` / ``y`` (the compared arms, ``x`` the reference side), ``question``, ``answer`` (A = left, B = right, tie),
``left`` / ``right`` and ``winner`` (an arm or ``tie``).

- Outcome of one vote, from the reference side ``x`` of its pair: +1 (x wins), 0 (tie), -1 (y wins).
- Win rate of x under a tie rule (the paper does not state its own; see experiments/humaneval/defaults.yaml):
  ``half`` = (W + T/2) / N, ``exclude`` = W / (W + L), ``separate`` = W / N (ties a band of their own).
  The net win rate (W - L) / N (Movie Gen's summary) is reported next to it.
- Confidence interval: percentile interval of a cluster bootstrap. A cluster (a prompt, an item, or a rater) is
  resampled with all its votes, because votes on one prompt share its videos and votes of one rater share that
  rater's taste: resampling single votes would treat them as independent and understate the error.
- Agreement, on the arm that won (never on A/B: raters saw different left/right orders): Fleiss' kappa for items
  with any number (>= 2) of ratings (Fleiss 1971, with per-item rater counts), its observed agreement P-bar (the
  mean over items of the share of agreeing rater pairs), and Cohen's kappa for every pair of raters.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

TIE_RULES = ("half", "exclude", "separate")
CATEGORIES = ("x", "tie", "y")     # the reference side won / tie / the other side won
# Below this many clusters (prompts, items or raters) an interval is reported with a warning. Our threshold, for
# two reasons: a bootstrap over n clusters has only C(2n-1, n) distinct resamples (92,378 at n = 10, 126 at
# n = 5), so its percentiles are coarse; and (for a mean) its variance is the plug-in one, (n-1)/n times the
# unbiased estimate, so the interval is too narrow for small n. Cluster-bootstrap inference is known to over-reject with few
# clusters (Cameron, Gelbach & Miller 2008, "Bootstrap-based improvements for inference with clustered errors",
# Rev. Econ. Stat. 90(3), which studies 5 to 30 clusters).
FEW_CLUSTERS = 20


def outcome(winner: str, x: str, y: str) -> int:
    """+1 if ``x`` won, -1 if ``y`` won, 0 for a tie."""
    if winner == "tie":
        return 0
    if winner == x:
        return 1
    if winner == y:
        return -1
    raise ValueError(f"winner {winner!r} is neither {x!r}, {y!r} nor 'tie'")


def rate(win, tie, loss, rule: str):
    """Win rate of the reference side (a fraction) from counts; scalars or arrays. NaN where undefined."""
    if rule not in TIE_RULES:
        raise ValueError(f"tie rule {rule!r} is not one of {TIE_RULES}")
    w, t, lo = (np.asarray(v, dtype=float) for v in (win, tie, loss))
    with np.errstate(invalid="ignore", divide="ignore"):
        if rule == "half":
            out = (w + t / 2) / (w + t + lo)
        elif rule == "exclude":
            out = w / (w + lo)
        else:
            out = w / (w + t + lo)
    return float(out) if out.ndim == 0 else out


def counts(outcomes: Iterable[int]) -> tuple[int, int, int]:
    """(wins, ties, losses) of the reference side."""
    o = list(outcomes)
    return sum(1 for v in o if v > 0), sum(1 for v in o if v == 0), sum(1 for v in o if v < 0)


def cluster_counts(outcomes: Sequence[int], clusters: Sequence[Hashable]) -> np.ndarray:
    """(n_clusters, 3) win/tie/loss counts per cluster, clusters in first-seen order."""
    index: dict[Hashable, int] = {}
    table: list[list[int]] = []
    for o, c in zip(outcomes, clusters, strict=True):
        if c not in index:
            index[c] = len(table)
            table.append([0, 0, 0])
        table[index[c]][0 if o > 0 else 1 if o == 0 else 2] += 1
    return np.asarray(table, dtype=np.int64).reshape(-1, 3)


def bootstrap_interval(table: np.ndarray, rule: str, *, resamples: int, confidence: float, seed: int,
                       block: int = 256) -> tuple[float, float]:
    """Percentile interval of the win rate when the rows (clusters) of ``table`` (C, 3) are resampled with
    replacement, ``resamples`` times, from ``numpy.random.default_rng(seed)``. NaN for fewer than 2 clusters."""
    table = np.asarray(table, dtype=np.int64)
    n = table.shape[0]
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    rates = []
    for start in range(0, resamples, block):             # bounded memory: (block, C) draws at a time
        k = min(block, resamples - start)
        idx = rng.integers(0, n, size=(k, n))              # (k, C) cluster indices
        sums = table[idx].sum(axis=1)                      # (k, C, 3) -> (k, 3)
        rates.append(rate(sums[:, 0], sums[:, 1], sums[:, 2], rule))
    r = np.concatenate(rates)
    if np.isnan(r).all():                                  # e.g. only ties under `exclude`
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(r, [alpha, 1 - alpha])
    return float(lo), float(hi)


def summarize(outcomes: Sequence[int], clusters: Sequence[Hashable], rule: str, *, resamples: int,
              confidence: float, seed: int) -> dict[str, float | int]:
    """Counts, shares, win rate under ``rule``, its bootstrap interval over ``clusters`` and the net win rate."""
    w, t, lo = counts(outcomes)
    n = w + t + lo
    ci = bootstrap_interval(cluster_counts(outcomes, clusters), rule, resamples=resamples, confidence=confidence,
                            seed=seed)
    share = (lambda v: v / n) if n else (lambda v: float("nan"))
    return {"n_votes": n, "n_clusters": len(set(clusters)), "win": w, "tie": t, "loss": lo,
            "win_share": share(w), "tie_share": share(t), "loss_share": share(lo),
            "win_rate": rate(w, t, lo, rule) if n else float("nan"), "ci_low": ci[0], "ci_high": ci[1],
            "net_win": (w - lo) / n if n else float("nan")}


def fleiss_kappa(table: np.ndarray) -> tuple[float, float]:
    """(kappa, P-bar) of an (items, categories) table of rating counts; items with fewer than 2 ratings are
    dropped, items may have different numbers of ratings. NaN when chance agreement is 1 (one category only)."""
    t = np.asarray(table, dtype=float)
    n_i = t.sum(axis=1)
    t, n_i = t[n_i >= 2], n_i[n_i >= 2]
    if t.shape[0] == 0:
        return float("nan"), float("nan")
    p_i = ((t ** 2).sum(axis=1) - n_i) / (n_i * (n_i - 1))    # share of agreeing rater pairs on item i
    p_bar = float(p_i.mean())
    p_j = t.sum(axis=0) / n_i.sum()
    p_e = float((p_j ** 2).sum())
    kappa = float("nan") if np.isclose(p_e, 1.0) else (p_bar - p_e) / (1 - p_e)
    return kappa, p_bar


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels on the same units. NaN when chance agreement is 1."""
    if len(a) != len(b) or not a:
        return float("nan")
    cats = sorted(set(a) | set(b), key=str)
    p_o = sum(x == y for x, y in zip(a, b)) / len(a)
    p_e = sum((list(a).count(c) / len(a)) * (list(b).count(c) / len(b)) for c in cats)
    return float("nan") if np.isclose(p_e, 1.0) else (p_o - p_e) / (1 - p_e)


def category(o: int) -> str:
    return CATEGORIES[1 - int(np.sign(o))]


def agreement(ratings: Iterable[tuple[Hashable, Hashable, int]]) -> dict[str, float | int]:
    """Fleiss' kappa and P-bar over (unit, rater, outcome) ratings; units rated by one rater only do not count."""
    per_unit: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0, 0])
    for unit, _rater, o in ratings:
        per_unit[unit][CATEGORIES.index(category(o))] += 1
    table = np.asarray(list(per_unit.values()), dtype=float).reshape(-1, 3)
    multi = int((table.sum(axis=1) >= 2).sum()) if table.size else 0
    kappa, p_bar = fleiss_kappa(table) if multi else (float("nan"), float("nan"))
    why = ("" if kappa == kappa else "no item was rated by two or more raters" if not multi else
           "every rating is in one category (chance agreement is 1)")
    return {"units_multi": multi, "fleiss_kappa": kappa, "pairwise_agreement": p_bar, "kappa_undefined": why}


def few_clusters(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A warning per comparison whose bootstrap has fewer than ``FEW_CLUSTERS`` clusters (see there)."""
    out: dict[str, str] = {}
    for r in rows:
        n = int(r["n_clusters"])
        if n < FEW_CLUSTERS and r["comparison"] not in out:
            out[r["comparison"]] = (f"{r['comparison']}: the interval resamples only {n} {r['bootstrap_unit']}s "
                                    f"(fewer than {FEW_CLUSTERS}); with so few clusters a bootstrap interval is "
                                    "too narrow and coarse to trust: rate more "
                                    f"{r['bootstrap_unit']}s")
    return list(out.values())


def per_rater(ratings: Iterable[tuple[Hashable, Hashable, int]]) -> list[dict[str, object]]:
    """For each rater: votes, the share of (this rater, other rater, shared unit) pairs that agree, and the mean
    Cohen's kappa against each other rater over their shared units."""
    by_rater: dict[Hashable, dict[Hashable, str]] = defaultdict(dict)
    for unit, rater, o in ratings:
        by_rater[rater][unit] = category(o)
    raters = sorted(by_rater, key=str)
    kappas: dict[Hashable, list[float]] = defaultdict(list)
    agree: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    for r1, r2 in combinations(raters, 2):
        shared = sorted(set(by_rater[r1]) & set(by_rater[r2]), key=str)
        if not shared:
            continue
        a, b = [by_rater[r1][u] for u in shared], [by_rater[r2][u] for u in shared]
        k = cohen_kappa(a, b)
        same = sum(x == y for x, y in zip(a, b))
        for r in (r1, r2):
            kappas[r].append(k)
            agree[r][0] += same
            agree[r][1] += len(shared)
    out = []
    for r in raters:
        ks = [k for k in kappas[r] if not np.isnan(k)]
        out.append({"rater": r, "votes": len(by_rater[r]), "shared_pairs": agree[r][1],
                    "agreement": agree[r][0] / agree[r][1] if agree[r][1] else float("nan"),
                    "mean_cohen_kappa": float(np.mean(ks)) if ks else float("nan")})
    return out


# --- vote records -> the study's tables ---

def _cluster(v: Mapping[str, Any], unit: str) -> Hashable:
    if unit == "prompt":
        return v["prompt"]
    if unit == "item":
        return (v["prompt"], int(v["index"]))
    if unit == "rater":
        return v["rater"]
    raise ValueError(f"bootstrap unit {unit!r} is not one of prompt, item, rater")


def _outcome(v: Mapping[str, Any]) -> int:
    return outcome(v["winner"], v["x"], v["y"])


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
            s = summarize([_outcome(v) for v in sel], [_cluster(v, boot["unit"]) for v in sel], rep["ties"],
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


def agreement_rows(votes: Sequence[Mapping[str, Any]], study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fleiss' kappa and pairwise agreement per question (units: items rated by two or more raters), and over all
    questions pooled (units: item x question)."""
    rows = []
    for q in study["questions"]:
        sel = [(v["item"], v["rater"], _outcome(v)) for v in votes if v["question"] == q["id"]]
        if sel:
            rows.append({"question": q["id"], "label": q["label"], **agreement(sel)})
    pooled = [((v["item"], v["question"]), v["rater"], _outcome(v)) for v in votes]
    if pooled:
        rows.append({"question": "all", "label": "all questions", **agreement(pooled)})
    return rows


def rater_rows(votes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per rater, over (item, question) units: votes, agreement with the other raters, mean Cohen's kappa."""
    return per_rater(((v["item"], v["question"]), v["rater"], _outcome(v)) for v in votes)
