"""The sweep's FLOP counter (evalkit.measure.flop_counter): same totals as torch's FlopCounterMode and as counting
every layer, for every registered model; ops that could carry FLOPs are counted or refused, never a silent 0."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from evalkit import models as M
from evalkit.measure import flop_counter as fc

TINY_POINT = M.VideoPoint(height=64, width=96, duration_s=3.0)  # tokens (6, 4, 6)
FULL_POINT = M.VideoPoint(height=256, width=448, duration_s=8.5)  # 7616 tokens; shapes only matter on meta


def meta_build(cfg):
    return M.build(cfg, device="meta")


def count(cfg, point, method="per_layer_kind", batch=1):
    return fc.count_point(cfg, point, batch=batch, build=meta_build, method=method)


def reference_count(cfg, point, batch=1):
    """torch's FlopCounterMode over the full model: an independent implementation of the same convention."""
    model = meta_build(cfg)
    inputs = M.dummy_inputs(cfg, point, batch=batch, device="meta")
    with fc.no_opt_einsum(), torch.no_grad(), FlopCounterMode(display=False) as mode:
        model(*inputs)
    by_op = {str(op).rpartition(".")[2]: int(n) for op, n in mode.get_flop_counts()["Global"].items()}
    return mode.get_total_flops(), by_op


@pytest.mark.parametrize("name", M.names("tiny"))
def test_full_count_equals_flopcountermode_tiny(name):
    cfg = M.resolve(name, "tiny")
    full = count(cfg, TINY_POINT, "full", batch=2)
    total, by_op = reference_count(cfg, TINY_POINT, batch=2)
    assert full.total == total and full.by_op == by_op and full.method == "full"


@pytest.mark.parametrize("name", M.names("tiny"))
def test_per_layer_kind_equals_full_count_tiny(name):
    cfg = M.resolve(name, "tiny", {"depth": 10})   # 10 layers: uneven multiplicities for 2, 4 and 8 kinds
    per_kind, full = count(cfg, TINY_POINT, batch=2), count(cfg, TINY_POINT, "full", batch=2)
    assert per_kind.method == "per_layer_kind" and per_kind.layers == cfg.depth
    assert per_kind.total == full.total and per_kind.by_op == full.by_op
    assert per_kind.total == M.estimate_flops(cfg, TINY_POINT, batch=2).total


@pytest.mark.parametrize("name", ["lingen", "dit"])
def test_per_layer_kind_equals_full_count_4b(name):
    cfg = M.resolve(name, "4b")
    per_kind, full = count(cfg, FULL_POINT), count(cfg, FULL_POINT, "full")
    assert per_kind.layers_counted < cfg.depth == full.layers_counted
    assert per_kind.total == full.total and per_kind.by_op == full.by_op


@pytest.mark.slow
@pytest.mark.parametrize("name", M.names("4b"))
def test_per_layer_kind_equals_full_count_4b_every_model(name):
    cfg = M.resolve(name, "4b")
    per_kind = count(cfg, FULL_POINT)
    assert per_kind.total == count(cfg, FULL_POINT, "full").total
    assert per_kind.total == reference_count(cfg, FULL_POINT)[0]


def test_layer_kinds_come_from_the_config():
    kinds = {n: fc.kind_plan(M.resolve(n, "4b"))[2] for n in M.names("4b")}
    assert kinds["dit"] == 1 and kinds["lingen"] == 4       # scan order (l mod 4) x shift parity (l mod 2)
    assert kinds["lingen-no-rms"] == 2 and kinds["lingen-zigzag"] == 8 and kinds["lingen-no-tesa"] == 4
    assert fc.kind_plan(M.resolve("lingen", "tiny", {"depth": 6})) == (4, (2, 2, 1, 1), 4)
    assert fc.kind_plan(M.resolve("lingen", "tiny", {"depth": 3})) == (3, (1, 1, 1), 3)


def _toy_cfg(depth: int = 6):
    return M.resolve("dit", "tiny", {"depth": depth})


class _ParityMixer(nn.Module):
    """Odd layers do one extra (D x D) matmul: layers whose FLOPs depend on the layer index."""

    def __init__(self, cfg, layer: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.extra = nn.Linear(cfg.d_model, cfg.d_model, bias=False) if layer % 2 else None

    def forward(self, x, grid):
        y = self.proj(x)
        return self.extra(y) if self.extra is not None else y


def _toy_build(cfg):
    from backbone.model import VideoDiT

    with torch.device("meta"):
        return VideoDiT(cfg, _ParityMixer)


def test_per_layer_kind_control_detects_a_wrong_layer_kind(monkeypatch):
    """The equality above can fail: with layer kinds that ignore a layer-dependent cost the product is wrong."""
    cfg, point = _toy_cfg(), TINY_POINT
    full = fc.count_point(cfg, point, build=_toy_build, method="full")
    monkeypatch.setattr(fc, "layer_kinds", lambda c: [layer % 2 for layer in range(c.depth)])
    right = fc.count_point(cfg, point, build=_toy_build)
    monkeypatch.setattr(fc, "layer_kinds", lambda c: [0] * c.depth)   # wrong: parity ignored
    wrong = fc.count_point(cfg, point, build=_toy_build)
    assert right.total == full.total and right.layers_counted == 2
    assert wrong.total != full.total and wrong.layers_counted == 1


def test_einsum_matmul_and_mv_are_counted():
    a, b, v = torch.empty(3, 5, 7, device="meta"), torch.empty(3, 11, 7, device="meta"), torch.empty(7)
    with fc.no_opt_einsum(), fc.FlopCounter() as c:
        torch.einsum("bld,bmd->blm", a, b)      # decomposes to bmm
    assert c.total == 2 * 3 * 5 * 11 * 7 and set(c.by_op) == {"bmm"}
    with fc.FlopCounter() as c:
        torch.ones(4, 7) @ v                     # aten.mv: FlopCounterMode has no formula (counts 0)
    assert c.total == 2 * 4 * 7 and set(c.by_op) == {"mv"}
    with fc.FlopCounter() as c:
        torch.nn.functional.scaled_dot_product_attention(*(torch.empty(2, 4, 9, 8, device="meta"),) * 3)
    assert c.total == 4 * 2 * 4 * 9 * 9 * 8


@pytest.mark.parametrize("fn", [lambda x: torch.linalg.solve(x, x), lambda x: torch.fft.rfft(x),
                                lambda x: torch.cdist(x, x)], ids=["linalg_solve", "fft", "cdist"])
def test_unknown_op_that_could_carry_flops_fails_loudly(fn):
    with pytest.raises(fc.UnknownFlopOpError, match="no FLOP formula"), fc.FlopCounter():
        fn(torch.randn(4, 4))


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_is_refused_by_name():
    from torch.nn.attention.flex_attention import flex_attention

    q = torch.randn(1, 2, 16, 8)
    with pytest.raises(fc.UnknownFlopOpError, match="flex_attention"), fc.FlopCounter():
        flex_attention(q, q, q)


def test_a_registered_custom_op_is_counted(monkeypatch):
    lib = torch.library.Library("evalkit_test", "FRAGMENT")  # noqa: F841 (keeps the namespace alive)
    torch.library.define("evalkit_test::double_mm", "(Tensor a, Tensor b) -> Tensor", lib=lib)
    torch.library.impl("evalkit_test::double_mm", "CompositeExplicitAutograd", lambda a, b: 2 * (a @ b), lib=lib)
    torch.library.register_fake("evalkit_test::double_mm", lambda a, b: a.new_empty(a.shape[0], b.shape[1]),
                                lib=lib)
    op = torch.ops.evalkit_test.double_mm
    a, b = torch.empty(3, 4, device="meta"), torch.empty(4, 5, device="meta")
    with pytest.raises(fc.UnknownFlopOpError, match="double_mm"), fc.FlopCounter():
        op(a, b)
    monkeypatch.setitem(fc.FLOP_OPS, op, lambda a, b, out_val=None: 2 * a.shape[0] * a.shape[1] * b.shape[1])
    with fc.FlopCounter() as c:
        op(a, b)
    assert c.total == 2 * 3 * 4 * 5 and c.by_op == {"double_mm": 2 * 3 * 4 * 5}


def test_count_point_records_the_method_for_a_mixer_without_layer_kind(monkeypatch):
    from baselines.dit.spec import DiTConfig

    monkeypatch.setattr(DiTConfig, "layer_kind", lambda self, layer: None)
    cfg = M.resolve("dit", "tiny")
    c = count(cfg, TINY_POINT)
    assert c.method == "full" and c.layers_counted == cfg.depth and c.kinds is None
    assert c.total == M.estimate_flops(cfg, TINY_POINT).total


def test_depth_reduced_build_is_only_the_first_layers():
    cfg = M.resolve("lingen", "4b")
    built = []
    fc.count_point(cfg, FULL_POINT, build=lambda c: built.append(c) or meta_build(c))
    assert [c.depth for c in built] == [4] and dataclasses.replace(built[0], depth=56) == cfg


@pytest.mark.parametrize("name", ["dit", pytest.param("lingen", marks=pytest.mark.slow)])  # jit-tracing LinGen: ~10 s
def test_fvcore_per_layer_kind_equals_full_trace(name):
    """fvcore's MACs combined from one layer per kind == fvcore on the full model (tiny, 6 layers, CPU)."""
    from evalkit.measure.flops import count_fvcore

    cfg = M.resolve(name, "tiny", {"depth": 6})
    sub, plan = fc.reduced(cfg)
    full = count_fvcore(M.build(cfg), tuple(M.dummy_inputs(cfg, TINY_POINT)))
    per_kind = count_fvcore(M.build(sub), tuple(M.dummy_inputs(sub, TINY_POINT)), plan)
    assert per_kind["fvcore_method"] == "per_layer_kind" and sub.depth < cfg.depth
    assert full["fvcore_macs"] is not None and per_kind["fvcore_macs"] == full["fvcore_macs"]
