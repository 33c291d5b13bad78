"""TEmporal Swin Attention (LinGen Fig. 5): locality on unshifted layers, crossing on shifted layers, exactness of
both implementations (mask-free ``split``, padded+rolled ``masked``) against a brute-force masked full attention
in every window / shift / padding case, split never passing a mask to SDPA, the masked path counting the
analytic FLOPs on meta, and window / shift errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torch.utils.flop_counter import FlopCounterMode

from lingen import spec as analytic
from lingen.tesa import effective_shift, segments, window_attention

HEADS, D = 2, 8


def _qkv(grid, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1] * grid[2]
    return [torch.randn(1, n, D, generator=g, dtype=torch.float64) for _ in range(3)]


def _flat(c, grid):
    return (c[0] * grid[1] + c[1]) * grid[2] + c[2]


def _brute(q, k, v, grid, window, shift):
    """Full attention with an explicit mask: same shifted window and same wrap-around side in every axis (the
    grid is padded to whole windows before the cyclic roll, so positions wrap modulo the padded size)."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(g) for g in grid), indexing="ij"), -1).reshape(-1, 3)
    keys = []
    for a in range(3):
        c, s, w, g = coords[:, a], shift[a], window[a], grid[a]
        p = (c - s) % (-(-g // w) * w)  # position after the cyclic roll of the padded axis
        keys += [p // w, (c < s).long()]
    key = torch.stack(keys, -1)
    mask = (key[:, None] == key[None, :]).all(-1)
    split = lambda t: t.view(1, -1, HEADS, D // HEADS).transpose(1, 2)  # noqa: E731
    y = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
    return y.transpose(1, 2).reshape(1, -1, D)


# (grid, window, shift): unpadded, padded on every axis, a window covering a whole axis (no shift there), a
# shift of 2 with window 3, shift 0 on one axis, a window of one token, the window equal to the grid.
CASES = [((4, 4, 6), (2, 2, 3), (1, 1, 1)), ((5, 3, 7), (2, 2, 3), (1, 1, 1)), ((6, 4, 6), (3, 4, 2), (1, 2, 1)),
         ((7, 5, 8), (3, 2, 3), (2, 1, 2)), ((6, 5, 4), (4, 3, 2), (0, 1, 1)), ((3, 4, 5), (1, 2, 2), (0, 1, 1)),
         ((4, 4, 4), (4, 4, 4), (2, 2, 2)), ((10, 5, 7), (4, 3, 3), (2, 1, 1))]


@pytest.mark.parametrize("impl", ["split", "masked"])
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("grid,window,shift", CASES)
def test_matches_brute_force_mask(grid, window, shift, layer, impl):
    q, k, v = _qkv(grid)
    eff = effective_shift(grid, window, shift, layer)
    torch.testing.assert_close(window_attention(q, k, v, grid, HEADS, window, shift, layer, impl=impl),
                               _brute(q, k, v, grid, window, eff))


@pytest.mark.parametrize("grid,window,shift", CASES[1:4])
def test_split_and_masked_gradients_agree(grid, window, shift):
    grads = []
    for impl in ("split", "masked"):
        q, k, v = (t.requires_grad_(True) for t in _qkv(grid))
        y = window_attention(q, k, v, grid, HEADS, window, shift, 1, impl=impl)
        grads.append(torch.autograd.grad(y, (q, k, v), torch.ones_like(y) + y.detach()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_segments_tile_the_axis():
    for g in range(1, 12):
        for w in range(1, g + 1):
            for s in range(w if w < g else 1):
                runs = segments(g, w, s)
                cover = [i for start, count, length in runs for i in range(start, start + count * length)]
                assert cover == list(range(g)) and len(runs) <= 3
                assert all(1 <= length <= w for _, _, length in runs)


def _sdpa_calls(monkeypatch):
    calls, real = [], F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        calls.append((tuple(q.shape), attn_mask))
        return real(q, k, v, attn_mask=attn_mask, **kw)
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return calls


@pytest.mark.parametrize("grid,window,shift", CASES)
def test_split_is_mask_free(grid, window, shift, monkeypatch):
    """Every SDPA call of the split path is mask-free (flash-eligible on GPU): one per block of equal windows,
    a single call on unshifted, unpadded layers; the masked path needs a mask exactly there."""
    q, k, v = _qkv(grid)
    for layer in (0, 1):
        calls = _sdpa_calls(monkeypatch)
        used = set()
        window_attention(q, k, v, grid, HEADS, window, shift, layer, impl="split", used=used)
        s = effective_shift(grid, window, shift, layer)
        blocks = 1
        for g, w, sh in zip(grid, window, s):
            blocks *= len(segments(g, w, sh))
        assert len(calls) == blocks and all(mask is None for _, mask in calls)
        assert {u.split(":")[0] for u in used} == {"split"}
        aligned = s == (0, 0, 0) and all(g % w == 0 for g, w in zip(grid, window))
        assert (blocks == 1) == aligned
        calls.clear()
        window_attention(q, k, v, grid, HEADS, window, shift, layer, impl="masked")
        assert len(calls) == 1 and (calls[0][1] is None) == aligned


def test_meta_counts_the_analytic_flops_with_the_masked_path():
    """On meta (FLOP counting) 'auto' runs the masked path: full windows on the padded grid, the analytic term."""
    grid, window, shift, d = (10, 5, 7), (4, 3, 3), (2, 1, 1), 32
    for layer in (0, 1):
        q, k, v = (torch.empty(2, 350, d, device="meta") for _ in range(3))
        used = set()
        with FlopCounterMode(display=False) as fc:
            window_attention(q, k, v, grid, 4, window, shift, layer, used=used)
        assert used == {"masked:meta"}
        assert fc.get_total_flops() == 2 * 4 * analytic.padded_tokens(grid, window) * (4 * 3 * 3) * d


def test_bad_shift_or_impl_is_an_error():
    q, k, v = _qkv((4, 4, 4))
    with pytest.raises(ValueError, match=r"mate.shift.*along h: 2 vs 2"):
        window_attention(q, k, v, (4, 4, 4), HEADS, (2, 2, 2), (1, 2, 1), 1)
    with pytest.raises(ValueError, match="impl: unknown TESA implementation 'fast'"):
        window_attention(q, k, v, (4, 4, 4), HEADS, (2, 2, 2), (1, 1, 1), 1, impl="fast")


def _influence(grid, window, shift, layer, src, dst):
    q, k, v = _qkv(grid)
    base = window_attention(q, k, v, grid, HEADS, window, shift, layer)
    k2, v2 = k.clone(), v.clone()
    i = _flat(src, grid)
    k2[0, i] += 5.0
    v2[0, i] += 5.0
    out = window_attention(q, k2, v2, grid, HEADS, window, shift, layer)
    return (out - base)[0, _flat(dst, grid)].abs().max().item()


def test_unshifted_layer_is_local():
    grid, window, shift = (4, 4, 4), (2, 2, 2), (1, 1, 1)
    assert _influence(grid, window, shift, 0, src=(2, 0, 0), dst=(1, 0, 0)) == 0.0  # other window
    assert _influence(grid, window, shift, 0, src=(1, 1, 1), dst=(0, 0, 0)) > 1e-6  # same window


def test_shifted_layer_crosses_the_border():
    grid, window, shift = (4, 4, 4), (2, 2, 2), (1, 1, 1)
    # (1,1,1) and (2,2,2) are in different unshifted windows but share the shifted window
    assert _influence(grid, window, shift, 0, src=(2, 2, 2), dst=(1, 1, 1)) == 0.0
    assert _influence(grid, window, shift, 1, src=(2, 2, 2), dst=(1, 1, 1)) > 1e-6
    # wrap-around neighbours of the cyclic shift stay masked
    assert _influence(grid, window, shift, 1, src=(0, 0, 0), dst=(3, 3, 3)) == 0.0


def test_padding_when_grid_not_multiple_of_window():
    grid, window = (5, 3, 4), (2, 2, 2)
    q, k, v = _qkv(grid)
    for layer in (0, 1):
        y = window_attention(q, k, v, grid, HEADS, window, (1, 1, 1), layer)
        assert y.shape == q.shape and torch.isfinite(y).all()
    # the last, partial window along t holds only frame 4: attention there is over real tokens only
    y0 = window_attention(q, k, v, grid, HEADS, window, (1, 1, 1), 0)
    i = _flat((4, 0, 0), grid)
    members = [_flat((4, h, w), grid) for h in range(2) for w in range(2)]
    split = lambda t: t[:, members].view(1, -1, HEADS, D // HEADS).transpose(1, 2)  # noqa: E731
    ref = F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(1, -1, D)
    torch.testing.assert_close(y0[0, i], ref[0, 0])


def test_window_larger_than_grid_is_an_error():
    q, k, v = _qkv((2, 4, 4))
    with pytest.raises(ValueError, match=r"mate.window.*along t"):
        window_attention(q, k, v, (2, 4, 4), HEADS, (17, 4, 4), (8, 2, 2), 0)


@pytest.mark.gpu
def test_split_runs_flash_on_gpu_and_matches_masked():
    """On CUDA in bf16 every block of the split path dispatches to flash (or cuDNN) attention, which the masked
    path's boolean mask rules out, and it agrees with the float32 masked result (a 4b-like TESA: window
    (17, 4, 4), shift (8, 2, 2), head dim 128)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    grid, window, shift, heads, d = (34, 8, 12), (17, 4, 4), (8, 2, 2), 4, 512
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, grid[0] * grid[1] * grid[2], d, generator=g).cuda() for _ in range(3))
    for layer in (0, 1):
        used = set()
        y = window_attention(*(t.bfloat16() for t in (q, k, v)), grid, heads, window, shift, layer, impl="split",
                             used=used)
        assert {u.split(":")[0] for u in used} == {"split"}
        assert {u.split(":")[1] for u in used} <= {"flash_attention", "cudnn_attention"}, used  # never a masked one
        ref = window_attention(q, k, v, grid, heads, window, shift, layer, impl="masked")
        torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)
