"""Rotary Major Scan orders, zigzag paths and review tokens (LinGen Fig. 4, Table 2)."""
from __future__ import annotations

import pytest
import torch

from lingen.scan import N_ZIGZAG, ORDERS, Scan, from_order, num_review, review_tokens, to_order, zigzag_index

GRID = (3, 4, 5)


def _grid_ids(b=2, d=1):
    n = GRID[0] * GRID[1] * GRID[2]
    return torch.arange(n, dtype=torch.float64).view(1, n, 1).expand(b, n, d).contiguous()


def test_orders_are_permutations_with_inverse_and_all_differ():
    x = _grid_ids()
    seqs = []
    for order in ORDERS:
        s = to_order(x, GRID, order)
        assert sorted(s[0, :, 0].tolist()) == x[0, :, 0].tolist()  # a permutation
        torch.testing.assert_close(from_order(s, GRID, order), x)  # inverse restores the grid
        seqs.append(tuple(s[0, :, 0].long().tolist()))
    assert len(set(seqs)) == 4


def test_orders_meaning():
    t, h, w = GRID
    x = _grid_ids()
    def pos(i):
        return (i // (h * w), (i // w) % h, i % w)
    s = [int(v) for v in to_order(x, GRID, ORDERS[0])[0, :, 0]]
    assert pos(s[1])[2] == 1  # spatial row-major: w fastest
    s = [int(v) for v in to_order(x, GRID, ORDERS[1])[0, :, 0]]
    assert pos(s[1])[1] == 1  # spatial column-major: h fastest
    s = [int(v) for v in to_order(x, GRID, ORDERS[2])[0, :, 0]]
    assert pos(s[1])[0] == 1 and pos(s[t])[2] == 1  # temporal row-major: t fastest, then w
    s = [int(v) for v in to_order(x, GRID, ORDERS[3])[0, :, 0]]
    assert pos(s[1])[0] == 1 and pos(s[t])[1] == 1  # temporal column-major: t fastest, then h


def test_rms_cycles_and_fixed_does_not():
    assert [Scan("rms", layer).order for layer in range(8)] == list(ORDERS) * 2
    assert {Scan("fixed", layer).order for layer in range(8)} == {ORDERS[0]}
    with pytest.raises(ValueError, match="rms"):
        Scan("rsm", 0)


@pytest.mark.parametrize("path", range(N_ZIGZAG))
def test_zigzag_paths_are_continuous_permutations(path):
    idx = zigzag_index(GRID, path)
    assert sorted(idx.tolist()) == list(range(60))
    t, h, w = GRID
    coords = torch.stack([idx // (h * w), (idx // w) % h, idx % w], dim=1)
    steps = (coords[1:] - coords[:-1]).abs().sum(1)
    assert (steps == 1).all()  # a snake: every step moves to a grid neighbour
    x = _grid_ids()
    scan = Scan("zigzag", path)
    torch.testing.assert_close(scan.inv(scan.fwd(x, GRID), GRID), x)


def test_zigzag_paths_all_differ():
    assert len({tuple(zigzag_index(GRID, p).tolist()) for p in range(N_ZIGZAG)}) == N_ZIGZAG


def test_review_tokens_pool_in_scan_order():
    x = torch.randn(2, 37, 8)
    r = review_tokens(x, 16)
    assert r.shape == (2, num_review(37, 16), 8) == (2, 3, 8)
    torch.testing.assert_close(r[:, 0], x[:, :13].mean(1))  # adaptive pooling: first bin = first ~L/R tokens
