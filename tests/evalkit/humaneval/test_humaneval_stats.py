"""Win rates, tie rules, the cluster bootstrap and rater agreement against textbook values and known
distributions."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from evalkit.humaneval import stats

# Fleiss (1971) as reproduced on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories.
FLEISS_TABLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_textbook_example():
    kappa, p_bar = stats.fleiss_kappa(np.array(FLEISS_TABLE))
    assert p_bar == pytest.approx(0.378, abs=5e-4)
    assert kappa == pytest.approx(0.210, abs=5e-4)
    # perfect agreement with two categories used -> 1; a single category -> undefined, not a number
    assert stats.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]]))[0] == pytest.approx(1.0)
    assert math.isnan(stats.fleiss_kappa(np.array([[3, 0], [3, 0]]))[0])
    # items with one rating do not count; items with different numbers of ratings do
    kappa2, _ = stats.fleiss_kappa(np.array([*FLEISS_TABLE, [0, 0, 1, 0, 0]]))
    assert kappa2 == pytest.approx(kappa)


def test_cohen_kappa_textbook_example():
    # Wikipedia's "Cohen's kappa" example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> 0.4
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert stats.cohen_kappa(a, b) == pytest.approx(0.4)
    assert stats.cohen_kappa(a, a) == pytest.approx(1.0)


def test_tie_rules_and_net_win():
    assert stats.rate(6, 2, 2, "half") == pytest.approx(0.7)
    assert stats.rate(6, 2, 2, "exclude") == pytest.approx(0.75)
    assert stats.rate(6, 2, 2, "separate") == pytest.approx(0.6)
    assert math.isnan(stats.rate(0, 3, 0, "exclude"))            # all ties: no decided vote
    s = stats.summarize([1] * 6 + [0] * 2 + [-1] * 2, list(range(10)), "half", resamples=500, confidence=0.95,
                        seed=0)
    assert (s["win"], s["tie"], s["loss"], s["n_votes"]) == (6, 2, 2, 10)
    assert s["net_win"] == pytest.approx(0.4) and s["win_rate"] == pytest.approx(0.7)
    # symmetry: swapping the sides gives 1 - rate under `half` and `exclude`
    for rule in ("half", "exclude"):
        assert stats.rate(2, 2, 6, rule) == pytest.approx(1 - stats.rate(6, 2, 2, rule))


def test_bootstrap_matches_the_binomial_interval():
    """400 independent votes with p = 0.7: the percentile interval is the normal one, p +- 1.96 sqrt(p q / n)."""
    rng = random.Random(1)
    outcomes = [1 if rng.random() < 0.7 else -1 for _ in range(400)]
    p = sum(o > 0 for o in outcomes) / 400
    half = 1.96 * math.sqrt(p * (1 - p) / 400)
    lo, hi = stats.bootstrap_interval(stats.cluster_counts(outcomes, range(400)), "separate", resamples=4000,
                                      confidence=0.95, seed=3)
    assert lo == pytest.approx(p - half, abs=0.008) and hi == pytest.approx(p + half, abs=0.008)
    again = stats.bootstrap_interval(stats.cluster_counts(outcomes, range(400)), "separate", resamples=4000,
                                     confidence=0.95, seed=3)
    assert again == (lo, hi)                                       # seeded: the same interval every time


def test_cluster_bootstrap_widens_for_correlated_votes():
    """8 raters agree completely on each of 50 prompts: the votes carry the information of 50, not 400, so the
    interval over prompts is about sqrt(8) times the naive per-vote one."""
    rng = random.Random(2)
    per_prompt = [1 if rng.random() < 0.6 else -1 for _ in range(50)]
    outcomes = [o for o in per_prompt for _ in range(8)]
    prompts = [i for i in range(50) for _ in range(8)]
    kw = dict(resamples=3000, confidence=0.95, seed=0)
    lo_c, hi_c = stats.bootstrap_interval(stats.cluster_counts(outcomes, prompts), "half", **kw)
    lo_v, hi_v = stats.bootstrap_interval(stats.cluster_counts(outcomes, range(400)), "half", **kw)
    assert (hi_c - lo_c) / (hi_v - lo_v) == pytest.approx(math.sqrt(8), rel=0.2)
    s = stats.summarize(outcomes, prompts, "half", **kw)              # what the report uses: the clusters given
    assert (s["ci_low"], s["ci_high"]) == (lo_c, hi_c) and s["n_clusters"] == 50
    assert math.isnan(stats.bootstrap_interval(np.array([[3, 0, 1]]), "half", **kw)[0])   # one cluster


def _vote(rater, item, question, winner, left, x="lingen", y="dit", prompt=None):
    return {"rater": rater, "item": item, "prompt": prompt or item, "index": 0, "question": question, "x": x,
            "y": y, "winner": winner, "left": left, "right": y if left == x else x}


def test_agreement_is_on_the_winner_not_the_side():
    """Two raters who prefer the same arm on every item agree perfectly although they saw it on opposite sides
    (their A/B answers always differ)."""
    votes = []
    for i, winner in enumerate(["lingen", "dit", "lingen", "tie", "dit", "lingen"]):
        votes.append(_vote("r1", f"i{i}", "quality", winner, left="lingen"))
        votes.append(_vote("r2", f"i{i}", "quality", winner, left="dit"))
    study = {"questions": [{"id": "quality", "label": "Quality", "group": "quality"}]}
    agree = stats.agreement_rows(votes, study)
    assert agree[0]["fleiss_kappa"] == pytest.approx(1.0) and agree[0]["pairwise_agreement"] == pytest.approx(1.0)
    per = {r["rater"]: r for r in stats.rater_rows(votes)}
    assert per["r1"]["mean_cohen_kappa"] == pytest.approx(1.0) and per["r1"]["agreement"] == 1.0
    # a third rater who always picks the other side disagrees with both
    flip = {"lingen": "dit", "dit": "lingen", "tie": "tie"}
    votes += [_vote("r3", v["item"], "quality", flip[v["winner"]], left="lingen") for v in votes if v["rater"] == "r1"]
    per = {r["rater"]: r for r in stats.rater_rows(votes)}
    assert per["r3"]["agreement"] == pytest.approx(1 / 6) and per["r3"]["mean_cohen_kappa"] < 0
    assert per["r1"]["agreement"] == pytest.approx((6 + 1) / 12)


def test_winrates_rows_follow_the_study():
    study = {"arms": {"lingen": "a", "dit": "b", "mamba": "c"}, "reference": None, "pairs": "reference",
             "questions": [{"id": "quality", "label": "Quality", "group": "quality"},
                           {"id": "overall_alignment", "label": "Overall alignment", "group": "alignment"}],
             "report": {"ties": "exclude", "bootstrap": {"unit": "rater", "resamples": 200, "confidence": 0.9,
                                                         "seed": 0}}}
    votes = [_vote(f"r{k}", f"i{i}", q, w, left="lingen", y=y) for k in range(3) for i in range(4)
             for q, w in (("quality", "lingen"), ("overall_alignment", "tie")) for y in ("dit", "mamba")]
    votes[0]["winner"] = "dit"
    rows = stats.winrates(votes, study)
    assert [(r["comparison"], r["question"]) for r in rows] == [
        ("lingen vs dit", "quality"), ("lingen vs dit", "overall_alignment"),
        ("lingen vs mamba", "quality"), ("lingen vs mamba", "overall_alignment")]
    q = rows[0]
    assert (q["win"], q["loss"], q["n_votes"], q["n_raters"]) == (11, 1, 12, 3)
    assert q["win_rate"] == pytest.approx(11 / 12) and q["n_clusters"] == 3     # exclude ties; clusters = raters
    assert math.isnan(rows[1]["win_rate"]) and rows[1]["tie_share"] == 1.0      # only ties: undefined, not 0
