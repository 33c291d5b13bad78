"""Integrity check of the published VBench tables: accepts a consistent row, flags and explains corrupted ones."""
from __future__ import annotations

import pandas as pd

from evalkit.report import integrity, paper


def _row(**changes) -> pd.DataFrame:
    rows = paper.vbench_rows()
    row = rows[(rows["table"] == "table3") & (rows["model"] == "Mira")].copy()   # reproduces as printed
    for k, v in changes.items():
        row[k] = v
    return row


def test_consistent_row_accepted():
    res = integrity.check(_row())
    assert res["ok"].all(), res


def test_corrupted_semantic_cell_flagged_as_typo():
    res = integrity.check(_row(object_class=25.06))   # printed 52.06: two digits swapped
    bad = res[~res["ok"]].set_index("column")
    assert "semantic_score" in bad.index
    assert "typo in object_class" in bad.loc["semantic_score", "explanation"]
    assert "inherited" in bad.loc["total_score", "explanation"]


def test_corrupted_total_flagged():
    res = integrity.check(_row(total_score=75.87))
    bad = res[~res["ok"]].set_index("column")
    assert list(bad.index) == ["total_score"]
    assert "inconsistent with the printed Quality and Semantic" in bad.loc["total_score", "explanation"]


def test_published_tables_findings():
    res = integrity.check(paper.vbench_rows())
    assert res[res["column"] == "semantic_score"]["ok"].all()     # every semantic score reproduces
    bad_q = res[(res["column"] == "quality_score") & ~res["ok"]]
    assert len(bad_q) == 17                                        # every quality row but Mira's
    assert bad_q["explanation"].str.contains("leaderboard order").all()
