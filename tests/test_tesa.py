"""TEmporal Swin Attention (LinGen Fig. 5): locality on unshifted layers, crossing on shifted layers, exactness
against a brute-force masked full attention, padding, and window-vs-grid errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lingen.tesa import window_attention

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


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("grid", [(4, 4, 6), (5, 3, 7)])
def test_matches_brute_force_mask(layer, grid):
    window, shift = (2, 2, 3), (1, 1, 1)
    q, k, v = _qkv(grid)
    eff = shift if layer % 2 else (0, 0, 0)
    torch.testing.assert_close(window_attention(q, k, v, grid, HEADS, window, shift, layer),
                               _brute(q, k, v, grid, window, eff))


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
