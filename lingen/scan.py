"""Token orders of the MA-branch: Rotary Major Scan (LinGen Fig. 4), fixed order (w/o RMS), ZigMa zigzag paths
(Table 2 "w/ Zigzag"), and review tokens.

RMS: layer l scans the (t, h, w) token grid in order l mod 4 of ORDERS (last axis fastest):
    0 spatial row-major (t, h, w) · 1 spatial column-major (t, w, h) · 2 temporal row-major (h, w, t)
    3 temporal column-major (w, h, t)
done by permute + reshape (contiguous copy) and inverted after the scan. Zigzag: 8 continuous "snake" paths
(the 4 axis orders x 2 start corners) applied by index gather, layer l uses path l mod 8 (ZigMa, Hu et al. 2024).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lingen.spec import N_ORDERS, N_ZIGZAG

ORDERS: tuple[tuple[int, int, int], ...] = ((0, 1, 2), (0, 2, 1), (1, 2, 0), (2, 1, 0))
ORDER_NAMES = ("spatial row-major", "spatial column-major", "temporal row-major", "temporal column-major")
assert len(ORDERS) == N_ORDERS


def to_order(x: Tensor, grid: tuple[int, int, int], order: tuple[int, int, int]) -> Tensor:
    """(B, L, D) in (t, h, w) row-major -> (B, L, D) in ``order``."""
    b, _, d = x.shape
    g = x.view(b, *grid, d)  # (B, t, h, w, D)
    return g.permute(0, order[0] + 1, order[1] + 1, order[2] + 1, 4).reshape(b, -1, d)  # (B, L, D) scan order


def from_order(y: Tensor, grid: tuple[int, int, int], order: tuple[int, int, int]) -> Tensor:
    """Inverse of ``to_order``."""
    b, _, d = y.shape
    g = y.view(b, *(grid[o] for o in order), d)  # (B, g[o0], g[o1], g[o2], D)
    inv = [order.index(i) + 1 for i in range(3)]
    return g.permute(0, *inv, 4).reshape(b, -1, d)  # (B, L, D) row-major


def zigzag_index(grid: tuple[int, int, int], path: int, device: torch.device | str = "cpu") -> Tensor:
    """Flat row-major indices of the grid in the order of zigzag path ``path`` (0..7); a continuous 3D snake."""
    order = ORDERS[path % 4]
    d0, d1, d2 = (grid[o] for o in order)
    i0, i1, i2 = torch.meshgrid(*(torch.arange(n, device=device) for n in (d0, d1, d2)), indexing="ij")
    row = i0 * d1 + i1  # rank of the (i0, i1) row along the path
    i1 = torch.where(i0 % 2 == 1, d1 - 1 - i1, i1)  # middle axis reverses on odd outer rows
    i2 = torch.where(row % 2 == 1, d2 - 1 - i2, i2)  # fastest axis reverses on odd rows
    coords = [None, None, None]
    for axis, idx in zip(order, (i0, i1, i2)):
        coords[axis] = idx
    if (path // 4) % 2 == 1:  # start from the opposite corner
        coords = [grid[a] - 1 - coords[a] for a in range(3)]
    return ((coords[0] * grid[1] + coords[1]) * grid[2] + coords[2]).reshape(-1)


class Scan:
    """The scan used by one layer: ``fwd`` (B, L, D) grid order -> scan order, ``inv`` back."""

    def __init__(self, kind: str, layer: int) -> None:
        self.kind, self.layer = kind, layer
        if kind == "rms":
            self.order = ORDERS[layer % 4]
        elif kind == "fixed":
            self.order = ORDERS[0]
        elif kind != "zigzag":
            raise ValueError(f"mate.scan: unknown scan {kind!r}. Valid choices: fixed, rms, zigzag")

    def fwd(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        if self.kind == "zigzag":
            return x.index_select(1, zigzag_index(grid, self.layer % N_ZIGZAG, x.device))
        return to_order(x, grid, self.order)

    def inv(self, y: Tensor, grid: tuple[int, int, int]) -> Tensor:
        if self.kind == "zigzag":
            idx = zigzag_index(grid, self.layer % N_ZIGZAG, y.device)
            return y.index_select(1, torch.argsort(idx))
        return from_order(y, grid, self.order)


def num_review(n_tokens: int, stride: int) -> int:
    """Review-token count: one per ``stride`` video tokens, rounded up."""
    return -(-n_tokens // stride)


def review_tokens(seq: Tensor, stride: int) -> Tensor:
    """Average-pool the scan-ordered sequence (B, L, D) into ceil(L / stride) overview tokens (B, R, D)."""
    r = num_review(seq.shape[1], stride)
    return F.adaptive_avg_pool1d(seq.transpose(1, 2), r).transpose(1, 2)
