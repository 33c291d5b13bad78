"""The geometry fit of the efficiency figure (evalkit/figure/fit.py): its depth extrapolation is exact, a planted
geometry is recovered from its own FLOPs, and MATE's growth bound is what its linear cost allows (the published
fit run is checked in tests/evalkit/figure/test_figure_published.py)."""
from __future__ import annotations

import copy
import dataclasses
import math

from evalkit import models
from evalkit.figure import digitize as D
from evalkit.figure import fit as F

SMALL = F.SearchSpace(widths=(2048,), ffn_ratios=(2.75,), temporal_compression=(8,), spatial_compression=(8,),
                      patches=((1, 2, 2),), frames=((512, 512), (512, 896)), text_lens=(256,), windows=((17, 4, 4),),
                      review_strides=(16,), d_states=(64,), keep=5)


def _planted(values: dict, frame: tuple[int, int], passes: int, rel_u: float = 0.005) -> dict:
    """The committed figure's FLOPs markers with values replaced by the presets' own FLOPs per step at ``frame``
    (what a figure of the presets would plot), half-width ``rel_u`` of each value."""
    out = copy.deepcopy(values)
    cfg = {m: models.resolve(m, "4b", {"max_grid": [136, 128, 128]}) for m in F.MODELS}
    for m in out["markers"]:
        if m["quantity"] != "tflop_per_step":
            continue
        h, w = F.scaled_frame(frame, (m["height"], m["width"]), 16)
        c = dataclasses.replace(cfg[m["model"]], max_grid=(136, 128, 128))
        v = passes * models.estimate_flops(c, models.VideoPoint(height=h, width=w, duration_s=m["duration_s"])).total
        m["value"], m["u_value"] = v / 1e12, rel_u * v / 1e12
    return out


def test_depth_extrapolation_is_exact():
    values = D.read()
    ev = F.Evaluator(F.flops_markers(values), F.SearchSpace())
    tok = next(t for t in F.token_geometries(ev.space, set(ev.labels)) if t.frame == (512, 512)
               and t.compression == (4, 8, 8) and t.patch == (1, 2, 2))
    g = {"d_model": 1920, "heads": 15, "ffn_dim": 5248, "text_len": 512, "compression": (4, 8, 8), "patch": (1, 2, 2),
         "frame": (512, 512), "max_grid": (272, 64, 64), "window": (17, 8, 8), "review_stride": 4, "d_state": 128}
    for mod in F.MODELS:
        c0, c1, p0, p1 = ev.linear(mod, g, tok)
        for depth in (3, 37, 68):
            cfg = ev.config(mod, g, depth)
            direct = [models.estimate_flops(cfg, tok.points[lab]).total for lab in ev.labels]
            assert all(math.isclose(a, c0[i] + depth * c1[i], rel_tol=1e-12) for i, a in enumerate(direct)), mod
            assert models.param_count(cfg) == round(p0 + depth * p1)
            # the config scored is the one resolve builds from the same overrides
            assert models.resolve(mod, "4b", F.geometry_overrides({**g, "depth": depth}, mod)) == cfg


def test_search_recovers_a_planted_geometry():
    """A figure made from the presets at 512x896 with 2 passes per step: the search finds exactly that (frame,
    passes, depth 56), with z ~ 0 at every marker; told nothing of it, it is one of 2 frames x 2 passes."""
    values = _planted(D.read(), (512, 896), passes=2)
    res = F.search(values, SMALL)
    best = res["refined"][0]
    assert (best["frame"], best["passes"], best["depth"]) == ((512, 896), 2, 56)
    assert best["fits"] and best["max_abs_z"] < 1e-6
    # the other frame does not fit the same points
    other = [c for c in res["refined"] if c["frame"] == (512, 512)]
    assert other and not any(c["fits"] for c in other)
    F.verify(res["evaluator"], best, best["_tokens"])


def test_growth_bounds_are_those_of_linear_and_quadratic_costs():
    res = F.search(_planted(D.read(), (512, 896), passes=1), SMALL)
    b = res["bounds"]
    lin68 = b[("lingen", (512, 512, 68.0), (512, 512, 17.0))]
    dit68 = b[("dit", (512, 512, 68.0), (512, 512, 17.0))]
    assert 3.9 < lin68["max_any"][0] <= 4.0 + 1e-9      # MATE: linear in tokens
    assert 4.0 < dit68["max_any"][0] < 16.0             # a N + b N^2 with a > 0
