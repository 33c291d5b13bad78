"""The efficient mixers of ``baselines/`` (linear_attn, sta, radial) against brute-force references
written here from each design's definition, their growth laws, their parameter matching with DiT-4B, and bad
inputs. (Forward/backward and counted == analytic FLOPs run for every registered model in test_models.py and
test_flops_agreement.py.)"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.linear_attn.model import LinearAttention
from baselines.radial import spec as radial_terms
from baselines.radial.model import block_pairs, block_sparse_attention
from baselines.sta import spec as sta_terms
from baselines.sta.model import sliding_tile_attention
from evalkit import models as M
from evalkit.core.errors import FieldError

NEW = ("linear-attn", "sta", "radial")


def _qkv(grid, d=16, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = math.prod(grid)
    return [torch.randn(batch, n, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def _dense(q, k, v, heads, mask):
    """Full softmax attention over (B, L, D) with an explicit (L, L) bool mask."""
    b, n, d = q.shape
    split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
    y = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
    return y.transpose(1, 2).reshape(b, n, d)


def _assert_equals_dense(y, q, k, v, heads, mask):
    """``y`` (computed from q, k, v) equals masked dense attention, values and input gradients (float64)."""
    ref = _dense(q, k, v, heads, mask)
    assert torch.allclose(y, ref, atol=1e-12)
    g1 = torch.autograd.grad(y.square().sum(), (q, k, v))
    g2 = torch.autograd.grad(ref.square().sum(), (q, k, v))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g1, g2))


def _coords(grid):
    t, h, w = (torch.arange(g) for g in grid)
    tt, hh, ww = torch.meshgrid(t, h, w, indexing="ij")
    return tt.reshape(-1), hh.reshape(-1), ww.reshape(-1)


# ---- linear attention -------------------------------------------------------------------------------------------
def test_linear_attention_equals_quadratic_formula():
    """The e x e-state computation equals SANA-Video's O_i formula evaluated with explicit L x L scores, with the
    3D RoPE built independently here as complex rotations of channel pairs."""
    cfg = M.resolve("linear-attn", "tiny")
    torch.manual_seed(0)
    mixer = LinearAttention(cfg, 0).double()
    grid = (3, 2, 4)
    x = torch.randn(2, math.prod(grid), cfg.d_model, dtype=torch.float64)
    y = mixer(x, grid)

    h, e = cfg.heads, cfg.head_dim
    q, k, v = mixer.qkv(x).chunk(3, dim=-1)
    q, k = F.relu(mixer.q_norm(q)), F.relu(mixer.k_norm(k))
    pairs = (e // 2 - 2 * (e // 6), e // 6, e // 6)  # Wan split: h = w = 2 * (e // 6) channels, t the rest
    pos = _coords(grid)
    ang = torch.cat([p[:, None].double() * cfg.linear.rope_theta ** (-torch.arange(n).double() / n)
                     for p, n in zip(pos, pairs)], dim=-1)  # (L, e/2)
    rot = torch.polar(torch.ones_like(ang), ang)

    def rope(t):  # (B, L, D) -> (B, L, H, e) rotated
        c = torch.view_as_complex(t.reshape(*t.shape[:2], h, e // 2, 2).contiguous())
        return torch.view_as_real(c * rot[None, :, None]).reshape(*t.shape[:2], h, e)

    split = lambda t: t.reshape(*t.shape[:2], h, e)  # noqa: E731
    scores = torch.einsum("bihe,bjhe->bhij", rope(q), rope(k))  # RoPE'd numerator scores (L x L)
    norm = torch.einsum("bihe,bjhe->bhij", split(q), split(k)).sum(-1, keepdim=True)  # un-rotated denominator
    ref = torch.einsum("bhij,bjhe->bihe", scores / norm, split(v))
    assert torch.allclose(y, mixer.out(ref.reshape(x.shape)), atol=1e-10)


def test_linear_attention_rope_gives_position_dependence():
    """Without RoPE (and no positional tables inside a mixer) the mixer is permutation-equivariant; with RoPE it
    is not (the control shows the probe can detect position dependence)."""
    grid = (2, 2, 3)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    for rope, equivariant in ((False, True), (True, False)):
        cfg = M.resolve("linear-attn", "tiny", {"linear.rope": rope})
        torch.manual_seed(0)
        mixer = LinearAttention(cfg, 0).double()
        x = torch.randn(1, 12, cfg.d_model, dtype=torch.float64)
        same = torch.allclose(mixer(x, grid)[:, perm], mixer(x[:, perm], grid), atol=1e-10)
        assert same is equivariant


# ---- STA --------------------------------------------------------------------------------------------------------
def _sta_mask(grid, tile, window):
    """Token mask from FastVideo's generate_sta_mask: the window centre is the query tile clamped to
    [k // 2, n - 1 - k // 2]; key tile within k // 2 of it; an axis with fewer tiles than k is covered whole."""
    qc, kc = _coords(grid), _coords(grid)
    ok = torch.ones(math.prod(grid), math.prod(grid), dtype=torch.bool)
    for g, t, w, qa, ka in zip(grid, tile, window, qc, kc):
        n, k = -(-g // t), w // t
        if k >= n:
            continue
        centre = (qa // t).clamp(k // 2, n - 1 - k // 2)
        ok &= (centre[:, None] - (ka // t)[None, :]).abs() <= k // 2
    return ok


@pytest.mark.parametrize("grid,tile,window", [
    ((6, 4, 6), (2, 2, 2), (6, 2, 2)),     # exact tiling, clamped window centres at the borders
    ((5, 3, 7), (2, 2, 2), (6, 2, 6)),     # zero-padded grid (6, 4, 8): padded keys masked
    ((4, 2, 6), (2, 1, 2), (6, 3, 2)),     # window longer than the grid along t and h: covers the axis
])
def test_sta_equals_dense_attention_with_the_sta_mask(grid, tile, window):
    q, k, v = _qkv(grid)
    ktiles = tuple(min(w // t, -(-g // t)) for g, t, w in zip(grid, tile, window))
    y = sliding_tile_attention(q, k, v, grid, 4, tile, ktiles)
    mask = _sta_mask(grid, tile, window)
    assert 0 < mask.float().mean() <= 1
    _assert_equals_dense(y, q, k, v, 4, mask)


def test_sta_counted_equals_analytic_on_a_padded_grid():
    """The padded tile work (and the masked padded keys) are what FlopCounterMode counts and what sta_terms says."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = M.resolve("sta", "tiny", {"sta.tile": [4, 2, 2], "sta.window": [12, 6, 2]})
    point = M.VideoPoint(height=80, width=112, duration_s=5.0)  # tokens (10, 5, 7) -> padded (12, 6, 8)
    model = M.build(cfg, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(*M.dummy_inputs(cfg, point, device="meta"))
    assert fc.get_total_flops() == M.estimate_flops(cfg, point).total
    assert sta_terms.tile_grid((10, 5, 7), (4, 2, 2)) == (3, 3, 4)


def test_sta_is_not_full_attention():
    """Control: on a grid larger than the window the STA output differs from full attention."""
    grid, tile, window = (6, 4, 6), (2, 2, 2), (2, 2, 2)
    q, k, v = _qkv(grid)
    y = sliding_tile_attention(q, k, v, grid, 4, tile, (1, 1, 1))
    assert not torch.allclose(y, _dense(q, k, v, 4, None), atol=1e-3)
    assert torch.allclose(y, _dense(q, k, v, 4, _sta_mask(grid, tile, window)), atol=1e-12)


# ---- Radial -----------------------------------------------------------------------------------------------------
def _radial_mask(grid, block, dense_frames=1, sink=True):
    """Token mask written from the definition in radial_terms (official attn_mask.py, HunyuanVideo mode)."""
    t, s = grid[0], grid[1] * grid[2]
    n = t * s
    i, x = torch.arange(n) // s, torch.arange(n) % s
    d = (i[:, None] - i[None, :]).abs()
    a, c = x[:, None] // block, x[None, :] // block
    mask = torch.zeros(n, n, dtype=torch.bool)
    for dd in range(t):
        sel = d == dd
        if dd <= dense_frames:
            mask |= sel
            continue
        w = 2 ** s.bit_length() / 2 ** dd.bit_length()
        if w >= block:
            mask |= sel & ((a - c).abs() * block <= w)
        elif dd % int(block / w) == 0:
            mask |= sel & ((a - c).abs() <= 1)
    if sink:
        mask |= (i[None, :] == 0).expand(n, n)
    return mask


def test_radial_equals_dense_attention_with_the_radial_mask():
    grid, block = (16, 2, 4), 2  # bands: d in {2,3} window 4 tokens, d in 4..7 window 2, d >= 8 sampled every 2
    cfg = M.resolve("radial", "tiny", {"radial.block": block})
    q, k, v = _qkv(grid)
    qi, ki = block_pairs(cfg.radial, grid[0], grid[1] * grid[2])
    y = block_sparse_attention(q, k, v, 4, block, qi, ki)
    mask = _radial_mask(grid, block)
    assert radial_terms.nnz_blocks(cfg, grid) * block ** 2 == mask.sum().item()  # the analytic count
    assert 0.2 < mask.float().mean() < 0.8
    _assert_equals_dense(y, q, k, v, 4, mask)


def test_radial_mask_control_without_sink():
    """The sink columns matter: without them the mask (and the result) differ."""
    grid, block = (12, 2, 4), 2
    cfg = M.resolve("radial", "tiny", {"radial.block": block, "radial.sink": False})
    q, k, v = _qkv(grid)
    y = block_sparse_attention(q, k, v, 4, block, *block_pairs(cfg.radial, 12, 8))
    assert torch.allclose(y, _dense(q, k, v, 4, _radial_mask(grid, block, sink=False)), atol=1e-12)
    assert not torch.allclose(y, _dense(q, k, v, 4, _radial_mask(grid, block)), atol=1e-3)


# ---- growth laws (analytic = counted, checked for every model in test_flops_agreement.py) --------------------------
def _mixer(name, grid):
    return M.resolve(name, "4b").flops_breakdown(grid)["mixer"]


def test_linear_and_sta_mixers_are_linear_in_tokens():
    for name in ("linear-attn", "sta"):  # t a multiple of STA's 6-token tile: no padding
        f = [_mixer(name, (t, 32, 56)) for t in (36, 72, 144)]
        assert f[1] / f[0] == pytest.approx(2, rel=1e-12) and f[2] / f[1] == pytest.approx(2, rel=1e-12)
    f = [_mixer("dit", (t, 32, 56)) for t in (36, 72, 144)]
    assert f[2] / f[1] > 3.5  # control: full attention quadruples


def _keys_per_query(name, t):
    cfg = M.resolve(name, "4b")
    L = t * 32 * 56
    proj = 8 * L * cfg.d_model ** 2 * cfg.depth
    return (_mixer(name, (t, 32, 56)) - proj) / (4 * cfg.d_model * cfg.depth * L)  # attended keys per query


def test_radial_is_n_log_n_in_frames():
    """Keys attended per query grow by a constant per doubling of the frames (log t), i.e. n log n in total;
    full attention's double every time (the control)."""
    k = [_keys_per_query("radial", t) for t in (16, 32, 64, 128)]
    inc = [b - a for a, b in zip(k, k[1:])]
    assert all(i > 0 for i in inc) and max(inc) / min(inc) < 1.35
    assert k[-1] / k[0] < 3  # far from the 8x of quadratic growth
    dit = [_keys_per_query("dit", t) for t in (16, 32, 64, 128)]
    assert all(b / a == pytest.approx(2) for a, b in zip(dit, dit[1:]))
    dinc = [b - a for a, b in zip(dit, dit[1:])]
    assert max(dinc) / min(dinc) > 3  # the log-law check above would fail for full attention


def test_sta_density_matches_its_formula():
    cfg = M.resolve("sta", "4b")
    grid = (34, 32, 56)  # padded to (36, 32, 56) tiles (6, 4, 7), window (3, 3, 3) tiles
    assert sta_terms.density(cfg, grid) == pytest.approx(36 * 32 * 56 * 27 * 384 / (34 * 32 * 56) ** 2)


# ---- matching and inputs ----------------------------------------------------------------------------------------
def test_4b_mixers_match_dit_geometry_and_parameters():
    dit = M.resolve("dit", "4b")
    for name in NEW:
        cfg = M.resolve(name, "4b")
        assert (cfg.d_model, cfg.depth, cfg.heads, cfg.ffn_dim, cfg.text_dim, cfg.text_len, cfg.latent) == \
            (dit.d_model, dit.depth, dit.heads, dit.ffn_dim, dit.text_dim, dit.text_len, dit.latent)
        extra = 2 * cfg.d_model * cfg.depth if name == "linear-attn" else 0  # q/k RMSNorm weights
        assert M.param_count(cfg) == M.param_count(dit) + extra  # analytic == built: test_models.py (tiny)


def test_bad_mixer_inputs_name_the_field():
    with pytest.raises(FieldError, match=r"radial.block.*do not divide the 35 tokens.*valid blocks.*\[1, 5, 7, 35\]"):
        M.validate_point(M.resolve("radial", "tiny"), M.VideoPoint(height=80, width=112, duration_s=5.0))
    with pytest.raises(FieldError, match=r"sta.window.*odd multiple of the tile"):
        M.resolve("sta", "tiny", {"sta.window": [4, 3, 3]})
    with pytest.raises(FieldError, match=r"sta.tile.*larger than the token grid.*along t"):
        M.validate_point(M.resolve("sta", "4b"), M.VideoPoint(height=512, width=896, duration_s=0.5))
    with pytest.raises(FieldError, match="radial.block"):
        M.resolve("radial", "tiny", {"radial.decay_factor": 0})


def test_train_mixers_has_the_train_tiny_budget():
    """Same data, steps, batch, seed, text encoder, overrides and evaluation as train_tiny; only the models differ."""
    from evalkit.train.config import load_train
    a = load_train("train_tiny")
    b = load_train("train_mixers")
    assert (a.data, a.train, a.eval, a.text_encoder, a.overrides) == (b.data, b.train, b.eval, b.text_encoder,
                                                                      b.overrides)
    assert set(NEW) <= {m.name for m in b.models} and {"dit", "lingen"} <= {m.name for m in b.models}


# ---- report (evalkit/report/mixers.py) ------------------------------------------------------------------------
def _records(flops):
    """Synthetic flops records of the mixers sweep: model -> (FLOPs at 17 s, at 68 s); mixer term = total."""
    import pandas as pd
    rows = []
    for model, vals in flops.items():
        for dur, tokens, f in zip((17.0, 68.0), (100, 400), vals):
            rows.append({"kind": "cost", "measurement": "flops", "status": "ok", "model": model, "flavor": "4b",
                         "variant": "default", "resolution": "512p", "duration_s": dur, "num_tokens": tokens,
                         "flops": f, "flops_breakdown_mixer": f, "steps": 50, "cfg_factor": 2,
                         "_experiment": "mixers", "_run_id": "r1"})
    return pd.DataFrame(rows)


def test_mixers_ratio_table_from_records():
    from evalkit.report import mixers
    df = _records({"dit": (100.0, 1600.0), "radial": (50.0, 320.0), "linear-attn": (10.0, 40.0)})
    t = mixers.ratio_table(mixers._sweep(df)).set_index("registry")
    assert list(t.index) == ["dit", "linear-attn", "radial"]  # the design order of the report
    assert t.loc["radial", "DiT/mixer FLOPs, 17 s (this harness)"] == pytest.approx(2.0)
    assert t.loc["radial", "DiT/mixer FLOPs, 68 s (this harness)"] == pytest.approx(5.0)
    assert t.loc["dit", "mixer FLOPs growth exponent 17-68 s"] == pytest.approx(2.0)  # 16x FLOPs for 4x tokens
    assert t.loc["linear-attn", "mixer FLOPs growth exponent 17-68 s"] == pytest.approx(1.0)
    assert "16x faster in measured latency" in t.loc["linear-attn", "published claim (own model, resolution, hardware)"]
    assert "arXiv 2506.19852" in t.loc["radial", "claim source"] and t.loc["dit", "claim source"] == "-"
