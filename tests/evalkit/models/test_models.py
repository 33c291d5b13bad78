"""Contract tests of every registered model (tiny flavor), the MATE mixer's properties, and bad-input errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from evalkit import models as M
from evalkit.core.errors import ChoiceError, FieldError
from lingen.mate import MATE

POINT = M.VideoPoint(height=32, width=32, duration_s=2.0)  # latent (4, 4, 4) -> tokens (4, 2, 2)


@pytest.mark.parametrize("name", M.names("tiny"))
def test_tiny_forward_backward_shapes_and_params(name):
    cfg = M.resolve(name, "tiny")
    model = M.build(cfg, kernels="ref")
    assert model.cfg == cfg
    assert sum(p.numel() for p in model.parameters()) == M.param_count(cfg)
    torch.nn.init.normal_(model.unpatch.weight, std=0.02)  # zero-init output: open the path for the gradient test
    for block in model.blocks:  # zero-init gates: open them too
        torch.nn.init.normal_(block.table, std=0.5)
    x, t, ctx = M.dummy_inputs(cfg, POINT, batch=2)
    mask = torch.ones(2, cfg.text_len, dtype=torch.bool)
    mask[1, 3:] = False
    v = model(x, t, ctx, mask)
    assert v.shape == x.shape == (2, *M.latent_shape(cfg, POINT))
    v.square().mean().backward()
    mixer_grads = [p.grad for p in model.blocks[1].mixer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in mixer_grads)
    assert any(g.abs().sum() > 0 for g in mixer_grads)


def test_4b_pair_is_matched_and_instantiates_on_meta():
    cfgs = {n: M.resolve(n, "4b") for n in ("lingen", "dit")}
    for name, cfg in cfgs.items():
        n = M.param_count(cfg)
        assert 3.6e9 <= n <= 4.4e9, (name, n)
        model = M.build(cfg, device="meta")
        assert sum(p.numel() for p in model.parameters()) == n
    a, b = cfgs["lingen"], cfgs["dit"]
    assert (a.d_model, a.depth, a.ffn_dim, a.heads, a.text_dim, a.text_len) == \
        (b.d_model, b.depth, b.ffn_dim, b.heads, b.text_dim, b.text_len)


def _mate(name="lingen-no-tesa", layer=0, **over):
    cfg = M.resolve(name, "tiny", over)
    torch.manual_seed(0)
    return MATE(cfg, layer).double(), cfg


def _dependence(mixer, grid, j):
    """|d out_i / d x_j| summed over channels, for every i (scan-order independent: grid order)."""
    n = grid[0] * grid[1] * grid[2]
    x = torch.randn(1, n, mixer.d, dtype=torch.float64, requires_grad=True)
    out = mixer(x, grid)
    dep = []
    for i in range(n):
        (g,) = torch.autograd.grad(out[0, i].sum(), x, retain_graph=True)
        dep.append(g[0, j].abs().sum().item())
    return dep


@pytest.mark.parametrize("review", [False, True])
def test_bidirectional_mixer_sees_both_sides(review):
    mixer, cfg = _mate(**{"mate.review": review})
    grid = (2, 2, 4)  # 16 tokens, layer 0 = spatial row-major: scan order == grid order
    j = 7
    dep = _dependence(mixer, grid, j)
    assert min(dep[:j]) > 0 and min(dep[j + 1:]) > 0  # earlier and later tokens both depend on token j


def test_single_direction_would_be_causal():
    """Sanity of the dependence probe: zero the backward direction's input and the dependence becomes causal."""
    mixer, cfg = _mate(**{"mate.review": False})
    with torch.no_grad():
        mixer.conv[1].weight.zero_()
        mixer.conv[1].bias.zero_()
        mixer.D[1].zero_()
    dep = _dependence(mixer, (2, 2, 4), 7)
    assert max(dep[:7]) == 0 and min(dep[7:]) > 0


def test_review_tokens_not_in_output_but_used():
    mixer, cfg = _mate("lingen")
    grid = (4, 4, 4)
    x = torch.randn(2, 64, cfg.d_model, dtype=torch.float64)
    y = mixer(x, grid)
    assert y.shape == x.shape  # review-token outputs dropped
    with torch.no_grad():
        mixer.review_type.add_(1.0)
    assert not torch.allclose(mixer(x, grid), y)  # they do feed the scan


def test_long_grid_136_latent_frames():
    cfg = M.resolve("lingen", "tiny")
    point = M.VideoPoint(height=32, width=32, duration_s=68.0)  # 1088 frames -> 136 latent frames
    assert M.latent_shape(cfg, point)[1] == 136
    model = M.build(cfg)
    x, t, ctx = M.dummy_inputs(cfg, point)
    with torch.no_grad():
        v = model(x, t, ctx)
    assert v.shape == x.shape and torch.isfinite(v).all()


def test_bad_inputs_name_field_and_choices():
    cfg = M.resolve("lingen", "4b")
    with pytest.raises(FieldError, match="height.*divisible by compression x patch = 16"):
        M.validate_point(cfg, M.VideoPoint(height=500, width=896, duration_s=17.0))
    with pytest.raises(FieldError, match="duration_s"):
        M.validate_point(cfg, M.VideoPoint(height=512, width=896, duration_s=1.1))
    with pytest.raises(FieldError, match="duration_s.*not a whole number of frames"):  # 8.5 s x 16 = 136 ok, 8.51 s not
        M.validate_point(cfg, M.VideoPoint(height=512, width=896, duration_s=8.51))
    with pytest.raises(FieldError, match=r"mate.window.*along t"):
        M.validate_point(cfg, M.VideoPoint(height=512, width=896, duration_s=2.0))  # 2 latent frames < 17
    with pytest.raises(FieldError, match="max_grid"):
        M.validate_point(cfg, M.VideoPoint(height=512, width=896, duration_s=80.0))
    with pytest.raises(ChoiceError, match="Did you mean 'lingen-zigzag'"):
        M.resolve("lingen-zigzg", "tiny")
    with pytest.raises(ChoiceError, match=r"flavor.*Valid choices: 1b, 2b, 4b, 8b, tiny.*Did you mean '4b'"):
        M.resolve("dit", "4B")
    with pytest.raises(ChoiceError, match="Did you mean 'window'"):
        M.resolve("lingen", "tiny", {"mate": {"windw": [2, 2, 2]}})
    with pytest.raises(ChoiceError, match="Did you mean 'zigzag'"):
        M.resolve("lingen", "tiny", {"mate.scan": "zigzg"})
    with pytest.raises(FieldError, match="d_state"):
        M.resolve("lingen", "tiny", {"mate.ssm.d_state": 32})
    with pytest.raises(ChoiceError, match="kernels"):
        M.build(M.resolve("dit", "tiny"), kernels="fast")


def test_overrides_apply():
    cfg = M.resolve("lingen", "tiny", {"latent.compression": [1, 4, 4], "depth": 2})
    assert cfg.latent.compression == (1, 4, 4) and cfg.depth == 2
    assert M.num_tokens(cfg, M.VideoPoint(height=32, width=32, duration_s=1.0)) == 16 * 4 * 4


def test_models_and_ls_do_not_import_torch():
    code = ("import sys; from evalkit import models, ls; ls.main([]); "
            "[models.param_count(models.resolve(n, f)) for n in models.names() for f in models.flavors(n)]; "
            "models.estimate_flops(models.resolve('lingen', '4b'), models.VideoPoint(height=512, width=896, "
            "duration_s=68)); assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name in M.names():
        assert name in res.stdout
