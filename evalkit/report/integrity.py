"""Integrity check of the paper's published VBench tables (Tables 1, 3, 4): do the printed Quality, Semantic and
Total scores follow from the printed per-dimension numbers under VBench's normalisation and weights?

For every published row it recomputes the three scores with :func:`evalkit.vbench.aggregate.aggregate` (the
paper prints percent; VBench works in fractions), flags every column off by more than ``TOL`` points, and for a
flagged column tries, in order, the explanations below; the first that reproduces the printed number is reported:

1. columns mislabelled (values of some dimensions printed under another's header; pairwise swaps and the
   rotation of the last three columns into VBench's leaderboard order dynamic / aesthetic / imaging);
2. a different weighting (dynamic_degree weight 1 instead of 0.5; Total = mean of Q and S);
3. unnormalised scores (plain weighted mean of raw scores, no Min/Max normalisation);
4. a typo in one printed per-dimension cell (one changed digit or two swapped adjacent digits reproduce it);
5. a typo in the printed score itself (a single digit away from the recomputed one);
6. otherwise "unexplained".
Rounding of the printed cells (0.01 points) moves a recomputed score by at most ~0.014 points, hence TOL = 0.02.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import pandas as pd

from evalkit.vbench.aggregate import aggregate
from evalkit.vbench.dimensions import DIMENSIONS, QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS, WEIGHTS

TOL = 0.02  # points (percent units): a published total that differs by more "does not reproduce"
SCORES = ("quality_score", "semantic_score", "total_score")


def _scores(row: pd.Series | dict, **kw) -> dict[str, float]:
    """Recomputed scores in percent from a row in percent."""
    res = aggregate({d: float(row[d]) / 100.0 for d in DIMENSIONS}, **kw)
    return {k: 100.0 * res[k] for k in SCORES}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL + 1e-9


def _one_edit(a: str, b: str) -> bool:
    """True when b differs from a by one changed digit or one swap of adjacent digits (same length)."""
    if len(a) != len(b) or a == b:
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1:
        return True
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def _edits(s: str) -> list[str]:
    """Strings one digit change or one adjacent-digit swap away from ``s``."""
    out = []
    for i, ch in enumerate(s):
        if ch.isdigit():
            out += [s[:i] + d + s[i + 1:] for d in "0123456789" if d != ch]
            if i + 1 < len(s) and s[i + 1].isdigit() and s[i + 1] != ch:
                out.append(s[:i] + s[i + 1] + ch + s[i + 2:])
    return out


def _relabel_candidates(group: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """(description, {printed column -> true dimension}) candidates, smallest change first."""
    out: list[tuple[str, dict[str, str]]] = []
    if group is QUALITY_DIMENSIONS:
        a, i, d = "aesthetic_quality", "imaging_quality", "dynamic_degree"
        out.append(("the last three quality columns hold dynamic_degree, aesthetic_quality, imaging_quality "
                    "(VBench leaderboard order) under the headers Aesthe./Imag./Dyna.", {a: d, i: a, d: i}))
    for x, y in itertools.combinations(group, 2):
        out.append((f"columns {x} and {y} swapped", {x: y, y: x}))
    return out


def _explain(row: pd.Series, col: str, printed: float, recomputed: float) -> str:
    group = SEMANTIC_DIMENSIONS if col == "semantic_score" else QUALITY_DIMENSIONS
    groups = (QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS) if col == "total_score" else (group,)
    target = float(row[col])
    # 0. Total only: is it consistent with the printed Q and S?
    if col == "total_score":
        from_printed = (4 * float(row["quality_score"]) + float(row["semantic_score"])) / 5
        if not _close(from_printed, target):
            if _close((float(row["quality_score"]) + float(row["semantic_score"])) / 2, target):
                return "Total = (Q + S) / 2, not VBench's (4Q + S) / 5"
            return (f"Total is inconsistent with the printed Quality and Semantic too ((4Q+S)/5 = {from_printed:.2f}): "
                    "typo in Total or scores from different runs")
        if not (_close(_scores(row, partial=False)["quality_score"], float(row["quality_score"]))
                and _close(_scores(row)["semantic_score"], float(row["semantic_score"]))):
            return "follows from the printed Quality/Semantic ((4Q+S)/5); the mismatch is inherited from them"
    tests: list[tuple[str, Callable[[], float]]] = []
    for g in groups:
        for desc, mapping in _relabel_candidates(g):
            def f(mapping=mapping) -> float:
                moved = dict(row)
                for src, dst in mapping.items():
                    moved[dst] = float(row[src])
                return _scores(moved)[col]
            tests.append(("mislabelled columns: " + desc, f))
    w1 = dict(WEIGHTS, dynamic_degree=1.0)
    tests.append(("different weights: dynamic_degree weighted 1 instead of VBench's 0.5",
                  lambda: _scores(row, weights=w1)[col]))
    tests.append(("unnormalised: plain weighted mean of raw scores (no VBench Min/Max normalisation)",
                  lambda: _scores(row, normalize={d: (0.0, 1.0) for d in DIMENSIONS})[col]))
    for desc, fn in tests:
        if _close(fn(), target):
            return desc
    # 4. typo in one cell: every variant of one printed cell with one digit changed or two adjacent digits swapped
    best: tuple[float, str] | None = None
    for g in groups:
        for dim in g:
            printed_cell = f"{float(row[dim]):.2f}"
            for variant in _edits(printed_cell):
                if not 0.0 <= float(variant) <= 100.0:
                    continue
                moved = dict(row)
                moved[dim] = float(variant)
                err = abs(_scores(moved)[col] - target)
                if err <= TOL + 1e-9 and (best is None or err < best[0]):
                    best = (err, f"likely typo in {dim}: printed {printed_cell}, {variant} reproduces the printed "
                                 "score")
    if best is not None:
        return best[1]
    if _one_edit(f"{recomputed:.2f}", f"{printed:.2f}"):
        return f"likely typo in the printed score: recomputed {recomputed:.2f}"
    return "unexplained: per-dimension numbers and the score likely come from different evaluations"


def check(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (table, model, score column): printed, recomputed, diff, ok, explanation (flagged only)."""
    out = []
    for _, row in rows.iterrows():
        rec = _scores(row)
        for col in SCORES:
            printed = float(row[col])
            diff = rec[col] - printed
            ok = _close(rec[col], printed)
            out.append({"table": row["table"], "model": row["model"], "column": col, "printed": printed,
                        "recomputed": round(rec[col], 4), "diff": round(diff, 4), "ok": ok,
                        "explanation": "" if ok else _explain(row, col, printed, rec[col])})
    return pd.DataFrame(out)


def findings(rows: pd.DataFrame, res: pd.DataFrame) -> list[str]:
    """Plain-language summary of ``check`` results, computed (never typed) for the report's notes."""
    out = []
    for col in SCORES:
        sub = res[res["column"] == col]
        bad = sub[~sub["ok"]]
        line = f"{col}: {len(sub) - len(bad)} of {len(sub)} rows reproduce"
        if len(bad):
            expl = bad["explanation"].value_counts()
            line += "; not reproducing: " + "; ".join(f"{n} x '{e}'" for e, n in expl.items())
        out.append(line)
    a, i, d = "aesthetic_quality", "imaging_quality", "dynamic_degree"
    moved = rows.copy()
    moved[d], moved[a], moved[i] = rows[a], rows[i], rows[d]
    n_q = int(check(moved).query("column == 'quality_score'")["ok"].sum())
    out.append(f"reading the last three quality columns as dynamic/aesthetic/imaging in every row: {n_q} of "
               f"{len(rows)} quality scores reproduce")
    tot = (4 * rows["quality_score"] + rows["semantic_score"]) / 5
    n_t = int(((tot - rows["total_score"]).abs() <= TOL + 1e-9).sum())
    out.append(f"Total vs (4 x printed Quality + printed Semantic) / 5: {n_t} of {len(rows)} rows consistent")
    cols = list(DIMENSIONS) + list(SCORES)
    for model, sel in rows.groupby("model", sort=True):
        protos = sel.drop_duplicates(subset=cols)
        if sel["protocol"].nunique() > 1 and len(protos) == 1:
            out.append(f"{model}: identical numbers under {', '.join(sorted(sel['protocol'].unique()))} "
                       f"({', '.join(sel['table'])})")
    return out
