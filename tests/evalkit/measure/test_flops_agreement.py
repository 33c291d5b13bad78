"""Counted FLOPs (the sweep's counter on meta, custom-op formulas) == analytic estimate_flops, for every registered
model at tiny and 4b; LinGen linear in tokens, DiT's mixer quadratic (LinGen Figs. 1b, 6). The counter itself is
checked against torch's FlopCounterMode and against counting every layer in tests/evalkit/measure/test_flop_counter.py."""
from __future__ import annotations

import pytest

from evalkit import models as M
from evalkit.measure.flop_counter import count_point

P17 = M.VideoPoint(height=512, width=896, duration_s=17.0)
P68 = M.VideoPoint(height=512, width=896, duration_s=68.0)


def counted(cfg, point, batch=1):
    return count_point(cfg, point, batch=batch, build=lambda c: M.build(c, device="meta")).total


@pytest.mark.parametrize("name", M.names("tiny"))
def test_counted_equals_estimate_tiny(name):
    cfg = M.resolve(name, "tiny")
    point = M.VideoPoint(height=64, width=96, duration_s=3.0)  # tokens (6, 4, 6)
    est = M.estimate_flops(cfg, point, batch=2)
    assert counted(cfg, point, batch=2) == est.total  # exact, not within a tolerance
    assert est.convention == "2*MAC" and set(est.breakdown) == {"mixer", "cross_attention", "ffn", "other"}


def test_counted_equals_estimate_with_tesa_padding():
    cfg = M.resolve("lingen", "tiny", {"mate.window": [4, 3, 3]})
    point = M.VideoPoint(height=80, width=112, duration_s=5.0)  # tokens (10, 5, 7): padded to (12, 6, 9)
    assert counted(cfg, point) == M.estimate_flops(cfg, point).total


@pytest.mark.parametrize("name", M.names("4b"))
def test_counted_equals_estimate_4b_512p_17s(name):
    cfg = M.resolve(name, "4b")
    assert counted(cfg, P17) == M.estimate_flops(cfg, P17).total


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lingen", "dit"])
def test_counted_equals_estimate_4b_512p_68s(name):
    cfg = M.resolve(name, "4b")
    assert counted(cfg, P68) == M.estimate_flops(cfg, P68).total


def test_lingen_linear_dit_quadratic():
    lin, dit = M.resolve("lingen", "4b"), M.resolve("dit", "4b")
    token_ratio = M.num_tokens(lin, P68) / M.num_tokens(lin, P17)
    assert token_ratio == 4
    r_lin = M.estimate_flops(lin, P68).total / M.estimate_flops(lin, P17).total
    assert abs(r_lin / token_ratio - 1) < 0.02
    d68, d17 = M.estimate_flops(dit, P68).breakdown["mixer"], M.estimate_flops(dit, P17).breakdown["mixer"]
    assert d68 / d17 > 0.9 * token_ratio ** 2  # the attention term dominates: ~16x for 4x tokens
    ratio = M.estimate_flops(dit, P68).total / M.estimate_flops(lin, P68).total
    assert 12 < ratio < 18  # paper: "up to 15x" FLOPs at 68 s / 512p (stated); 15.15x with this preset
