"""The paper's numbers under experiments/paper/ load with the expected tables, rows and columns."""
from __future__ import annotations

from evalkit.report import paper
from evalkit.vbench.dimensions import DIMENSIONS


def test_vbench_tables_rows_and_columns():
    rows = paper.vbench_rows()
    counts = rows.groupby("table").size().to_dict()
    assert counts == {"table1": 4, "table3": 7, "table4": 7}
    for col in (*DIMENSIONS, "quality_score", "semantic_score", "total_score", "max_raw_frames", "source"):
        assert col in rows.columns and rows[col].notna().all(), col
    lingen = rows[rows["model"] == "LinGen"]
    assert set(lingen["max_raw_frames"]) == {1088}
    assert set(lingen["total_score"]) == {81.76}
    assert set(rows.loc[rows["table"] == "table4", "model"]) >= {"T2V-Turbo-v2", "LaVie-2", "VideoCrafter-2.0"}
    # percent scale, every score between 0 and 100
    assert ((rows[list(DIMENSIONS)] > 0) & (rows[list(DIMENSIONS)] <= 100)).all().all()


def test_table2_headline_and_max_frames():
    t2 = paper.table2()
    assert list(t2["variant"]) == ["default", "no-tesa", "no-rms", "zigzag", "mamba1", "no-ma", "no-review"]
    default = t2.loc[0, "latency_s"]
    assert default == 102 and (t2["latency_s"] - default == t2["delta_s"]).all()  # printed deltas are consistent
    heads = {h["id"]: h for h in paper.headline()}
    assert heads["flops_ratio_512p_68s"]["value"] == 15 and heads["latency_ratio_512p_68s"]["value"] == 11.5
    assert all(h["source"] for h in heads.values())
    assert paper.max_raw_frames()["value"] == 1088


def test_weights_note_flags_unofficial_and_unverified_files_not_weight_free_dimensions():
    import pandas as pd

    from evalkit.report.quality import weights_note

    def rows(*pairs):
        return pd.DataFrame([{"dimension": d, "weights_official": o} for d, o in pairs])
    assert weights_note(rows(("temporal_flickering", None))) == ""                 # reads no evaluator file
    assert weights_note(pd.DataFrame([{"dimension": "temporal_flickering"}])) == ""  # an old record: no field
    assert weights_note(rows(("temporal_flickering", None), ("aesthetic_quality", None))) == ", unverified weights"
    assert weights_note(rows(("aesthetic_quality", True), ("subject_consistency", True))) == ""
    assert weights_note(rows(("aesthetic_quality", True), ("motion_smoothness", False))) == ", UNOFFICIAL WEIGHTS"
