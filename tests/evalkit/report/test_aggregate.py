"""evalkit.vbench.aggregate against hand-computed VBench scores (scripts/cal_final_score.py formulas)."""
from __future__ import annotations

import pytest

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.vbench.aggregate import MissingDimensionsError, aggregate
from evalkit.vbench.dimensions import (DIMENSIONS, NORMALIZE, QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS, WEIGHTS)


def _all(value: float = 0.5) -> dict[str, float]:
    return {d: value for d in DIMENSIONS}


def test_constants_match_vbench_constant_py():
    assert len(DIMENSIONS) == 16 and len(QUALITY_DIMENSIONS) == 7 and len(SEMANTIC_DIMENSIONS) == 9
    assert NORMALIZE["motion_smoothness"] == (0.706, 0.9975)
    assert NORMALIZE["appearance_style"] == (0.0009, 0.2855)
    assert NORMALIZE["scene"] == (0.0, 0.8222)
    assert WEIGHTS["dynamic_degree"] == 0.5 and sum(WEIGHTS.values()) == 15.5


def test_hand_computed_scores():
    s = _all(0.5)
    # quality: hand-computed normalised values, weights 1 except dynamic 0.5, / 6.5
    q = ((0.5 - 0.1462) / 0.8538 + (0.5 - 0.2615) / 0.7385 + (0.5 - 0.6293) / 0.3707 + (0.5 - 0.706) / 0.2915
         + 0.5 + 0.5 + 0.5 * 0.5) / 6.5
    sem = (0.5 * 5 + 0.5 / 0.8222 + (0.5 - 0.0009) / 0.2846 + 0.5 / 0.364 + 0.5 / 0.364) / 9
    res = aggregate(s)
    assert res["quality_score"] == pytest.approx(q, abs=1e-12)
    assert res["semantic_score"] == pytest.approx(sem, abs=1e-12)
    assert res["total_score"] == pytest.approx((4 * q + sem) / 5, abs=1e-12)
    assert res["partial"] is False and res["missing"] == []


def test_published_lingen_row_after_relabelling_reproduces():
    # Table 1 LinGen row with the last three quality columns read as dynamic/aesthetic/imaging (see integrity check)
    q = dict(subject_consistency=.9830, background_consistency=.9760, temporal_flickering=.9926,
             motion_smoothness=.9858, dynamic_degree=.6367, aesthetic_quality=.6055, imaging_quality=.6336)
    s = dict(object_class=.9098, multiple_objects=.5515, human_action=.975, color=.8395, spatial_relationship=.5815,
             scene=.5351, appearance_style=.2108, temporal_style=.2429, overall_consistency=.2632)
    res = aggregate({**q, **s})
    assert 100 * res["quality_score"] == pytest.approx(83.77, abs=0.01)
    assert 100 * res["semantic_score"] == pytest.approx(73.73, abs=0.01)
    assert 100 * res["total_score"] == pytest.approx(81.76, abs=0.01)


def test_missing_dimension_is_an_error_listing_them():
    s = _all()
    del s["scene"], s["color"]
    with pytest.raises(MissingDimensionsError) as exc:
        aggregate(s)
    assert exc.value.missing == ["color", "scene"]
    assert "color" in str(exc.value) and "scene" in str(exc.value)


def test_partial_is_labelled_and_never_zero_filled():
    s = _all(0.8)
    del s["subject_consistency"]   # VBench would count raw 0 -> negative contribution (-0.171)
    res = aggregate(s, partial=True)
    assert res["partial"] is True and res["missing"] == ["subject_consistency"]
    present = [d for d in QUALITY_DIMENSIONS if d != "subject_consistency"]
    expect = sum((0.8 - NORMALIZE[d][0]) / (NORMALIZE[d][1] - NORMALIZE[d][0]) * WEIGHTS[d] for d in present) / sum(
        WEIGHTS[d] for d in present)
    assert res["quality_score"] == pytest.approx(expect, abs=1e-12)
    only_quality = aggregate({d: 0.9 for d in QUALITY_DIMENSIONS}, partial=True)
    assert only_quality["semantic_score"] is None and only_quality["total_score"] is None


def test_bad_input_errors():
    with pytest.raises(ChoiceError, match="subject_consistency"):
        aggregate({**_all(), "subject_consistancy": 0.5})
    with pytest.raises(FieldError, match="percentage"):
        aggregate({**_all(), "color": 83.95})
    assert aggregate({k.replace("_", " "): v for k, v in _all().items()}) == aggregate(_all())
